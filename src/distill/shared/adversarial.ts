// The adversarial training step shared by ADD, PADD and LADD: `discriminatorUpdates` updates of the discriminator
// on real vs. the student's (stop-gradient) fakes, then one update of the student through the discriminator.
// Each player has its own optimiser; the training loop (train/loop.ts) owns checkpoints, logging and rollback.
import * as tf from '../../core/tf.js';
import type { HeadLogits } from '../../nn/heads.js';
import type { Params } from '../../nn/params.js';
import type { Player } from '../../train/checkpoint.js';
import type { LossOutput, StepContext } from '../../train/loop.js';
import { discriminatorLoss, type GanLossKind, generatorLoss, meanLogit } from './gan-loss.js';

export type Phase = 'discriminator' | 'generator';

/**
 * One draw of everything an update needs (a batch, noise levels, noise), made by the method. `fake` and
 * `logits` must use only the tensors the round holds and the params they are given, so that the update
 * differentiates exactly the player being trained.
 */
export interface AdversarialRound {
  /** Real samples (data or synthetic), as `logits` takes them. */
  readonly real: tf.Tensor4D;
  /** The student's samples from `generatorParams`, differentiable in them; runs inside the caller's scope. */
  fake(generatorParams: Params): tf.Tensor4D;
  /** Per-head logits of the discriminator with `discriminatorParams` on `x` (the real or a fake sample). */
  logits(discriminatorParams: Params, x: tf.Tensor4D, side: 'real' | 'fake'): HeadLogits;
  /** Weighted extra terms of the discriminator loss (R1), by the name they are logged under. */
  discriminatorPenalties?(discriminatorParams: Params, realLogits: HeadLogits): Record<string, tf.Scalar>;
  /** Weighted extra terms of the generator loss (ADD's distillation loss), by log name. */
  generatorTerms?(generatorParams: Params, fake: tf.Tensor4D): Record<string, tf.Scalar>;
  /** Frees the round's tensors. */
  dispose(): void;
}

export interface AdversarialStepOptions {
  readonly players: Readonly<Record<string, Player>>;
  /** Player names of the student and of the discriminator (heads and any trainable feature network). */
  readonly generator: string;
  readonly discriminator: string;
  readonly loss: GanLossKind;
  /** Discriminator updates before each generator update (>= 1). */
  readonly discriminatorUpdates: number;
}

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
  const realLogits = round.logits(discriminatorParams, round.real, 'real');
  const fakeLogits = round.logits(discriminatorParams, fake, 'fake');
  const gan = discriminatorLoss(kind, realLogits, fakeLogits);
  const penalties = round.discriminatorPenalties?.(discriminatorParams, realLogits) ?? {};
  return {
    loss: addTerms(gan, penalties),
    aux: { realLogit: meanLogit(realLogits), fakeLogit: meanLogit(fakeLogits), ...penalties },
  };
}

/**
 * The generator's loss on `round`: the student's fake, judged by the discriminator's current (fixed) weights,
 * with the gradient flowing through the discriminator's networks into `generatorParams`; plus extra terms.
 */
export function generatorObjective(
  round: AdversarialRound,
  kind: GanLossKind,
  generatorParams: Params,
  discriminatorParams: Params,
): LossOutput {
  const fake = round.fake(generatorParams);
  const gan = generatorLoss(kind, round.logits(discriminatorParams, fake, 'fake'));
  const terms = round.generatorTerms?.(generatorParams, fake) ?? {};
  return { loss: addTerms(gan, terms), aux: terms };
}

/**
 * One adversarial step. `nextRound(phase, index)` draws the data of each update (index counts the
 * discriminator's updates within the step; the generator's is 0); the rounds are disposed here. Returns the
 * generator's metrics and the discriminator's, averaged over its updates (`discriminatorLoss`, `realLogit`,
 * `fakeLogit`, `...GradNorm`, penalties).
 */
export function adversarialStep(
  ctx: StepContext,
  opts: AdversarialStepOptions,
  nextRound: (phase: Phase, index: number) => AdversarialRound,
): Record<string, number> {
  const { players, generator, discriminator, loss, discriminatorUpdates } = opts;
  const player = (name: string): Player => {
    const p = players[name];
    if (!p) throw new Error(`no player named ${name} (have: ${Object.keys(players).join(', ')})`);
    return p;
  };
  if (!(Number.isInteger(discriminatorUpdates) && discriminatorUpdates >= 1)) {
    throw new Error(`discriminatorUpdates must be a positive integer, got ${discriminatorUpdates}`);
  }

  // 1. Discriminator: real vs. sg(fake), the fake made with the student's current weights outside the loss.
  const sums: Record<string, number> = {};
  for (let i = 0; i < discriminatorUpdates; i++) {
    const round = nextRound('discriminator', i);
    try {
      const fake = tf.tidy(() => round.fake(player(generator).params));
      try {
        const m = ctx.update(discriminator, (dp) => discriminatorObjective(round, loss, dp, fake));
        for (const [k, v] of Object.entries(m)) sums[k] = (sums[k] ?? 0) + v;
      } finally {
        fake.dispose();
      }
    } finally {
      round.dispose();
    }
  }
  const discMetrics = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / discriminatorUpdates]));

  // 2. Generator: through the discriminator (its weights read, not updated) into the student.
  const round = nextRound('generator', 0);
  try {
    const genMetrics = ctx.update(generator, (gp) =>
      generatorObjective(round, loss, gp, player(discriminator).params),
    );
    return { ...discMetrics, ...genMetrics };
  } finally {
    round.dispose();
  }
}
