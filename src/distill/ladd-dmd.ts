// LADD-DMD: LADD's adversarial loss (heads on the frozen teacher's features) plus DMD2's distribution matching
// (Yin et al. 2024, arXiv 2405.14867), with DMD2's backward simulation for multi-step students. The algorithm box
// is in src/distill/README.md ("LADD-DMD"). Each trainer step:
//   1. fake score updates: a copy of the teacher learns the denoising loss on the student's samples;
//   2. LADD's discriminator update(s) on the training latents (real by default) vs. the student's samples;
//   3. the student update: adversarialWeight x LADD's hinge loss + matchingWeight x the distribution-matching loss.
// A weight of 0 switches its term off with the updates only it needs (the discriminator's, the fake score's).
import { type Rng, randn } from '../core/rng.js';
import { stopGradient } from '../core/stop-gradient.js';
import * as tf from '../core/tf.js';
import { type Denoiser, netDenoiser, type RawNet } from '../diffusion/denoiser.js';
import { sampleUniformTimes } from '../diffusion/formulation.js';
import { denoisingLoss } from '../diffusion/loss.js';
import type { Params } from '../nn/params.js';
import type { Condition } from '../nn/unet.js';
import type { Player } from '../train/checkpoint.js';
import type { StepContext, StepMetrics, TrainStep } from '../train/loop.js';
import { type LaddRound, type LaddSetup, laddPlayers, laddRound, laddStudentInputs } from './ladd.js';
import type { LaddDmdConfig } from './ladd-dmd-config.js';
import {
  type AdversarialRound,
  addMetrics,
  adversarialStep,
  averageMetrics,
  batchIndex,
  GENERATOR,
  generatorTermsUpdate,
  type Phase,
} from './shared/adversarial.js';
import {
  distributionMatchingGradient,
  distributionMatchingLoss,
  type MatchingDraw,
} from './shared/distribution-matching.js';
import { studentPlayer } from './shared/players.js';

/** The player that holds the fake score network (its checkpoints and logs use the name). */
export const FAKE_SCORE = 'fakeScore';

/** A LADD setup with the two scores distribution matching compares. */
export interface LaddDmdSetup extends LaddSetup {
  readonly config: LaddDmdConfig;
  /** D_real: the frozen teacher with guidance (`methodDenoisers`). */
  readonly teacher: Denoiser;
  /** The fake score network over given weights (the teacher's U-Net), as a raw net: its denoiser is made from it. */
  readonly fakeScoreNet: (params: Params) => RawNet;
}

/**
 * 0. The three players: LADD's student (a copy of the teacher) and heads, and the fake score network, another
 * copy of the teacher (DMD2 starts it there, so at step 0 the two scores differ only by the teacher's guidance).
 */
export function laddDmdPlayers(setup: LaddDmdSetup, rng: Rng): Record<string, Player> {
  const c = setup.config;
  return {
    ...laddPlayers(setup, rng),
    [FAKE_SCORE]: studentPlayer(setup.teacherParams, c.fakeScoreLr, c.fakeScoreBetas, 0),
  };
}

/**
 * Draws the distribution-matching term's times t ~ U[tMin, tMax] and noise for the whole batch (samples of
 * `sampleShape`), and keeps this process's rows.
 */
function matchingDraw(
  setup: LaddDmdSetup,
  ctx: Pick<StepContext, 'rng' | 'shard'>,
  sampleShape: readonly number[],
  labels: Condition,
): MatchingDraw {
  const c = setup.config;
  const b = c.batchSize;
  const t = sampleUniformTimes(setup.formulation, ctx.rng, b, c.matchingTMin, c.matchingTMax);
  return {
    t: ctx.shard(tf.tensor1d(t)),
    eps: ctx.shard(randn(ctx.rng, [b, ...sampleShape]) as tf.Tensor4D),
    labels,
  };
}

/**
 * Step 1, one update: the student's samples x = sg(D_theta(x_s, s, c)) from the same inputs as its own update
 * (backward simulation, or forward-noised latents), re-noised at t from the teacher's training density, and the
 * fake score's denoising loss on them. The batch's latents enter only through the student's inputs: with backward
 * simulation from pure noise (a flow or zero-terminal-SNR teacher), not at all.
 */
