// ADD: Adversarial Diffusion Distillation (Sauer et al. 2023, arXiv 2311.17042; METHODS.md section 1). The student
// denoises forward-noised REAL latents; its x0_hat is decoded to pixels and judged by trainable heads on a FROZEN
// pixel-space feature network, and pulled towards the teacher's one-step CFG estimate of it, re-noised.

import { type Rng, randn } from '../core/rng.js';
import { stopGradient } from '../core/stop-gradient.js';
import * as tf from '../core/tf.js';
import type { BatchLoader } from '../data/loader.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import { addNoise, type Formulation, sampleUniformTimes } from '../diffusion/formulation.js';
import { type AutoencoderConfig, decodeLatents } from '../nn/autoencoder.js';
import { type FeatureNetConfig, featureNetTaps } from '../nn/feature-net.js';
import type { HeadLogits } from '../nn/heads.js';
import type { Params } from '../nn/params.js';
import {
  initProjectionHeads,
  type ProjectionHeadsConfig,
  projectionHeadLogits,
} from '../nn/projection-heads.js';
import type { Player } from '../train/checkpoint.js';
import type { StepContext, TrainStep } from '../train/loop.js';
import { type AddConfig, type DistillationWeighting, pickFeatureMaps } from './add-config.js';
import {
  type AdversarialRound,
  adversarialStep,
  batchIndex,
  generatorTermsUpdate,
  type Phase,
} from './shared/adversarial.js';
import { discriminatorPlayer, studentPlayer } from './shared/players.js';
import { exactR1 } from './shared/r1.js';
import { sampleStudentTimes, studentTimes } from './shared/student-times.js';

export {
  ADD_DEFAULTS,
  type AddConfig,
  addHeadsConfig,
  type DistillationWeighting,
  pickFeatureMaps,
  resolveAddConfig,
} from './add-config.js';

// ---------------------------------------------------------------------------------------------------------------
// Helpers of the distillation loss.

/** c(t) of the distillation loss: alpha_t, or SDS's alpha_t / (2 sigma_t) * w(t) with w(t) = 1. */
export function distillationTimeWeight(f: Formulation, t: number, weighting: DistillationWeighting): number {
  const { alpha, sigma } = f.alphaSigma(t);
  return weighting === 'alpha' ? alpha : alpha / (2 * sigma);
}

/** A generator round's distillation draws: t, eps' of `shape`, and lambda c(t). Caller owns the tensors. */
function drawDistillation(f: Formulation, c: AddConfig, rng: Rng, shape: readonly number[]) {
  const t = sampleUniformTimes(f, rng, shape[0]!, c.tMin, c.tMax);
  const weights = t.map(
    (ti) => c.distillationWeight * distillationTimeWeight(f, ti, c.distillationWeighting),
  );
  return { t: tf.tensor1d(t), noise: randn(rng, shape) as tf.Tensor4D, weights: tf.tensor1d(weights) };
}

// ---------------------------------------------------------------------------------------------------------------
// The algorithm.

/** What an ADD run trains with. The teacher, decoder and F are frozen constants: none of them is a player. */
export interface AddSetup {
  readonly config: AddConfig;
  readonly formulation: Formulation;
  /** The teacher D_psi at the distillation target's CFG scale, and the student D_theta (`methodDenoisers`). */
  readonly teacher: Denoiser;
  student(params: Params): Denoiser;
  /** The teacher's weights: the student's starting point. */
  readonly teacherParams: Params;
  /** The teacher's autoencoder; its decoder turns latents into F's pixels (gradients flow through it). */
  readonly autoencoder: { readonly params: Params; readonly config: AutoencoderConfig };
  /** The pretrained pixel-space feature network F. */
  readonly featureNet: { readonly params: Params; readonly config: FeatureNetConfig };
  readonly heads: ProjectionHeadsConfig;
  /** Real training latents x0 (the dataset through the teacher's encoder) and their classes. */
  readonly data: BatchLoader;
}

