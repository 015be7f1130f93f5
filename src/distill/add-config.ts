// ADD's configuration (METHODS.md section 1): what each value means, the defaults and why, the checks, and the
// shape of the discriminator heads on the feature network. The algorithm is in add.ts.
import type * as tf from '../core/tf.js';
import type { FeatureNetConfig } from '../nn/feature-net.js';
import type { ProjectionHeadsConfig } from '../nn/projection-heads.js';
import {
  ADVERSARIAL_TRAINING_DEFAULTS,
  type AdversarialTraining,
  checkAdversarialTraining,
  checkInteger,
  configFailure,
} from './shared/adversarial-config.js';

/** c(t) of the distillation loss: 'alpha' = alpha_t (the paper's default); 'sds' = alpha_t / (2 sigma_t). */
export type DistillationWeighting = 'alpha' | 'sds';

export interface AddConfig extends AdversarialTraining {
  /** Student steps N: trains on the N trailing times and samples with N or any divisor of N. */
  readonly steps: number;
  /** Probabilities of the student times (pure noise first). */
  readonly probs: readonly number[];
  /** Weight of L_adv_G; 0 trains by distillation alone and never updates the discriminator. */
  readonly adversarialWeight: number;
  /** lambda: weight of L_distill; 0 trains adversarially alone (no teacher calls). */
  readonly distillationWeight: number;
  /** c(t) of the distillation loss. */
  readonly distillationWeighting: DistillationWeighting;
  /** The teacher's times for the distillation loss: t ~ U[tMin, tMax] (VP: snapped to its 1000 steps). */
  readonly tMin: number;
  readonly tMax: number;
  /** CFG scale of the teacher's target; 'teacher' uses its config's `sampling.cfg`. */
  readonly teacherCfg: number | 'teacher';
  /** Conv blocks of F the heads read ('all', or 0-based block indices). */
  readonly featureLayers: 'all' | readonly number[];
  /** Head width, GroupNorm groups and projection (condition embedding) width. */
  readonly headChannels: number;
  readonly headGroups: number;
  readonly headEmbedDim: number;
  /** gamma: weight of exact R1 on the real features (0 disables it). */
  readonly r1Weight: number;
  /**
   * When the heads see the real x0's embedding: 'always' (the paper), or 'signal-only': only for samples whose
   * student input holds some of x0 (alpha_s > 0); at a pure-noise student time (flow's s = 1) they get none.
   */
  readonly x0Conditioning: X0Conditioning;
}

/** See `AddConfig.x0Conditioning`. */
export type X0Conditioning = 'always' | 'signal-only';

/**
 * Defaults and why (the optimisation settings, as LADD's: ADVERSARIAL_TRAINING_DEFAULTS). Student times are
 * uniform (`probs`, 1/N each), as in the paper; 4 steps as LADD.
 * - adversarialWeight 1, distillationWeight (lambda) 2.5, c(t) = alpha_t: the paper's objective. The 'sds'
 *   alternative is alpha_t / (2 sigma_t) * w(t) with w(t) = 1 (no extra per-time reweighting).
 * - t in [0.02, 0.98]: the public port's clipping; the ends give no useful target (t near 0: the teacher returns
 *   its input; t near 1: it ignores it) and make the SDS weighting blow up at t -> 0.
 * - teacherCfg 'teacher': the CFG the teacher was tuned to sample with (its config's `sampling.cfg`).
 * - heads 32 wide, 8 groups, 32-wide projection: F's maps are narrow (tens of channels) at 14x14 and 7x7.
 * - r1Weight (gamma) 1, not the paper's 1e-5: the paper's value is for DINOv2 token features; here R1 is taken
 *   w.r.t. the maps of a small conv net whose heads average over positions. Measured on the shipped MNIST teacher
 *   with a trained 32/64-channel feature net (batch 8, first 30 updates), R1 was 0.3-0.4 against a hinge loss of
 *   about 4 (two heads): gamma 1 makes it about a tenth of the loss, gamma 1e-5 would make it nothing.
 * - x0Conditioning 'always': the paper. Its SDXL schedule keeps a little signal at the first student time; a flow
 *   or zero-terminal-SNR teacher's s = 1 keeps none, so there the heads judge the student against an x0 it could
 *   not see ('signal-only' drops that conditioning).
 */
