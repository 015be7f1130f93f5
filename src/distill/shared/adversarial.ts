// The adversarial training step shared by ADD, PADD, LADD and LADD-DMD: `discriminatorUpdates` updates of the discriminator
// on real vs. the student's (stop-gradient) fakes, then one update of the student through the discriminator.
// Each player has its own optimiser; the training loop (train/loop.ts) owns checkpoints, logging and rollback.
import * as tf from '../../core/tf.js';
import type { HeadLogits } from '../../nn/heads.js';
import type { Params } from '../../nn/params.js';
import type { Player } from '../../train/checkpoint.js';
import type { LossOutput, StepContext, StepMetrics } from '../../train/loop.js';
import { discriminatorLoss, type GanLossKind, generatorLoss, meanLogit } from './gan-loss.js';

export type Phase = 'discriminator' | 'generator';

/** The player names every adversarial method trains under (their checkpoints and logs use them). */
export const GENERATOR = 'generator';
export const DISCRIMINATOR = 'discriminator';

/**
 * One draw of everything an update needs (a batch, noise levels, noise), made by the method. `fake` and the
 * logits must use only the tensors the round holds and the params they are given, so that the update
 * differentiates exactly the player being trained.
 */
export interface AdversarialRound {
  /** The student's samples from `generatorParams`, differentiable in them; runs inside the caller's scope. */
  fake(generatorParams: Params): tf.Tensor4D;
  /** Per-head logits of the discriminator with `discriminatorParams` on the round's real samples. */
  realLogits(discriminatorParams: Params): HeadLogits;
  /** Per-head logits of the discriminator with `discriminatorParams` on a fake sample. */
  fakeLogits(discriminatorParams: Params, fake: tf.Tensor4D): HeadLogits;
  /** Weighted extra terms of the discriminator loss (R1), by the name they are logged under. */
  discriminatorPenalties?(discriminatorParams: Params, realLogits: HeadLogits): Record<string, tf.Scalar>;
  /** Weighted extra terms of the generator loss (ADD's distillation loss), by log name. */
  generatorTerms?(generatorParams: Params, fake: tf.Tensor4D): Record<string, tf.Scalar>;
  /** Frees the round's tensors. */
  dispose(): void;
}

export interface AdversarialStepOptions {
  readonly loss: GanLossKind;
  /** Discriminator updates before each generator update (>= 1). */
  readonly discriminatorUpdates: number;
  /** Weight of the generator's GAN term against its extra terms (ADD's lambda_adv; default 1). */
  readonly adversarialWeight?: number;
  /** Updates of other players earlier in the same step (LADD-DMD's fake score): their batches come first. */
  readonly updatesBefore?: number;
}

/**
 * The data batch of an update: every update of every step gets its own, in order (`updatesPerStep` updates a
 * step, `update` counting from 0), so batch k is the same in every run with the same seed, resumed or not.
 */
export const batchIndex = (step: number, updatesPerStep: number, update: number): number =>
  step * updatesPerStep + update;

const addTerms = (base: tf.Scalar, terms: Record<string, tf.Scalar>): tf.Scalar =>
  Object.values(terms).reduce<tf.Scalar>((sum, t) => sum.add(t), base);

/**
 * The discriminator's loss on `round` with a fake made outside it (so no gradient reaches the student):
 * GAN loss + penalties; aux: realLogit, fakeLogit (mean over heads and batch) and each penalty.
 */
export function discriminatorObjective(
  round: AdversarialRound,
  kind: GanLossKind,
  discriminatorParams: Params,
  fake: tf.Tensor4D,
): LossOutput {
  const realLogits = round.realLogits(discriminatorParams);
  const fakeLogits = round.fakeLogits(discriminatorParams, fake);
  const gan = discriminatorLoss(kind, realLogits, fakeLogits);
  const penalties = round.discriminatorPenalties?.(discriminatorParams, realLogits) ?? {};
  return {
    loss: addTerms(gan, penalties),
    aux: { realLogit: meanLogit(realLogits), fakeLogit: meanLogit(fakeLogits), ...penalties },
  };
}

/**
 * The generator's loss on `round`: adversarialWeight x the GAN loss of the student's fake, judged by the
 * discriminator's current (fixed) weights, with the gradient flowing through the discriminator's networks into
 * `generatorParams`; plus the round's extra terms.
 */
