// LADD-DMD's settings (src/distill/README.md, "LADD-DMD"): LADD's, plus the distribution-matching term and its
// fake score network. The meaning of each value on LaddDmdConfig, the values and why in LADD_DMD_DEFAULTS.
import { LADD_DEFAULTS, type LaddConfig, resolveLaddConfig } from './ladd-config.js';
import { checkInteger, configFailure } from './shared/adversarial-config.js';

export interface LaddDmdConfig extends LaddConfig {
  /** Weight of LADD's adversarial (hinge) term in the student's loss. */
  readonly adversarialWeight: number;
  /** Weight of the distribution-matching term in the student's loss. */
  readonly matchingWeight: number;
  /** CFG scale of the teacher as the real score; 'teacher' is the teacher's own scale. */
  readonly teacherCfg: number | 'teacher';
  /** Times of the distribution-matching term: t ~ U[matchingTMin, matchingTMax]. */
  readonly matchingTMin: number;
  readonly matchingTMax: number;
  /** Fake score network: AdamW learning rate and betas, and its updates per student update (two time scales). */
  readonly fakeScoreLr: number;
  readonly fakeScoreBetas: readonly [number, number];
  readonly fakeScoreUpdates: number;
}

/**
 * Defaults and why (LADD's own: LADD_DEFAULTS), where they differ from LADD's:
 * - real data for the discriminator, as DMD2's GAN term has it: the matching term already pulls towards the
 *   teacher, so the adversarial term can correct the teacher's own errors instead of copying them (and no
 *   synthetic set has to be made first).
 * - backward simulation on: a multi-step student's later steps learn on its own earlier outputs (DMD2).
 * - matchingWeight 1, adversarialWeight 0.01: at the start on the MNIST teacher (batch 32, fresh heads) the
 *   student's gradient norm is about 12 from the hinge term and about 0.1 from the matching term (a mean over
 *   every latent element), so 0.01 makes them the same size; DMD2 weights its GAN term 3e-3 for the same reason.
 *   Adam makes the overall scale irrelevant; the ratio is what to sweep (on the selection net).
 * - t in [0.02, 0.98]: DMD2's range (timesteps 20 to 980 of 1000); the ends carry no usable score difference.
 * - fake score: AdamW at 1e-4 with betas (0.9, 0.999), 2 updates per student update. It must track a moving
 *   student distribution, so it learns faster than the student (DMD2's two time-scale rule uses 5 updates; 2
 *   keeps a CPU iteration at about twice LADD's).
 * - teacherCfg: the teacher's own scale, the guidance its full-step samples are judged at.
 */
export const LADD_DMD_DEFAULTS: Omit<LaddDmdConfig, 'warmupProbs' | 'probs'> = {
  ...LADD_DEFAULTS,
  data: 'real',
  backwardSimulation: true,
  adversarialWeight: 0.01,
  matchingWeight: 1,
  teacherCfg: 'teacher',
  matchingTMin: 0.02,
  matchingTMax: 0.98,
  fakeScoreLr: 1e-4,
  fakeScoreBetas: [0.9, 0.999],
  fakeScoreUpdates: 2,
};

/** Defaults overlaid with `overrides`, checked; the error names the key and the bad value. */
export function resolveLaddDmdConfig(overrides: Partial<LaddDmdConfig> = {}): LaddDmdConfig {
  const { warmupProbs, probs, ...ladd } = resolveLaddConfig(
    { ...LADD_DMD_DEFAULTS, ...overrides },
    'LADD-DMD',
  );
  const c: LaddDmdConfig = { ...LADD_DMD_DEFAULTS, ...ladd, ...overrides, warmupProbs, probs };
  const fail = configFailure('LADD-DMD');
  for (const key of ['adversarialWeight', 'matchingWeight'] as const) {
    if (!(c[key] >= 0)) fail(key, c[key], 'use 0 (off) or a positive weight');
  }
  if (c.adversarialWeight === 0 && c.matchingWeight === 0)
    fail('matchingWeight', c.matchingWeight, 'at least one of the two terms needs a positive weight');
  if (c.teacherCfg !== 'teacher' && !(c.teacherCfg >= 0))
    fail('teacherCfg', c.teacherCfg, 'use "teacher" or a scale >= 0');
  if (!(c.matchingTMin > 0 && c.matchingTMin < c.matchingTMax && c.matchingTMax <= 1))
    fail(
      'matchingTMin',
      c.matchingTMin,
      `use 0 < matchingTMin (--dm-t-min) < matchingTMax (--dm-t-max, ${c.matchingTMax}) <= 1`,
    );
  if (!(c.fakeScoreLr > 0)) fail('fakeScoreLr', c.fakeScoreLr, 'use a positive number');
  if (!(c.fakeScoreBetas.length === 2 && c.fakeScoreBetas.every((b) => b >= 0 && b < 1)))
    fail('fakeScoreBetas', c.fakeScoreBetas, 'two betas in [0, 1)');
  checkInteger(fail, 'fakeScoreUpdates', c.fakeScoreUpdates);
  return c;
}
