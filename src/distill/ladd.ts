// LADD: Latent Adversarial Diffusion Distillation (Sauer et al. 2024, arXiv 2403.12015; METHODS.md section 3).
// The FROZEN teacher is the discriminator's feature network: samples are re-noised at t_hat ~ logit-normal, the
// teacher's encoder runs on them, and small trainable heads judge its features. Hinge loss, no distillation loss.
import { type Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { BatchLoader } from '../data/loader.js';
import { netDenoiser } from '../diffusion/denoiser.js';
import { addNoise, alphaSigmaTensors, type Formulation } from '../diffusion/formulation.js';
import type { Params } from '../nn/params.js';
import { type UNetConfig, unetEncoderForward, unetForward } from '../nn/unet.js';
import type { Player } from '../train/checkpoint.js';
import type { StepContext, TrainStep } from '../train/loop.js';
import { type AdversarialRound, adversarialStep, type Phase } from './shared/adversarial.js';
import {
  type AdversarialTraining,
  checkAdversarialTraining,
  checkInteger,
  configFailure,
} from './shared/adversarial-config.js';
import type { HeadLogits } from './shared/gan-loss.js';
import { type HeadsConfig, headLogits, initHeads, pickFeatures, tapUNetFeatures } from './shared/heads.js';
import { discriminatorPlayer, studentPlayer } from './shared/players.js';
import { approximateR1, perturbForR1 } from './shared/r1.js';
import {
  defaultStudentTimeSchedule,
  type StudentTimeSchedule,
  sampleStudentTimes,
  studentTimeProbs,
  studentTimes,
  validateStudentTimeSchedule,
} from './shared/student-times.js';

// ---------------------------------------------------------------------------------------------------------------
// Configuration: the meaning of each value here, the values in LADD_DEFAULTS.

export interface LaddConfig extends AdversarialTraining {
  /** Student steps N: trains on the N trailing times and samples with N or any divisor of N. */
  readonly steps: number;
  /** Discriminator noise levels: logit(t_hat) ~ N(tHatMean, tHatStd^2). */
  readonly tHatMean: number;
  readonly tHatStd: number;
  /** Teacher encoder features the heads read: 'all' (every level and the middle block) or names (`down.0`, `mid`). */
  readonly features: 'all' | readonly string[];
  /** Head width, GroupNorm groups and width of the t_hat / class embedding. */
  readonly headChannels: number;
  readonly headGroups: number;
  readonly headEmbedDim: number;
  /** Student time distribution: `warmupProbs` for the first `warmupIterations` steps, then `probs`. */
  readonly warmupIterations: number;
  readonly warmupProbs: readonly number[];
  readonly probs: readonly number[];
  /** Approximate-R1 weight (0 disables it) and the std of its perturbation of the real input. */
  readonly r1Weight: number;
  readonly r1Sigma: number;
  /** Train on the teacher's cached synthetic latents (the paper's choice) or on the dataset's real latents. */
  readonly data: 'synthetic' | 'real';
  /**
   * Student inputs after the first time: forward-noised data (false, the paper's), or the student's own sampler
   * path from pure noise (true, DMD2's "backward simulation"), so each later step learns on what it meets.
   */
  readonly backwardSimulation: boolean;
}

/**
 * Defaults and why. The student time probabilities default per step count (`defaultStudentTimeSchedule`).
 * - generatorLr 1e-4: METHODS.md asks for 1e-5..1e-4 at this scale; the top of the range because CPU runs are
 *   short (a few thousand updates). Betas (0.9, 0.999): the student is a fine-tuned pretrained net.
 * - discriminatorLr 2e-4 with betas (0, 0.99): ADD/LADD's discriminator Adam; twice the student's rate, as
 *   section 3 notes D often gets a higher rate. One D update per student update (raise it if D lags).
 * - tHat (m, s) = (1, 1): the faithful port's values; most mass on high noise (global structure).
 * - heads 64 wide, 8 groups: small next to the MNIST teacher (64/128 channels); every feature tapped.
 * - warm-up 200 updates: about a tenth of a typical run, enough for the easy steps to settle first.
 * - R1 off: optional in the paper; sigma 0.01 is small against unit-variance latents when it is turned on.
 * - EMA 0.99: a horizon of ~100 updates smooths the adversarial noise without lagging a short run.
 * - backward simulation off: the paper forward-noises data at every student time. On MNIST that 4-step student
 *   samples worse at 4 steps than at 2 (lower precision): its later steps never saw its own earlier outputs.
 */
export const LADD_DEFAULTS: Omit<LaddConfig, 'warmupProbs' | 'probs'> = {
  steps: 4,
  iterations: 2000,
  batchSize: 32,
  generatorLr: 1e-4,
  generatorBetas: [0.9, 0.999],
  discriminatorLr: 2e-4,
  discriminatorBetas: [0, 0.99],
  discriminatorUpdates: 1,
  emaDecay: 0.99,
  tHatMean: 1,
  tHatStd: 1,
  features: 'all',
  headChannels: 64,
  headGroups: 8,
  headEmbedDim: 64,
  warmupIterations: 200,
  r1Weight: 0,
  r1Sigma: 0.01,
  data: 'synthetic',
  backwardSimulation: false,
};

/** Defaults overlaid with `overrides`, checked; the error names the key and the bad value. */
export function resolveLaddConfig(overrides: Partial<LaddConfig> = {}): LaddConfig {
  const base = { ...LADD_DEFAULTS, ...overrides };
  const schedule = defaultStudentTimeSchedule(base.steps, base.warmupIterations);
  const c: LaddConfig = {
    ...base,
    warmupProbs: overrides.warmupProbs ?? schedule.warmupProbs,
    probs: overrides.probs ?? schedule.probs,
  };
  const fail = configFailure('LADD');
  checkAdversarialTraining(c, fail);
  for (const key of ['steps', 'headChannels', 'headGroups', 'headEmbedDim'] as const)
    checkInteger(fail, key, c[key]);
  for (const key of ['tHatStd', 'r1Sigma'] as const) {
    if (!(c[key] > 0)) fail(key, c[key], 'use a positive number');
  }
  if (!(c.r1Weight >= 0)) fail('r1Weight', c.r1Weight, 'use 0 (off) or a positive weight');
  if (!Number.isFinite(c.tHatMean)) fail('tHatMean', c.tHatMean, 'use a finite number');
  if (c.headChannels % c.headGroups !== 0) fail('headGroups', c.headGroups, 'must divide headChannels');
  if (c.data !== 'synthetic' && c.data !== 'real') fail('data', c.data, 'use "synthetic" or "real"');
  if (typeof c.backwardSimulation !== 'boolean')
    fail('backwardSimulation', c.backwardSimulation, 'use true or false');
  validateStudentTimeSchedule(c, c.steps);
  return c;
}

/** The heads' shape for a teacher U-Net under `config`. */
export function laddHeadsConfig(unet: UNetConfig, config: LaddConfig): HeadsConfig {
  return {
    features: tapUNetFeatures(unet, config.features),
    channels: config.headChannels,
    groups: config.headGroups,
    embedDim: config.headEmbedDim,
    numClasses: unet.numClasses,
  };
}

/** Discriminator noise levels: t_hat = sigmoid(mean + std * z), z ~ N(0, 1). */
export function sampleLogitNormal(rng: Rng, n: number, mean: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-(mean + std * rng.normal())));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The algorithm.