/** One update's draws, with what tests and the timing need to look inside. */
export interface AddRound extends AdversarialRound {
  /** The classes c of the round's batch, int32 [B]. */
  readonly labels: tf.Tensor1D;
  /** F's maps of the decoded real x0: the heads' real inputs, where R1 is taken (empty with no adversary). */
  readonly realFeatures: readonly tf.Tensor4D[];
  /** The heads with `headParams` on `maps`, conditioned on this round's classes and real images. */
  judge(headParams: Params, maps: readonly tf.Tensor4D[]): HeadLogits;
  /** A generator round's distillation draws: teacher times t [B], noise eps' and weights lambda c(t) [B]. */
  readonly distillation?: {
    readonly t: tf.Tensor1D;
    readonly noise: tf.Tensor4D;
    readonly weights: tf.Tensor1D;
  };
}

/**
 * 0. The two players. The student starts as a copy of the teacher; the heads start fresh. The teacher, decoder and
 * F are no players, so no optimiser ever sees their weights.
 */
export function addPlayers(setup: AddSetup, rng: Rng): { generator: Player; discriminator: Player } {
  const c = setup.config;
  return {
    generator: studentPlayer(setup.teacherParams, c.generatorLr, c.generatorBetas, c.emaDecay),
    discriminator: discriminatorPlayer(
      initProjectionHeads(setup.heads, rng),
      c.discriminatorLr,
      c.discriminatorBetas,
    ),
  };
}

/**
 * The teacher's one-step CFG estimate of the student's re-noised output, x_teacher = D_psi(sg(alpha_t xhat +
 * sigma_t eps'), t, c). Its input is cut from the tape, so no gradient reaches xhat or runs back through the
 * teacher. Caller owns the result.
 */
export function distillationTarget(
  setup: AddSetup,
  xhat: tf.Tensor4D,
  t: tf.Tensor1D,
  noise: tf.Tensor4D,
  labels: tf.Tensor1D,
): tf.Tensor4D {
  return tf.tidy(() => {
    const xt = stopGradient(addNoise(setup.formulation, xhat, noise, t));
    return setup.teacher(xt, t, labels);
  });
}

/**
 * Steps 1-6 for one update of `phase` on data batch `batch`: draws all noise from `ctx.rng` (checkpointed, so a
 * resumed run replays the same draws) and returns the round the shared adversarial step trains on.
 */