export const ADD_DEFAULTS: Omit<AddConfig, 'probs'> = {
  steps: 4,
  ...ADVERSARIAL_TRAINING_DEFAULTS,
  adversarialWeight: 1,
  distillationWeight: 2.5,
  distillationWeighting: 'alpha',
  tMin: 0.02,
  tMax: 0.98,
  teacherCfg: 'teacher',
  featureLayers: 'all',
  headChannels: 32,
  headGroups: 8,
  headEmbedDim: 32,
  r1Weight: 1,
  x0Conditioning: 'always',
};

/** Defaults overlaid with `overrides`, checked; the error names the key and the bad value. */
export function resolveAddConfig(overrides: Partial<AddConfig> = {}): AddConfig {
  const base = { ...ADD_DEFAULTS, ...overrides };
  const c: AddConfig = { ...base, probs: overrides.probs ?? Array(base.steps).fill(1 / base.steps) };
  const fail = configFailure('ADD');
  checkAdversarialTraining(c, fail);
  for (const key of ['steps', 'headChannels', 'headGroups', 'headEmbedDim'] as const)
    checkInteger(fail, key, c[key]);
  for (const key of ['adversarialWeight', 'distillationWeight', 'r1Weight'] as const) {
    if (!(c[key] >= 0 && Number.isFinite(c[key]))) fail(key, c[key], 'use 0 (off) or a positive weight');
  }
  if (c.adversarialWeight === 0 && c.distillationWeight === 0) {
    fail('distillationWeight', 0, 'adversarialWeight is 0 too, so nothing would train: make one positive');
  }
  if (c.distillationWeighting !== 'alpha' && c.distillationWeighting !== 'sds') {
    fail('distillationWeighting', c.distillationWeighting, 'use "alpha" or "sds"');
  }
  if (c.x0Conditioning !== 'always' && c.x0Conditioning !== 'signal-only') {
    fail('x0Conditioning', c.x0Conditioning, 'use "always" or "signal-only"');
  }
  if (!(c.tMin > 0 && c.tMin < c.tMax && c.tMax <= 1)) {
    fail('tMin/tMax', [c.tMin, c.tMax], 'use 0 < tMin < tMax <= 1 (tMin > 0 keeps sigma_t > 0)');
  }
  if (c.teacherCfg !== 'teacher' && !(c.teacherCfg >= 0)) {
    fail('teacherCfg', c.teacherCfg, 'use "teacher" (its default CFG) or a scale >= 0');
  }
  if (c.featureLayers !== 'all' && c.featureLayers.length === 0) {
    fail('featureLayers', c.featureLayers, 'tap at least one block of F, or "all"');
  }
  if (c.headChannels % c.headGroups !== 0) fail('headGroups', c.headGroups, 'must divide headChannels');
  const sum = c.probs.reduce((a, p) => a + p, 0);
  if (c.probs.length !== c.steps || c.probs.some((p) => !(p >= 0)) || Math.abs(sum - 1) > 1e-6) {
    fail('probs', c.probs, `give ${c.steps} non-negative probabilities (one per student time) summing to 1`);
  }
  return c;
}

const BLOCK_PREFIX = 'conv.';

/** The maps of F's blocks that the heads read, in `heads.features` order. */
export function pickFeatureMaps(maps: readonly tf.Tensor4D[], heads: ProjectionHeadsConfig): tf.Tensor4D[] {
  return heads.features.map(({ name }) => maps[Number(name.slice(BLOCK_PREFIX.length))]!);
}

/** The heads' shape for feature net F under `config`; the error names a block F does not have. */
export function addHeadsConfig(
  featureNet: FeatureNetConfig,
  numClasses: number,
  config: AddConfig,
): ProjectionHeadsConfig {
  const blocks = featureNet.channels.map((_, i) => i);
  const chosen = config.featureLayers === 'all' ? blocks : config.featureLayers;
  for (const i of chosen) {
    if (!blocks.includes(i)) {
      throw new Error(
        `ADD config: featureLayers has ${i}, but the feature net has blocks ${blocks.join(', ')}`,
      );
    }
  }
  return {
    features: chosen.map((i) => ({ name: `${BLOCK_PREFIX}${i}`, channels: featureNet.channels[i]! })),
    channels: config.headChannels,
    groups: config.headGroups,
    embedDim: config.headEmbedDim,
    numClasses,
    imageDim: featureNet.featureDim,
  };
}