/** What a LADD run trains with: the frozen teacher, the heads' shape and the (synthetic) latents. */
export interface LaddSetup {
  readonly config: LaddConfig;
  readonly formulation: Formulation;
  /** The teacher's U-Net config, which the student shares. */
  readonly unet: UNetConfig;
  /** The frozen teacher's weights: read by the discriminator, never handed to an optimiser. */
  readonly teacherParams: Params;
  readonly heads: HeadsConfig;
  /** Training latents (x0) and their classes; batch k is the same in every run with the same seed. */
  readonly data: BatchLoader;
}

/**
 * 0. The two players. The student starts as a copy of the teacher (its folder holds the EMA weights); the heads
 * start fresh. The teacher itself is no player, so no optimiser ever sees its weights.
 */
export function laddPlayers(setup: LaddSetup, rng: Rng): { generator: Player; discriminator: Player } {
  const c = setup.config;
  return {
    generator: studentPlayer(setup.teacherParams, c.generatorLr, c.generatorBetas, c.emaDecay),
    discriminator: discriminatorPlayer(initHeads(setup.heads, rng), c.discriminatorLr, c.discriminatorBetas),
  };
}

/**
 * Backward simulation (DMD2): the input of the student's time `times[k_i]` for each sample i, made as sampling
 * makes it: start at pure noise (`start`, the data forward-noised to times[0]), predict x0 with the student,
 * re-noise to the next time with fresh noise, and so on down to times[k_i]. No gradient flows into the path.
 */