export function addRound(
  setup: AddSetup,
  ctx: Pick<StepContext, 'step' | 'rng'> & Partial<Pick<StepContext, 'shard'>>,
  phase: Phase,
  batch: number,
): AddRound {
  const { config: c, formulation: f, autoencoder: ae, featureNet: F, heads, data } = setup;
  const { rng } = ctx;
  const adversarial = c.adversarialWeight > 0;
  // Data-parallel: every draw is of the whole batch (the same stream on every rank); each rank keeps its rows.
  // In one process `shard` keeps them all.
  const shard = <T extends tf.Tensor>(t: T): T => (ctx.shard === undefined ? t : ctx.shard(t));

  // 1. Real x0 (a fresh batch of the encoded dataset for every update) and classes c; s uniform over the N student
  //    times; x_s = alpha_s x0 + sigma_s eps, the forward-noised real latent (pure noise at s = 1).
  const whole = data.batchAt(batch);
  const shape = whole.x.shape.slice(1);
  const times = sampleStudentTimes(rng, studentTimes(f, c.steps), c.probs, c.batchSize);
  const s = shard(tf.tensor1d(times));
  const eps = shard(randn(rng, [c.batchSize, ...shape]) as tf.Tensor4D);
  // Step 4's draws, made here so that they follow the same ones in every phase's stream.
  const wholeDistillation =
    phase === 'generator' && c.distillationWeight > 0
      ? drawDistillation(f, c, rng, [c.batchSize, ...shape])
      : undefined;
  const x0 = shard(whole.x);
  const labels = shard(whole.labels);
  const b = x0.shape[0]; // this process's rows
  const xs = addNoise(f, x0, eps, s);

  // 2. Student: xhat = xhat_theta(x_s, s, c), guidance-free (the class, never the null label).
  const fake = (studentParams: Params): tf.Tensor4D => setup.student(studentParams)(xs, s, labels);

  // 3. Discriminator D_k(F_k(x), c, x0) and L_adv_G = -sum_k D_k(F_k(xhat), c, x0) (hinge, in the shared step):
  //    decode to pixels with the frozen decoder, run the frozen F, one projection head per tapped block of F,
  //    conditioned on c and on an embedding of the real x0 (a learned linear map, inside each head, of F's
  //    penultimate features of decoded x0). Real pixels are decoded x0 too, so D compares like with like and
  //    cannot win on the autoencoder's reconstruction error. F's maps of the real x0 are made once, outside the
  //    loss. Decoder and F weights are constants: the generator's gradient flows through them into xhat.
  const pixelTaps = (x: tf.Tensor4D) =>
    featureNetTaps(F.params, F.config, decodeLatents(ae.params, ae.config, x));
  //    With x0Conditioning 'signal-only', a sample whose x_s is pure noise (alpha_s = 0) gets a zero embedding.
  const [realFeatures, realImage] = adversarial
    ? tf.tidy(() => {
        const taps = pixelTaps(x0);
        const maps = pickFeatureMaps(taps.maps, heads);
        if (c.x0Conditioning === 'always') return [maps, taps.features] as const;
        const holdsX0 = times.map((t) => (f.alphaSigma(t).alpha > 0 ? 1 : 0));
        return [
          maps,
          taps.features.mul(shard(tf.tensor2d(holdsX0, [c.batchSize, 1]))) as tf.Tensor2D,
        ] as const;
      })
    : [[], tf.zeros([b, heads.imageDim]) as tf.Tensor2D];
  const judge = (headParams: Params, maps: readonly tf.Tensor4D[]): HeadLogits =>
    projectionHeadLogits(headParams, heads, maps, { labels, image: realImage });

  // 4. Distillation (generator rounds): t ~ U[tMin, tMax], x_teacher = D_psi(sg(alpha_t xhat + sigma_t eps'), t, c)
  //    with CFG, L_distill = mean_b c(t_b) * mean ||xhat - sg(x_teacher)||^2.
  // 5. L_G = adversarialWeight * L_adv_G + lambda * L_distill: the shared step weights the GAN term and adds these.
  const distillation = wholeDistillation && {
    t: shard(wholeDistillation.t),
    noise: shard(wholeDistillation.noise),
    weights: shard(wholeDistillation.weights),
  };
  const generatorTerms = (_: Params, xhat: tf.Tensor4D): Record<string, tf.Scalar> => {
    if (!distillation) return {};
    const target = distillationTarget(setup, xhat, distillation.t, distillation.noise, labels);
    const perSample = xhat.sub(target).square().mean([1, 2, 3]); // [B]
    return { distill: perSample.mul(distillation.weights).mean() as tf.Scalar };
  };

  // 6. L_D = hinge (in the shared step) + gamma R1, R1 the squared gradient norm of sum_k D_k with respect to the
  //    heads' inputs (F's maps) at the real x0.
  const discriminatorPenalties =
    c.r1Weight > 0
      ? (headParams: Params): Record<string, tf.Scalar> => ({
          r1: exactR1((maps) => judge(headParams, maps), realFeatures).mul(c.r1Weight) as tf.Scalar,
        })
      : undefined;

  const owned = [x0, labels, s, eps, xs, ...realFeatures, realImage, ...Object.values(distillation ?? {})];
  return {
    labels,
    fake,
    realLogits: (headParams) => judge(headParams, realFeatures),
    fakeLogits: (headParams, x) => judge(headParams, pickFeatureMaps(pixelTaps(x).maps, heads)),
    judge,
    realFeatures,
    ...(distillation ? { distillation, generatorTerms } : {}),
    ...(discriminatorPenalties && adversarial ? { discriminatorPenalties } : {}),
    dispose: () => tf.dispose(owned),
  };
}

/**
 * One ADD trainer step over the players of `addPlayers`: D update(s), then the student update. With
 * adversarialWeight 0 it is the student's distillation update alone (the heads never train).
 */
export function addStep(setup: AddSetup, players: Readonly<Record<string, Player>>): TrainStep {
  const c = setup.config;
  if (c.adversarialWeight === 0) {
    return (ctx) => {
      const round = addRound(setup, ctx, 'generator', batchIndex(ctx.step, 1, 0));
      return generatorTermsUpdate(ctx, round, 'distill');
    };
  }
  // Step 5: the shared step weights L_adv_G by adversarialWeight.
  const options = {
    loss: 'hinge',
    discriminatorUpdates: c.discriminatorUpdates,
    adversarialWeight: c.adversarialWeight,
  } as const;
  return (ctx) =>
    adversarialStep(ctx, players, options, (phase, batch) => addRound(setup, ctx, phase, batch));
}
