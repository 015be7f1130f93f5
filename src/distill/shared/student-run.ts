// The part every one-student distillation run (LADD, ADD, LADD-DMD) shares: train the players with the shared loop, then
// write the student's model folder (EMA weights when EMA is on) with its card.
import { datasetLabel } from '../../data/image-dataset.js';
import type { LoadedDiffusionModel } from '../../models/folder.js';
import { saveModelFolder } from '../../models/folder.js';
import type { DistillMethod } from '../../models/schema.js';
import { studentConfig } from '../../models/student-folder.js';
import { countParams } from '../../nn/params.js';
import { makeCard } from '../../train/card.js';
import type { Player } from '../../train/checkpoint.js';
import { isRankZero } from '../../train/data-parallel.js';
import { type TrainResult, type TrainStep, train } from '../../train/loop.js';
import { trainedStepCounts } from './student-times.js';

/** What a distillation run returns: the shared loop's result. */
export type DistillResult = TrainResult;

/** How a run is driven: where it writes, its seed, resume and checkpoint cadence. */
export interface RunOptions {
  readonly outDir: string;
  readonly seed: number;
  readonly resume: boolean;
  readonly checkpointEvery: number;
  readonly logEvery?: number;
  /** Stop after this many steps in this process (tests); the run stays resumable. */
  readonly stopAfter?: number;
  /** Profile this many iterations after a warm-up one, then stop (the result's `profile`). */
  readonly profile?: number;
}

export interface StudentRun {
  readonly method: Exclude<DistillMethod, 'padd'>;
  readonly teacher: LoadedDiffusionModel;
  /** The method's resolved config: recorded in the card and config.json. */
  readonly config: {
    readonly steps: number;
    readonly iterations: number;
    readonly batchSize: number;
    readonly emaDecay: number;
  };
  /** What the student trains on (the card's `data`); part of the run's settings, so a resume on other data is noted. */
  readonly trainingSet: Readonly<Record<string, unknown>>;
  /** Players named `generator` (the student) and `discriminator`. */
  readonly players: Readonly<Record<string, Player>>;
  readonly step: TrainStep;
  /** Method-specific card entries, asked for once training has finished. */
  readonly cardExtra?: () => Record<string, unknown>;
  /** The step splits its batches with `ctx.shard` (see TrainOptions.dataParallel). */
  readonly dataParallel?: boolean;
}

/** Trains `run`'s players and, unless interrupted, writes the student folder into `opts.outDir`. */
export async function trainStudent(run: StudentRun, opts: RunOptions): Promise<TrainResult> {
  const { method, teacher, config, players } = run;
  const result = await train(players, run.step, {
    outDir: opts.outDir,
    totalSteps: config.iterations,
    seed: opts.seed,
    checkpointEvery: opts.checkpointEvery,
    logEvery: opts.logEvery ?? 10,
    resume: opts.resume,
    label: `${method} ${config.steps}-step`,
    settings: { ...config, trainingSet: run.trainingSet },
    ...(opts.stopAfter === undefined ? {} : { stopAfter: opts.stopAfter }),
    ...(opts.profile === undefined ? {} : { profile: opts.profile }),
    ...(run.dataParallel === true ? { dataParallel: true } : {}),
  });
  if (result.interrupted || !isRankZero()) return result;

  const student = players.generator!;
  const weights = student.ema?.params ?? student.params;
  const card = makeCard(
    { seed: opts.seed, dataset: datasetLabel(teacher.config.dataset), batchSize: config.batchSize },
    result,
    {},
    {
      method,
      params: countParams(weights),
      headParams: countParams(players.discriminator!.params),
      weights: student.ema ? `EMA (decay ${config.emaDecay})` : 'raw',
      data: run.trainingSet,
      ...run.cardExtra?.(),
      config,
    },
  );
  const folder = studentConfig({
    teacher,
    outDir: opts.outDir,
    method,
    steps: trainedStepCounts(config.steps),
    methodConfig: config,
  });
  await saveModelFolder(opts.outDir, folder, weights, card, { replace: opts.resume });
  process.stderr.write(`${method.toUpperCase()} ${config.steps}-step student written to ${opts.outDir}\n`);
  return result;
}