export function simulatedStudentInputs(
  denoise: (x: tf.Tensor4D, t: tf.Tensor1D) => tf.Tensor4D,
  f: Formulation,
  times: readonly number[],
  timeIndex: Int32Array,
  start: tf.Tensor4D,
  rng: Rng,
): tf.Tensor4D {
  const b = start.shape[0];
  const deepest = Math.max(0, ...timeIndex);
  const pick = (k: number): tf.Tensor4D =>
    tf.tensor4d(
      Float32Array.from(timeIndex, (ki) => (ki === k ? 1 : 0)),
      [b, 1, 1, 1],
    );
  let x = start.clone();
  let inputs = tf.tidy(() => start.mul(pick(0)) as tf.Tensor4D);
  for (let k = 1; k <= deepest; k++) {
    const fresh = randn(rng, start.shape) as tf.Tensor4D;
    const next = tf.tidy(() => {
      const x0Hat = denoise(x, tf.fill([b], times[k - 1]!) as tf.Tensor1D);
      return addNoise(f, x0Hat, fresh, tf.fill([b], times[k]!) as tf.Tensor1D);
    });
    const withLevel = tf.tidy(() => inputs.add(next.mul(pick(k))) as tf.Tensor4D);
    tf.dispose([x, inputs, fresh]);
    x = next;
    inputs = withLevel;
  }
  x.dispose();
  return inputs;
}

/**
 * Steps 1-6 for one update: draws the batch and all noise from `ctx.rng` (checkpointed, so a resumed run
 * replays the same draws) and returns the round the shared adversarial step trains on. `studentNow` (the
 * student's current weights) runs the sampler path when `backwardSimulation` is on.
 */