export function generatorObjective(
  round: AdversarialRound,
  kind: GanLossKind,
  generatorParams: Params,
  discriminatorParams: Params,
  adversarialWeight = 1,
): LossOutput {
  const fake = round.fake(generatorParams);
  const gan = generatorLoss(kind, round.fakeLogits(discriminatorParams, fake));
  const terms = round.generatorTerms?.(generatorParams, fake) ?? {};
  return { loss: addTerms(adversarialWeight === 1 ? gan : gan.mul(adversarialWeight), terms), aux: terms };
}

/**
 * One adversarial step over the players GENERATOR and DISCRIMINATOR. `nextRound(phase, batch)` draws the data of
 * each update, `batch` being the update's data batch (`batchIndex`: the discriminator's updates first, then the
 * generator's); the rounds are disposed here. Returns the generator's metrics and the discriminator's, averaged
 * over its updates (`discriminatorLoss`, `realLogit`, `fakeLogit`, `...GradNorm`, penalties).
 */
export function adversarialStep(
  ctx: StepContext,
  players: Readonly<Record<string, Player>>,
  opts: AdversarialStepOptions,
  nextRound: (phase: Phase, batch: number) => AdversarialRound,
): StepMetrics {
  const { loss, discriminatorUpdates, adversarialWeight = 1, updatesBefore = 0 } = opts;
  const player = (name: string): Player => {
    const p = players[name];
    if (!p) throw new Error(`no player named ${name} (have: ${Object.keys(players).join(', ')})`);
    return p;
  };
  if (!(Number.isInteger(discriminatorUpdates) && discriminatorUpdates >= 1)) {
    throw new Error(`discriminatorUpdates must be a positive integer, got ${discriminatorUpdates}`);
  }
  const updatesPerStep = updatesBefore + discriminatorUpdates + 1;

  // 1. Discriminator: real vs. sg(fake), the fake made with the student's current weights outside the loss.
  let sums: StepMetrics = {};
  for (let i = 0; i < discriminatorUpdates; i++) {
    const round = nextRound('discriminator', batchIndex(ctx.step, updatesPerStep, updatesBefore + i));
    try {
      const fake = tf.tidy(() => round.fake(player(GENERATOR).params));
      try {
        sums = addMetrics(
          sums,
          ctx.update(DISCRIMINATOR, (dp) => discriminatorObjective(round, loss, dp, fake)),
        );
      } finally {
        fake.dispose();
      }
    } finally {
      round.dispose();
    }
  }
  const discMetrics = averageMetrics(sums, discriminatorUpdates);

  // 2. Generator: through the discriminator (its weights read, not updated) into the student.
  try {
    const round = nextRound(
      'generator',
      batchIndex(ctx.step, updatesPerStep, updatesBefore + discriminatorUpdates),
    );
    try {
      const genMetrics = ctx.update(GENERATOR, (gp) =>
        generatorObjective(round, loss, gp, player(DISCRIMINATOR).params, adversarialWeight),
      );
      return { ...discMetrics, ...genMetrics };
    } finally {
      round.dispose();
    }
  } catch (err) {
    tf.dispose(Object.values(discMetrics));
    throw err;
  }
}

/**
 * A student update on `round`'s extra terms alone, `lossTerm` being the loss (a method run with adversarial weight
 * 0: no discriminator, no GAN term). The round is disposed here.
 */
export function generatorTermsUpdate(
  ctx: StepContext,
  round: AdversarialRound,
  lossTerm: string,
): StepMetrics {
  try {
    return ctx.update(GENERATOR, (gp) => {
      const terms = round.generatorTerms!(gp, round.fake(gp));
      return { loss: terms[lossTerm]!, aux: terms };
    });
  } finally {
    round.dispose();
  }
}

/** `sums` plus `metrics`, key by key; both inputs are consumed (disposed or handed on). */
export function addMetrics(sums: StepMetrics, metrics: StepMetrics): StepMetrics {
  const out: Record<string, tf.Scalar> = { ...sums };
  for (const [k, v] of Object.entries(metrics)) {
    const sum = out[k];
    out[k] = sum === undefined ? v : (sum.add(v) as tf.Scalar);
    if (sum !== undefined) tf.dispose([sum, v]);
  }
  return out;
}

/** Each of `sums` divided by `count` (the updates they add up); `sums` is consumed. */
export function averageMetrics(sums: StepMetrics, count: number): StepMetrics {
  if (count === 1) return sums;
  return Object.fromEntries(
    Object.entries(sums).map(([k, v]) => {
      const mean = v.div(count) as tf.Scalar;
      v.dispose();
      return [k, mean];
    }),
  );
}