function fakeScoreUpdate(
  setup: LaddDmdSetup,
  ctx: StepContext,
  players: Readonly<Record<string, Player>>,
  batch: number,
): StepMetrics {
  const f = setup.formulation;
  const owned: tf.Tensor[] = [];
  try {
    // Drawn for the whole batch, then this process's rows (data parallelism; one process keeps them all).
    const whole = setup.data.batchAt(batch);
    owned.push(whole.x);
    const student = players[GENERATOR]!.params;
    const inputs = laddStudentInputs(setup, ctx, whole.x, whole.condition, student);
    const t = ctx.shard(tf.tensor1d(f.sampleTrainingTimes(ctx.rng, whole.x.shape[0])));
    const eps = ctx.shard(randn(ctx.rng, whole.x.shape) as tf.Tensor4D);
    const [labels, s, xs] = [ctx.shard(whole.condition), ctx.shard(inputs.s), ctx.shard(inputs.xs)];
    owned.push(labels, s, xs, t, eps);
    const samples = tf.tidy(() => stopGradient(setup.student(student)(xs, s, labels)));
    owned.push(samples);
    return ctx.update(FAKE_SCORE, (p) => denoisingLoss(f, setup.fakeScoreNet(p), samples, eps, t, labels));
  } finally {
    tf.dispose(owned);
  }
}

/**
 * The student's loss terms beyond LADD's on a generator round: the distribution-matching loss at its samples,
 * scored by the frozen guided teacher and the fake score's current weights. The round's labels are the draw's.
 */
function withMatchingTerm(
  setup: LaddDmdSetup,
  ctx: Pick<StepContext, 'rng' | 'shard'>,
  round: LaddRound,
  fakeScoreParams: Params,
): AdversarialRound {
  const { config: c, formulation: f } = setup;
  const draw = matchingDraw(setup, ctx, round.batchShape.slice(1), round.condition);
  const fakeScore: Denoiser = netDenoiser(setup.fakeScoreNet(fakeScoreParams), f);
  return {
    ...round,
    generatorTerms: (_, fake) => {
      // g is a constant made in the update's scope, freed with it.
      const g = distributionMatchingGradient(f, fake, draw, setup.teacher, fakeScore);
      return { distributionMatching: distributionMatchingLoss(fake, g).mul(c.matchingWeight) as tf.Scalar };
    },
    dispose: () => {
      round.dispose();
      tf.dispose([draw.t, draw.eps]); // the labels are the round's
    },
  };
}

/**
 * One LADD-DMD trainer step: `fakeScoreUpdates` fake score updates, then LADD's adversarial step whose student
 * update adds the distribution-matching term. Every update has its own data batch (`batchIndex`), the fake score's
 * first. With adversarialWeight 0 the student trains on the matching term alone (no discriminator update); with
 * matchingWeight 0 the fake score rests and the step is LADD's.
 */
export function laddDmdStep(setup: LaddDmdSetup, players: Readonly<Record<string, Player>>): TrainStep {
  const c = setup.config;
  const fakeScoreUpdates = c.matchingWeight > 0 ? c.fakeScoreUpdates : 0;
  const updatesPerStep = fakeScoreUpdates + (c.adversarialWeight > 0 ? c.discriminatorUpdates : 0) + 1;
  const studentRound = (ctx: StepContext, batch: number, phase: Phase): AdversarialRound => {
    const round = laddRound(setup, ctx, batch, players[GENERATOR]!.params);
    if (phase === 'discriminator' || c.matchingWeight === 0) return round;
    return withMatchingTerm(setup, ctx, round, players[FAKE_SCORE]!.params);
  };
  return (ctx) => {
    // 1. The fake score tracks the student's current distribution (losses averaged over its updates).
    let sums: StepMetrics = {};
    try {
      for (let i = 0; i < fakeScoreUpdates; i++)
        sums = addMetrics(
          sums,
          fakeScoreUpdate(setup, ctx, players, batchIndex(ctx.step, updatesPerStep, i)),
        );
    } catch (err) {
      tf.dispose(Object.values(sums));
      throw err;
    }
    const fakeMetrics = averageMetrics(sums, Math.max(1, fakeScoreUpdates));
    try {
      // 2-3. LADD's discriminator update(s) and student update; the student's loss adds the matching term.
      if (c.adversarialWeight === 0) {
        const round = studentRound(ctx, batchIndex(ctx.step, updatesPerStep, fakeScoreUpdates), 'generator');
        return { ...fakeMetrics, ...generatorTermsUpdate(ctx, round, 'distributionMatching') };
      }
      const options = {
        loss: 'hinge',
        discriminatorUpdates: c.discriminatorUpdates,
        adversarialWeight: c.adversarialWeight,
        updatesBefore: fakeScoreUpdates,
      } as const;
      const adversarial = adversarialStep(ctx, players, options, (phase, batch) =>
        studentRound(ctx, batch, phase),
      );
      return { ...fakeMetrics, ...adversarial };
    } catch (err) {
      tf.dispose(Object.values(fakeMetrics));
      throw err;
    }
  };
}