export function laddRound(
  setup: LaddSetup,
  ctx: Pick<StepContext, 'step' | 'rng'>,
  phase: Phase,
  index: number,
  studentNow?: Params,
): AdversarialRound {
  const { config: c, formulation: f, unet, teacherParams, heads, data } = setup;
  const { rng } = ctx;
  const b = c.batchSize;
  const schedule: StudentTimeSchedule = c;

  // 1. Data: a fresh batch of synthetic latents x0 and their classes c for every update of the step.
  const updatesPerStep = c.discriminatorUpdates + 1;
  const batch = data.batchAt(
    ctx.step * updatesPerStep + (phase === 'generator' ? c.discriminatorUpdates : index),
  );
  const { x: x0, labels } = batch;
  const shape = x0.shape.slice(1);

  // 2. Student input: s from the student times (warm-up schedule), then x_s = alpha_s x0 + sigma_s eps
  //    (pure noise at s = 1); with backward simulation, x_s after the first time is the student's sampler path.
  const times = studentTimes(f, c.steps);
  const sValues = sampleStudentTimes(rng, times, studentTimeProbs(schedule, ctx.step), b);
  const s = tf.tensor1d(sValues);
  const eps = randn(rng, [b, ...shape]) as tf.Tensor4D;
  let xs: tf.Tensor4D;
  if (c.backwardSimulation) {
    if (studentNow === undefined)
      throw new Error('LADD backward simulation needs the current student weights');
    const start = tf.tidy(() => addNoise(f, x0, eps, tf.fill([b], times[0]!) as tf.Tensor1D));
    const denoise = netDenoiser((x, t, l) => unetForward(studentNow, unet, x, t, l).out, f);
    // The draws are float32: compare each with the float32 of every time.
    const timeIndex = Int32Array.from(sValues, (v) => times.findIndex((t) => Math.fround(t) === v));
    xs = simulatedStudentInputs((x, t) => denoise(x, t, labels), f, times, timeIndex, start, rng);
    start.dispose();
  } else {
    xs = addNoise(f, x0, eps, s);
  }

  // 3. Discriminator noise level t_hat ~ logit-normal(tHatMean, tHatStd), shared by real and fake; fresh noise
  //    for each.
  const tHat = tf.tensor1d(sampleLogitNormal(rng, b, c.tHatMean, c.tHatStd));
  const netTime = tHat.mul(f.netTime(1)) as tf.Tensor1D;
  const { alpha, sigma } = alphaSigmaTensors(f, tHat); // [B, 1, 1, 1] each
  const noise = { real: randn(rng, [b, ...shape]), fake: randn(rng, [b, ...shape]) };
  const r1Noise = c.r1Weight > 0 ? (randn(rng, [b, ...shape]) as tf.Tensor4D) : undefined;

  // 4. Student: x0_hat = D_theta(x_s, s, c), guidance-free (the class, never the null label).
  const fake = (studentParams: Params): tf.Tensor4D =>
    netDenoiser((x, t, l) => unetForward(studentParams, unet, x, t, l).out, f)(xs, s, labels);

  // 5. Discriminator: re-noise at t_hat, run the FROZEN teacher's encoder (the decoder is not needed), then one
  //    head per tapped feature, conditioned on t_hat and c. The teacher's weights are constants here: the
  //    generator's gradient flows through them into x0_hat; no gradient is taken with respect to them.
  const renoise = (x: tf.Tensor4D, side: 'real' | 'fake'): tf.Tensor4D =>
    x.mul(alpha).add(noise[side].mul(sigma)) as tf.Tensor4D;
  const judge = (headParams: Params, xNoisy: tf.Tensor4D): HeadLogits => {
    const features = unetEncoderForward(teacherParams, unet, xNoisy, netTime, labels);
    return headLogits(headParams, heads, pickFeatures(features, heads), netTime, labels);
  };

  const owned = [x0, labels, s, eps, xs, tHat, netTime, alpha, sigma, noise.real, noise.fake, r1Noise ?? []];

  // 6. Losses (hinge, in the shared step): L_D = sum_k max(0, 1 - D_k(real)) + max(0, 1 + D_k(sg(fake))),
  //    L_G = -sum_k D_k(fake). Optional approximate R1: perturb the re-noised real input, penalise the logit
  //    change.
  return {
    real: x0,
    fake,
    logits: (headParams, x, side) => judge(headParams, renoise(x, side)),
    ...(r1Noise === undefined
      ? {}
      : {
          discriminatorPenalties: (headParams: Params, realLogits: HeadLogits) => ({
            r1: approximateR1(
              realLogits,
              judge(headParams, perturbForR1(renoise(x0, 'real'), r1Noise, c.r1Sigma)),
            ).mul(c.r1Weight) as tf.Scalar,
          }),
        }),
    dispose: () => tf.dispose(owned),
  };
}

/** One LADD trainer step over the players of `laddPlayers`: D update(s), then the student update. */
export function laddStep(setup: LaddSetup, players: Readonly<Record<string, Player>>): TrainStep {
  const options = {
    players,
    generator: 'generator',
    discriminator: 'discriminator',
    loss: 'hinge',
    discriminatorUpdates: setup.config.discriminatorUpdates,
  } as const;
  return (ctx) =>
    adversarialStep(ctx, options, (phase, index) =>
      laddRound(setup, ctx, phase, index, players.generator?.params),
    );
}
