// The optimisation settings that LADD, ADD, PADD and LADD-DMD share, documented and checked once; each method's config
// extends them with its own algorithm's values.

export interface AdversarialTraining {
  /** Trainer steps; each is `discriminatorUpdates` discriminator updates and one student update. */
  readonly iterations: number;
  /** Samples per update; at least 2 (with batch 1 the hinge loss collapses, as a public port found). */
  readonly batchSize: number;
  /** Student (generator) AdamW learning rate and betas. */
  readonly generatorLr: number;
  readonly generatorBetas: readonly [number, number];
  /** Discriminator AdamW learning rate and betas. */
  readonly discriminatorLr: number;
  readonly discriminatorBetas: readonly [number, number];
  /** Discriminator updates per student update. */
  readonly discriminatorUpdates: number;
  /** EMA decay of the shipped student weights; 0 ships the raw weights. */
  readonly emaDecay: number;
}

/**
 * The shared settings' defaults and why (LADD and ADD take them as they are; PADD changes the learning rates).
 * - 2000 iterations, batch 32: the same for LADD and ADD, so their ms per iteration compare on the same batch.
 * - generatorLr 1e-4: METHODS.md asks for 1e-5..1e-4 at this scale; the top of the range because CPU runs are
 *   short (a few thousand updates). Betas (0.9, 0.999): the student is a fine-tuned pretrained net.
 * - discriminatorLr 2e-4 with betas (0, 0.99): ADD/LADD's discriminator Adam; twice the student's rate, as
 *   METHODS.md section 3 notes D often gets a higher rate. One D update per student update (raise it if D lags).
 * - EMA 0.99: a horizon of ~100 updates smooths the adversarial noise without lagging a short run.
 */
export const ADVERSARIAL_TRAINING_DEFAULTS: AdversarialTraining = {
  iterations: 2000,
  batchSize: 32,
  generatorLr: 1e-4,
  generatorBetas: [0.9, 0.999],
  discriminatorLr: 2e-4,
  discriminatorBetas: [0, 0.99],
  discriminatorUpdates: 1,
  emaDecay: 0.99,
};

/** Throws the method's config error, naming the key, its bad value and what to use instead. */
export type ConfigFailure = (key: string, value: unknown, want: string) => never;

export function configFailure(method: string): ConfigFailure {
  return (key, value, want) => {
    throw new Error(`${method} config: ${key} = ${JSON.stringify(value)} is invalid: ${want}`);
  };
}

/** Fails unless `value` is an integer >= `min`. */
export function checkInteger(fail: ConfigFailure, key: string, value: unknown, min = 1): void {
  if (!(typeof value === 'number' && Number.isInteger(value) && value >= min)) {
    fail(key, value, `use an integer >= ${min}`);
  }
}

/** Checks the shared settings of `c`. */
export function checkAdversarialTraining(c: AdversarialTraining, fail: ConfigFailure): void {
  checkInteger(fail, 'iterations', c.iterations);
  checkInteger(fail, 'batchSize', c.batchSize, 2);
  checkInteger(fail, 'discriminatorUpdates', c.discriminatorUpdates);
  for (const key of ['generatorLr', 'discriminatorLr'] as const) {
    if (!(c[key] > 0)) fail(key, c[key], 'use a positive number');
  }
  for (const key of ['generatorBetas', 'discriminatorBetas'] as const) {
    if (!(c[key].length === 2 && c[key].every((b) => b >= 0 && b < 1)))
      fail(key, c[key], 'two betas in [0, 1)');
  }
  if (!(c.emaDecay >= 0 && c.emaDecay < 1)) fail('emaDecay', c.emaDecay, 'use 0 (off) or a decay in (0, 1)');
}
