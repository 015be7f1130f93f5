// LADD: Latent Adversarial Diffusion Distillation (Sauer et al. 2024, arXiv 2403.12015; METHODS.md section 3).
// The FROZEN teacher is the discriminator's feature network: samples are re-noised at t_hat ~ logit-normal, the
// teacher's encoder runs on them, and small trainable heads judge its features. Hinge loss, no distillation loss.
import { type Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { ConditionedBatches } from '../data/loader.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import { addNoise, alphaSigmaTensors, type Formulation } from '../diffusion/formulation.js';
import {
  type HeadCondition,
  type HeadLogits,
  type HeadsConfig,
  headLogits,
  initHeads,
  pickFeatures,
} from '../nn/heads.js';
import { ParamScope, type Params } from '../nn/params.js';
import { textEncoderForward } from '../nn/text-encoder.js';
import { type Condition, type UNetConfig, unetEncoderForward } from '../nn/unet.js';
import { fewStepPath } from '../samplers/few-step.js';
import type { Player } from '../train/checkpoint.js';
import type { StepContext, TrainStep } from '../train/loop.js';
import type { LaddConfig } from './ladd-config.js';
import { type AdversarialRound, adversarialStep, GENERATOR } from './shared/adversarial.js';
import { discriminatorPlayer, studentPlayer } from './shared/players.js';
import { approximateR1, perturbForR1 } from './shared/r1.js';
import { sampleStudentTimes, studentTimeProbs, studentTimes } from './shared/student-times.js';

/** What a LADD run trains with: the student's denoiser, the frozen teacher's encoder, the heads and the latents. */
export interface LaddSetup {
  readonly config: LaddConfig;
  readonly formulation: Formulation;
  /** The student D_theta over given weights (`methodDenoisers`). */
  readonly student: (params: Params) => Denoiser;
  /** The teacher's U-Net config, which the student shares. */
  readonly unet: UNetConfig;
  /**
   * The frozen teacher's weights: its encoder is the discriminator's feature network, never handed to an
   * optimiser. LADD runs no teacher denoiser: the teacher's samples are the synthetic latents.
   */
  readonly teacherParams: Params;
  readonly heads: HeadsConfig;
  /**
   * Training latents (x0) and their condition (classes, or prompts in aspect-ratio buckets); batch k is the same in
   * every run with the same seed.
   */
  readonly data: ConditionedBatches;
}

/** Discriminator noise levels: t_hat = sigmoid(mean + std * z), z ~ N(0, 1). */
export function sampleLogitNormal(rng: Rng, n: number, mean: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-(mean + std * rng.normal())));
  return out;
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
 * makes it: the few-step sampler's path from `start` (the data forward-noised to times[0], pure noise), predict
 * x0, re-noise to the next time with fresh noise, and so on down to times[k_i]. No gradient flows into the path.
 */
export function simulatedStudentInputs(
  denoise: Denoiser,
  f: Formulation,
  times: readonly number[],
  timeIndex: Int32Array,
  start: tf.Tensor4D,
  labels: Condition,
  rng: Rng,
): tf.Tensor4D {
  const b = start.shape[0];
  const pick = (k: number): tf.Tensor4D =>
    tf.tensor4d(
      Float32Array.from(timeIndex, (ki) => (ki === k ? 1 : 0)),
      [b, 1, 1, 1],
    );
  const path = fewStepPath(denoise, f, start, { times, labels, rng });
  let inputs: tf.Tensor4D | undefined;
  try {
    for (let k = 0; k <= Math.max(0, ...timeIndex); k++) {
      const state = path.next().value; // x at times[k]: a state, never the path's final x0 estimate here
      const sum = tf.tidy(() => {
        const picked = state.mul(pick(k)) as tf.Tensor4D;
        return inputs === undefined ? picked : (inputs.add(picked) as tf.Tensor4D);
      });
      inputs?.dispose();
      inputs = sum;
    }
  } finally {
    path.return(undefined as never); // frees the path's last state; no denoiser call past the deepest time
  }
  return inputs!;
}

/** A LADD round, with the condition and shape of its batch (the hybrid's extra term is drawn for the same batch). */
export interface LaddRound extends AdversarialRound {
  /** The condition c of the round's batch (classes [B] or prompt tokens [B, L], int32), owned by the round. */
  readonly condition: Condition;
  /** [B, H, W, C] of the round's latents. */
  readonly batchShape: readonly [number, number, number, number];
}

/**
 * Step 2: the student's times s and inputs x_s for latents `x0`: s from the student times (warm-up schedule), then
 * x_s = alpha_s x0 + sigma_s eps (pure noise at s = 1); with backward simulation, x_s after the first time is the
 * student's own sampler path from pure noise (`studentNow`: its current weights). Draws from `ctx.rng`.
 */
export function laddStudentInputs(
  setup: Pick<LaddSetup, 'config' | 'formulation' | 'student'>,
  ctx: Pick<StepContext, 'step' | 'rng'>,
  x0: tf.Tensor4D,
  condition: Condition,
  studentNow?: Params,
): { readonly s: tf.Tensor1D; readonly xs: tf.Tensor4D } {
  const { config: c, formulation: f } = setup;
  const { rng } = ctx;
  const b = x0.shape[0];
  if (c.backwardSimulation && studentNow === undefined)
    throw new Error('LADD backward simulation needs the current student weights');
  const times = studentTimes(f, c.steps);
  const sValues = sampleStudentTimes(rng, times, studentTimeProbs(c, ctx.step), b);
  const s = tf.tensor1d(sValues);
  const eps = randn(rng, x0.shape) as tf.Tensor4D;
  try {
    if (!c.backwardSimulation) return { s, xs: addNoise(f, x0, eps, s) };
    const start = tf.tidy(() => addNoise(f, x0, eps, tf.fill([b], times[0]!) as tf.Tensor1D));
    // The draws are float32: compare each with the float32 of every time.
    const timeIndex = Int32Array.from(sValues, (v) => times.findIndex((t) => Math.fround(t) === v));
    const xs = simulatedStudentInputs(setup.student(studentNow!), f, times, timeIndex, start, condition, rng);
    start.dispose();
    return { s, xs };
  } finally {
    eps.dispose();
  }
}

