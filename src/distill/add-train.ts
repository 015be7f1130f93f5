// `distill --method add`: loads the teacher, its autoencoder and a pretrained feature network, trains the ADD players
// on the dataset's real latents with the shared loop (resumable, logged), measures where an iteration's time goes
// (decoding, feature network) and writes the student's model folder.

import { Rng, randn } from '../core/rng.js';
import { median } from '../core/stats.js';
import * as tf from '../core/tf.js';
import { datasetLabel, sameDataset } from '../data/image-dataset.js';
import { BatchLoader } from '../data/loader.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { currentBackend } from '../engine/backend.js';
import { type LoadedFeatureNet, loadFeatureNet } from '../models/feature-net.js';
import { type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import { decodeLatents } from '../nn/autoencoder.js';
import { featureNetTaps } from '../nn/feature-net.js';
import { disposeParams, type Params } from '../nn/params.js';
import { prepareRunDir } from '../train/card.js';
import type { Player } from '../train/checkpoint.js';
import type { StepContext } from '../train/loop.js';
import {
  type AddConfig,
  type AddSetup,
  addHeadsConfig,
  addPlayers,
  addStep,
  resolveAddConfig,
} from './add.js';
import { methodDenoisers } from './shared/denoisers.js';
import { classTrainingLatents, requireClassTeacher } from './shared/latents.js';
import { disposePlayers } from './shared/players.js';
import { type DistillResult, trainStudent } from './shared/student-run.js';

export interface DistillAddOptions {
  readonly teacherDir: string;
  readonly outDir: string;
  /** The pretrained feature network F (a `features` model folder), trained on another dataset than the teacher's. */
  readonly featureNetDir: string;
  /** Accept F trained on the teacher's own dataset (see `checkFeatureNet` for why that is refused by default). */
  readonly allowSameDatasetFeatures?: boolean;
  /** Overrides of ADD_DEFAULTS. */
  readonly config?: Partial<AddConfig>;
  readonly seed: number;
  readonly resume: boolean;
  readonly checkpointEvery: number;
  readonly logEvery?: number;
  /** Train on the first N training images only. */
  readonly limit?: number;
  /** Stop after this many steps in this process (tests); the run stays resumable. */
  readonly stopAfter?: number;
  /** Profile this many iterations after a warm-up one, then stop (the result's `profile`). */
  readonly profile?: number;
  /** Repetitions of the timing breakdown written to the card (default 3). */
  readonly timingReps?: number;
}

/**
 * Refuses an F that cannot serve as ADD's discriminator backbone here: one made for other image sizes, or one
 * trained on the teacher's own dataset (unless allowed), since the evaluation's feature net is such a network:
 * a student trained against it could learn to please the metric instead of matching the data.
 */
export function checkFeatureNet(
  featureNet: Pick<LoadedFeatureNet, 'dir' | 'config'>,
  teacher: Pick<LoadedDiffusionModel, 'dir' | 'config' | 'autoencoder'>,
  allowSameDataset = false,
): void {
  const F = featureNet.config;
  const pixels = teacher.autoencoder.config.autoencoder.imageShape;
  if (F.featureNet.imageShape.join('x') !== pixels.join('x')) {
    throw new Error(
      `${featureNet.dir} reads ${F.featureNet.imageShape.join('x')} images, but the teacher's decoder makes ` +
        `${pixels.join('x')}: use a feature net made for ${pixels.join('x')} images`,
    );
  }
  if (sameDataset(F.dataset, teacher.config.dataset) && !allowSameDataset) {
    throw new Error(
      `${featureNet.dir} is a feature net trained on ${datasetLabel(F.dataset)}, the dataset of the teacher (${teacher.dir}). ` +
        "ADD's discriminator must not see the data through the kind of network the evaluation measures with " +
        '(the FID-like scores and class accuracy use a net trained on the same dataset), or the student can learn ' +
        'to please the metric instead of matching the data. Use a feature net trained on another dataset (the ' +
        'default is a Fashion-MNIST one), or set allowSameDatasetFeatures to accept this knowingly.',
    );
  }
}

export async function distillAdd(opts: DistillAddOptions): Promise<DistillResult> {
  const config = resolveAddConfig(opts.config);
  await prepareRunDir(opts.outDir, opts.resume, config.iterations);
  const teacher = await loadDiffusionModel(opts.teacherDir);
  let featureNet: LoadedFeatureNet | undefined;
  let players: Record<string, Player> = {};
  try {
    if (teacher.config.kind !== 'teacher') {
      throw new Error(`${opts.teacherDir} is a ${teacher.config.kind} model: ADD distils a teacher folder`);
    }
    requireClassTeacher(teacher, 'ADD');
    // Check F and the heads on it before the slow work (encoding the dataset).
    featureNet = await loadFeatureNet(opts.featureNetDir);
    checkFeatureNet(featureNet, teacher, opts.allowSameDatasetFeatures);
    const { unet } = teacher.config;
    const heads = addHeadsConfig(featureNet.config.featureNet, unet.numClasses, config);
    const latents = await classTrainingLatents(opts, 'real', teacher, 'ADD');
    const denoisers = methodDenoisers(teacher, {
      cfg: config.teacherCfg === 'teacher' ? teacher.config.sampling.cfg : config.teacherCfg,
    });
    const setup: AddSetup = {
      config,
      formulation: makeFormulation(teacher.config.formulation),
      teacher: denoisers.teacher,
      student: denoisers.student,
      teacherParams: teacher.params,
      autoencoder: { params: teacher.autoencoder.params, config: teacher.autoencoder.config.autoencoder },
      featureNet: { params: featureNet.params, config: featureNet.config.featureNet },
      heads,
      data: new BatchLoader(latents, { batchSize: config.batchSize, seed: opts.seed }),
    };
    const featureNetRecord = {
      dir: opts.featureNetDir,
      name: featureNet.name,
      dataset: datasetLabel(featureNet.config.dataset),
    };
    players = addPlayers(setup, new Rng(opts.seed).fork());
    return await trainStudent(
      {
        method: 'add',
        teacher,
        config,
        players,
        step: addStep(setup, players),
        trainingSet: latents.description,
        dataParallel: true,
        // Where an iteration's time goes on this backend (fresh players, so the trained ones are untouched).
        cardExtra: () => ({
          featureNet: featureNetRecord,
          teacherCfg: denoisers.teacherCfg,
          timing: measureAddTiming(setup, { reps: opts.timingReps ?? 3 }),
        }),
      },
      opts,
    );
  } finally {
    disposePlayers(players);
    if (featureNet) disposeParams(featureNet.params);
    disposeParams(teacher.params);
    disposeParams(teacher.autoencoder.params);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Where an ADD iteration's time goes.

/** Milliseconds of one training iteration and of the pixel-space parts in it (median over `reps`). */
export interface AddTiming {
  readonly backend: string;
  readonly batchSize: number;
  readonly reps: number;
  /** One iteration: `discriminatorUpdates` discriminator updates and one student update, optimiser steps included. */
  readonly totalMs: number;
  /** Decoding latents to pixels in it: (2 discriminatorUpdates + 1) forwards and one forward + backward. */
  readonly decodeMs: number;
  readonly decodeShare: number;
  /** The feature network F in it, forward and backward, counted the same way (0 without the adversary). */
  readonly featureNetMs: number;
  readonly featureNetShare: number;
  /** The pieces measured, per call on one batch. */
  readonly pieces: {
    readonly decodeForwardMs: number;
    readonly decodeForwardBackwardMs: number;
    readonly featureNetForwardMs: number;
    readonly featureNetForwardBackwardMs: number;
  };
}

/** A step context whose updates do what the training loop's do (gradients, optimiser), waiting for each update. */
function timingContext(players: Readonly<Record<string, Player>>, step: number, rng: Rng): StepContext {
  return {
    step,
    rng,
    shard: (t) => t,
    shardValues: (values) => values,
    update(name, lossFn) {
      const player = players[name]!;
      const names = Object.keys(player.params);
      const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
        const out = lossFn(Object.fromEntries(names.map((n, i) => [n, xs[i]!])));
        return out instanceof tf.Tensor ? out : out.loss;
      })(names.map((n) => player.params[n]!));
      value.dataSync(); // waits for the update's work, so the time measured is the work done
      const gradMap: Params = Object.fromEntries(names.map((n, i) => [n, grads[i]!]));
      const { params, gradNorm } = player.optimizer.apply(player.params, gradMap);
      player.params = params;
      gradNorm.dispose();
      player.ema?.update(player.params, player.optimizer.updates);
      tf.dispose([value, ...grads]);
      return {};
    },
  };
}

/** Median wall time in ms of `run` over `reps` calls after one warm-up; `run` must sync (dataSync) itself. */
function medianMs(reps: number, run: (rep: number) => void): number {
  run(-1);
  const times: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const start = performance.now();
    run(rep);
    times.push(performance.now() - start);
  }
  return median(times);
}

