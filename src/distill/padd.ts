// PADD: Progressive Adversarial Diffusion Distillation (Lin et al. 2024, SDXL-Lightning, arXiv 2402.13929;
// METHODS.md section 2). A ladder of stages, each halving or quartering the step count with the previous stage's
// student as teacher: the first stage regresses the teacher's n ODE steps (MSE); later stages judge the student's
// one step against them with a TRAINABLE copy of the teacher's U-Net encoder, conditional first, then relaxed.
import { type Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { ConditionedBatches } from '../data/loader.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import { addNoise, type Formulation } from '../diffusion/formulation.js';
import type { HeadLogits } from '../nn/heads.js';
import { initPatchHead, type PatchHeadConfig, patchHeadLogits } from '../nn/heads.js';
import { cloneParams, type Params, paramsUnder, prefixParams } from '../nn/params.js';
import {
  type Condition,
  encoderParams,
  featureChannels,
  type UNetConfig,
  unetEncoderForward,
} from '../nn/unet.js';
import { ddimStepAt } from '../samplers/common.js';
import type { Player } from '../train/checkpoint.js';
import type { StepContext, TrainStep } from '../train/loop.js';
import type { PaddConfig, PaddStage } from './padd-config.js';
import { type AdversarialRound, adversarialStep, batchIndex, GENERATOR } from './shared/adversarial.js';
import { discriminatorPlayer, studentPlayer } from './shared/players.js';
import { studentTimes } from './shared/student-times.js';

// ---------------------------------------------------------------------------------------------------------------
// The discriminator: a trainable copy of the teacher's encoder (down + middle blocks) and a patch head.

/** Discriminator parameters are `encoder.<U-Net name>` and `head.<head name>`. */
const ENCODER = 'encoder.';
const HEAD = 'head.';

/** The head's shape: it reads the encoder's last feature map, twice as wide when it also sees x_t. */
export function paddHeadConfig(unet: UNetConfig, config: PaddConfig, conditional: boolean): PatchHeadConfig {
  const width = featureChannels(unet).at(-1)!;
  return {
    inChannels: conditional ? 2 * width : width,
    channels: config.headChannels,
    groups: config.headGroups,
  };
}

/** A fresh discriminator: the given encoder weights copied (trainable from here on) and a new head. */
export function initPaddDiscriminator(encoder: Params, head: PatchHeadConfig, rng: Rng): Params {
  return {
    ...prefixParams(cloneParams(encoderParams(encoder)), ENCODER),
    ...prefixParams(initPatchHead(head, rng), HEAD),
  };
}

/** The discriminator's trainable encoder copy, under its U-Net names (shared tensors). */
export const discriminatorEncoder = (params: Params): Params => paramsUnder(params, ENCODER);

/**
 * D's logits for a candidate `xNext` at `tNext` (net time), given the start `xT` at `t` when conditional:
 * head(concat(d(xNext, tNext, c), d(xT, t, c))); unconditional (relax): head(d(xNext, tNext, c)). c is the class,
 * or the prompt's tokens: then d is the copied encoder with its copied text encoder and cross-attention.
 */
export function paddLogits(
  params: Params,
  unet: UNetConfig,
  head: PatchHeadConfig,
  inputs: {
    xNext: tf.Tensor4D;
    netTimeNext: tf.Tensor1D;
    condition: Condition;
    xT?: tf.Tensor4D;
    netTime?: tf.Tensor1D;
  },
): HeadLogits {
  const encoder = discriminatorEncoder(params);
  const encode = (x: tf.Tensor4D, netTime: tf.Tensor1D): tf.Tensor4D =>
    unetEncoderForward(encoder, unet, x, netTime, inputs.condition).at(-1)!.x;
  let features = encode(inputs.xNext, inputs.netTimeNext);
  if (inputs.xT && inputs.netTime) features = tf.concat([features, encode(inputs.xT, inputs.netTime)], 3);
  return patchHeadLogits(paramsUnder(params, HEAD), head, features);
}

// ---------------------------------------------------------------------------------------------------------------
// One stage's training.

/** What a stage trains with. */
export interface PaddStageSetup {
  readonly config: PaddConfig;
  readonly stage: PaddStage;
  readonly formulation: Formulation;
  readonly unet: UNetConfig;
  /** The stage's teacher as a (guided, frozen) denoiser: the original teacher, or the previous student. */
  readonly teacher: Denoiser;
  /** The student's denoiser over given weights (its parameterisation: the teacher's, or x0 at one step). */
  readonly student: (params: Params) => Denoiser;
  /** Latents x0 and their condition (classes, or prompts in aspect-ratio buckets) that x_t is made from. */
  readonly data: ConditionedBatches;
}

/** The teacher's n equal ODE steps from t to tNext (per sample): x_{t - ns}. No gradient; caller owns it. */
export function teacherSteps(
  f: Formulation,
  teacher: Denoiser,
  xT: tf.Tensor4D,
  t: Float32Array,
  tNext: Float32Array,
  n: number,
  condition: Condition,
): tf.Tensor4D {
  return tf.tidy(() => {
    let x = xT;
    for (let j = 0; j < n; j++) {
      const from = t.map((ti, i) => ti - ((ti - tNext[i]!) * j) / n);
      const to = j === n - 1 ? tNext : t.map((ti, i) => ti - ((ti - tNext[i]!) * (j + 1)) / n);
      x = ddimStepAt(teacher, f, x, from, to, condition);
    }
    return x;
  });
}

/** One draw of a stage's update: x_t, the times, the teacher's x_{t-ns}, and the student's step. */
export interface PaddDraw {
  readonly xT: tf.Tensor4D;
  readonly condition: Condition;
  readonly t: Float32Array;
  readonly tNext: Float32Array;
  /** The teacher's n steps from x_t: the MSE target and D's "real" sample. */
  readonly target: tf.Tensor4D;
  /** The student's one step from x_t with `params`, differentiable in them. */
  studentStep(params: Params): tf.Tensor4D;
  dispose(): void;
}

/** How a draw keeps this process's rows of the whole batch (data parallelism; one process keeps them all). */
export type BatchSplit = Pick<StepContext, 'shard' | 'shardValues'>;
const WHOLE_BATCH: BatchSplit = { shard: (t) => t, shardValues: (values) => values };

/**
 * Steps 1-3 of an update. 1. A batch of latents x0 and their condition c, classes or prompts (batch `index` of
 * the run; with prompts every batch is one aspect-ratio bucket). 2. A student time
 * per sample, uniform over its N trailing times; the next time is the following one (0 after the last); x_t
 * forward-noised from x0 (pure noise at t = 1). 3. The teacher runs n = teacherSteps / studentSteps ODE steps
 * from x_t to x_{t-ns}; the student's step is one ODE step with its own x0 estimate.
 * Under data parallelism every rank draws the whole batch (the same stream) and keeps its rows before the teacher
 * runs.
 */
export function paddDraw(setup: PaddStageSetup, rng: Rng, batch: number, split = WHOLE_BATCH): PaddDraw {
  const { stage, formulation: f, data } = setup;
  const whole = data.batchAt(batch);
  const b = whole.x.shape[0];
  const times = studentTimes(f, stage.studentSteps);
  const tWhole = new Float32Array(b);
  const tNextWhole = new Float32Array(b);
  for (let i = 0; i < b; i++) {
    const k = Math.min(times.length - 1, Math.floor(rng.uniform() * times.length));
    tWhole[i] = times[k]!;
    tNextWhole[i] = times[k + 1] ?? 0;
  }
  const eps = split.shard(randn(rng, whole.x.shape) as tf.Tensor4D);
  const x0 = split.shard(whole.x);
  const condition = split.shard(whole.condition);
  const t = split.shardValues(tWhole);
  const tNext = split.shardValues(tNextWhole);
  const xT = tf.tidy(() => addNoise(f, x0, eps, tf.tensor1d(t)));
  tf.dispose([x0, eps]);
  const n = stage.teacherSteps / stage.studentSteps;
  const target = teacherSteps(f, setup.teacher, xT, t, tNext, n, condition);
  return {
    xT,
    condition,
    t,
    tNext,
    target,
    studentStep: (params) => ddimStepAt(setup.student(params), f, xT, t, tNext, condition),
    dispose: () => tf.dispose([xT, condition, target]),
  };
}

/** The stage's student, starting from `init` (the stage teacher's weights, or the previous phase's). */
export function paddStudent(config: PaddConfig, init: Params, lr: number): Player {
  return studentPlayer(init, lr, config.generatorBetas, config.emaDecay);
}

/** The discriminator player over `params` (owned by the player from here on). */
export function paddDiscriminator(config: PaddConfig, params: Params): Player {
  return discriminatorPlayer(params, config.discriminatorLr, config.discriminatorBetas);
}

/** MSE phase: L = || xhat_{t-ns} - x_{t-ns} ||^2 (mean over elements). */
export function paddMseStep(setup: PaddStageSetup): TrainStep {
  return (ctx) => {
    const draw = paddDraw(setup, ctx.rng, batchIndex(ctx.step, 1, 0), ctx);
    try {
      return ctx.update(
        GENERATOR,
        (gp) => draw.studentStep(gp).sub(draw.target).square().mean() as tf.Scalar,
      );
    } finally {
      draw.dispose();
    }
  };
}

/**
 * Adversarial phase, non-saturating loss: L_D = -log D(x_t, x_{t-ns}) - log(1 - D(x_t, sg(xhat_{t-ns}))),
 * L_G = -log D(x_t, xhat_{t-ns}); the relax phase drops x_t from D's input. The generator's gradient flows
 * through the (fixed for that update) discriminator into the student.
 */
export function paddAdversarialStep(
  setup: PaddStageSetup,
  head: PatchHeadConfig,
  conditional: boolean,
  players: Readonly<Record<string, Player>>,
): TrainStep {
  const { config: c, formulation: f, unet } = setup;
  const round = (ctx: StepContext, batch: number): AdversarialRound => {
    const draw = paddDraw(setup, ctx.rng, batch, ctx);
    const netTime = tf.tensor1d(draw.t.map((t) => f.netTime(t)));
    const netTimeNext = tf.tensor1d(draw.tNext.map((t) => f.netTime(t)));
    const logits = (dp: Params, xNext: tf.Tensor4D): HeadLogits =>
      paddLogits(dp, unet, head, {
        xNext,
        netTimeNext,
        condition: draw.condition,
        ...(conditional ? { xT: draw.xT, netTime } : {}),
      });
    return {
      fake: (gp) => draw.studentStep(gp),
      realLogits: (dp) => logits(dp, draw.target),
      fakeLogits: logits,
      dispose: () => {
        draw.dispose();
        tf.dispose([netTime, netTimeNext]);
      },
    };
  };
  const options = { loss: 'non-saturating', discriminatorUpdates: c.discriminatorUpdates } as const;
  return (ctx) => adversarialStep(ctx, players, options, (_, batch) => round(ctx, batch));
}