/**
 * Steps 1-6 for one update on data batch `batch`: draws all noise from `ctx.rng` (checkpointed, so a resumed run
 * replays the same draws) and returns the round the shared adversarial step trains on. `studentNow` (the
 * student's current weights) runs the sampler path when `backwardSimulation` is on.
 */
export function laddRound(
  setup: LaddSetup,
  ctx: Pick<StepContext, 'step' | 'rng'> & Partial<Pick<StepContext, 'shard'>>,
  batch: number,
  studentNow?: Params,
): LaddRound {
  const { config: c, formulation: f, unet, teacherParams, heads, data } = setup;
  const { rng } = ctx;
  const b = c.batchSize;

  // 1. Data: a fresh batch of synthetic latents x0 and their condition c (classes, or prompts: then every batch is
  //    one aspect-ratio bucket) for every update of the step.
  const whole = data.batchAt(batch);
  const shape = whole.x.shape.slice(1);

  // 2. Student input x_s at a student time s (forward-noised data, or the student's own path).
  const inputs = laddStudentInputs(setup, ctx, whole.x, whole.condition, studentNow);

  // 3. Discriminator noise level t_hat ~ logit-normal(tHatMean, tHatStd), shared by real and fake; fresh noise
  //    for each.
  const tHatWhole = tf.tensor1d(sampleLogitNormal(rng, b, c.tHatMean, c.tHatStd));
  const noiseWhole = { real: randn(rng, [b, ...shape]), fake: randn(rng, [b, ...shape]) };
  const r1NoiseWhole = c.r1Weight > 0 ? (randn(rng, [b, ...shape]) as tf.Tensor4D) : undefined;

  // Data-parallel: everything above is drawn for the whole batch (the same stream on every rank); each rank keeps
  // its rows. In one process `shard` keeps them all.
  const shard = <T extends tf.Tensor>(t: T): T => (ctx.shard === undefined ? t : ctx.shard(t));
  const [x0, condition, s, xs, tHat] = [whole.x, whole.condition, inputs.s, inputs.xs, tHatWhole].map(
    shard,
  ) as [tf.Tensor4D, Condition, tf.Tensor1D, tf.Tensor4D, tf.Tensor1D];
  const noise = { real: shard(noiseWhole.real), fake: shard(noiseWhole.fake) };
  const r1Noise = r1NoiseWhole === undefined ? undefined : shard(r1NoiseWhole);
  const netTime = tHat.mul(f.netTime(1)) as tf.Tensor1D;
  const { alpha, sigma } = alphaSigmaTensors(f, tHat); // [B, 1, 1, 1] each

  // 4. Student: x0_hat = D_theta(x_s, s, c), guidance-free (the class or prompt, never the null one).
  const fake = (studentParams: Params): tf.Tensor4D => setup.student(studentParams)(xs, s, condition);

  // The heads' condition: the class, or the frozen teacher's pooled prompt embedding (a constant of the round).
  const { text } = unet;
  const headCondition: HeadCondition = text
    ? tf.tidy(() => {
        const scope = ParamScope.apply(teacherParams).child('text');
        return textEncoderForward(scope, text, condition as tf.Tensor2D).pooled;
      })
    : (condition as tf.Tensor1D);

  // 5. Discriminator: re-noise at t_hat, run the FROZEN teacher's encoder (the decoder is not needed), then one
  //    head per tapped feature, conditioned on t_hat and c. The teacher's weights are constants here: the
  //    generator's gradient flows through them into x0_hat; no gradient is taken with respect to them.
  const renoise = (x: tf.Tensor4D, side: 'real' | 'fake'): tf.Tensor4D =>
    x.mul(alpha).add(noise[side].mul(sigma)) as tf.Tensor4D;
  const judge = (headParams: Params, xNoisy: tf.Tensor4D): HeadLogits => {
    const features = unetEncoderForward(teacherParams, unet, xNoisy, netTime, condition);
    return headLogits(headParams, heads, pickFeatures(features, heads), netTime, headCondition);
  };

  const owned = [x0, condition, s, xs, tHat, netTime, alpha, sigma, noise.real, noise.fake, r1Noise ?? []];
  if (headCondition !== condition) owned.push(headCondition);

  // 6. Losses (hinge, in the shared step): L_D = sum_k max(0, 1 - D_k(real)) + max(0, 1 + D_k(sg(fake))),
  //    L_G = -sum_k D_k(fake). Optional approximate R1: perturb the re-noised real input, penalise the logit
  //    change.
  return {
    condition,
    batchShape: x0.shape,
    fake,
    realLogits: (headParams) => judge(headParams, renoise(x0, 'real')),
    fakeLogits: (headParams, x) => judge(headParams, renoise(x, 'fake')),
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
  // Each rank runs the student's sampler path on the whole batch before taking its rows (the path's draws must
  // match one process's): backward simulation repeats that work on every rank.
  const options = { loss: 'hinge', discriminatorUpdates: setup.config.discriminatorUpdates } as const;
  return (ctx) =>
    adversarialStep(ctx, players, options, (_, batch) =>
      laddRound(setup, ctx, batch, players[GENERATOR]?.params),
    );
}