/**
 * Times one ADD iteration on this backend with fresh players (`setup`'s weights are not changed), and, separately
 * with a sync between them, the pieces it runs in pixel space: the frozen decoder and the frozen F, forward and
 * forward + backward (the generator's gradient flows back through both). Their shares of the iteration follow
 * from how often an iteration runs each piece.
 */
export function measureAddTiming(setup: AddSetup, opts: { reps?: number } = {}): AddTiming {
  const reps = opts.reps ?? 3;
  if (!(Number.isInteger(reps) && reps >= 1))
    throw new Error(`timing reps must be a positive integer, got ${reps}`);
  const { config: c, autoencoder: ae, featureNet: F } = setup;
  const rng = new Rng(0);
  const players = addPlayers(setup, rng.fork());
  const step = addStep(setup, players);
  let totalMs: number;
  try {
    totalMs = medianMs(reps, (rep) => step(timingContext(players, rep + 1, rng)));
  } finally {
    disposePlayers(players);
  }

  // The pieces, on one batch of real latents standing in for the student's (same shape, same cost).
  const { x: latents, labels } = setup.data.batchAt(0);
  const pixels = tf.tidy(() => decodeLatents(ae.params, ae.config, latents));
  const sync = (t: tf.Tensor): void => {
    t.dataSync(); // waits for the backend, so the time measured is the work done
    t.dispose();
  };
  const cotangent = randn(rng, pixels.shape);
  const mapsOf = (x: tf.Tensor4D): tf.Tensor4D[] => [...featureNetTaps(F.params, F.config, x).maps];
  const pieces = {
    decodeForwardMs: medianMs(reps, () => sync(tf.tidy(() => decodeLatents(ae.params, ae.config, latents)))),
    decodeForwardBackwardMs: medianMs(reps, () =>
      sync(
        tf.grad((z: tf.Tensor) =>
          decodeLatents(ae.params, ae.config, z as tf.Tensor4D)
            .mul(cotangent)
            .sum(),
        )(latents),
      ),
    ),
    featureNetForwardMs: medianMs(reps, () =>
      sync(tf.tidy(() => featureNetTaps(F.params, F.config, pixels).features)),
    ),
    featureNetForwardBackwardMs: medianMs(reps, () =>
      sync(tf.grad((x: tf.Tensor) => tf.addN(mapsOf(x as tf.Tensor4D).map((m) => m.mean())))(pixels)),
    ),
  };
  tf.dispose([latents, labels, pixels, cotangent]);

  // Per iteration: every update decodes and runs F on its real x0 and the fake; only the generator's fake is
  // differentiated. Without the adversary neither runs.
  const forwards = c.adversarialWeight > 0 ? 2 * c.discriminatorUpdates + 1 : 0;
  const backwards = c.adversarialWeight > 0 ? 1 : 0;
  const decodeMs = forwards * pieces.decodeForwardMs + backwards * pieces.decodeForwardBackwardMs;
  const featureNetMs = forwards * pieces.featureNetForwardMs + backwards * pieces.featureNetForwardBackwardMs;
  const r = (x: number): number => Number(x.toPrecision(3)); // 3 significant digits: a small share stays > 0
  return {
    backend: currentBackend(),
    batchSize: c.batchSize,
    reps,
    totalMs: r(totalMs),
    decodeMs: r(decodeMs),
    decodeShare: r(decodeMs / totalMs),
    featureNetMs: r(featureNetMs),
    featureNetShare: r(featureNetMs / totalMs),
    pieces: Object.fromEntries(Object.entries(pieces).map(([k, v]) => [k, r(v)])) as AddTiming['pieces'],
  };
}
