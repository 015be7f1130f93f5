// LADD's settings (METHODS.md section 3): the meaning of each value on LaddConfig, the values and why in LADD_DEFAULTS.

import { type HeadsConfig, tapUNetFeatures } from '../nn/heads.js';
import type { UNetConfig } from '../nn/unet.js';
import {
  ADVERSARIAL_TRAINING_DEFAULTS,
  type AdversarialTraining,
  checkAdversarialTraining,
  checkInteger,
  configFailure,
} from './shared/adversarial-config.js';
import { defaultStudentTimeSchedule, validateStudentTimeSchedule } from './shared/student-times.js';

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
 * Defaults and why (the optimisation settings: ADVERSARIAL_TRAINING_DEFAULTS). The student time probabilities
 * default per step count (`defaultStudentTimeSchedule`).
 * - tHat (m, s) = (1, 1): the faithful port's values; most mass on high noise (global structure).
 * - heads 64 wide, 8 groups: small next to the MNIST teacher (64/128 channels); every feature tapped.
 * - warm-up 200 updates: about a tenth of a typical run, enough for the easy steps to settle first.
 * - R1 off: optional in the paper; sigma 0.01 is small against unit-variance latents when it is turned on.
 * - backward simulation off: the paper forward-noises data at every student time. On MNIST that 4-step student
 *   samples worse at 4 steps than at 2 (lower precision): its later steps never saw its own earlier outputs.
 */
export const LADD_DEFAULTS: Omit<LaddConfig, 'warmupProbs' | 'probs'> = {
  steps: 4,
  ...ADVERSARIAL_TRAINING_DEFAULTS,
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
export function resolveLaddConfig(overrides: Partial<LaddConfig> = {}, method = 'LADD'): LaddConfig {
  const base = { ...LADD_DEFAULTS, ...overrides };
  const schedule = defaultStudentTimeSchedule(base.steps, base.warmupIterations);
  const c: LaddConfig = {
    ...base,
    warmupProbs: overrides.warmupProbs ?? schedule.warmupProbs,
    probs: overrides.probs ?? schedule.probs,
  };
  const fail = configFailure(method);
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
    ...(unet.text ? { promptWidth: unet.text.width } : {}),
  };
}
