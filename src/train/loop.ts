// The one training loop every trainer uses (teacher, autoencoder, feature net, ADD, PADD, LADD): any number of
// players with their own optimisers, checkpoints that resume exactly, NaN rollback, progress and a JSONL log.
import { existsSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureWritableDir } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { Params } from '../nn/params.js';
import {
  latestCheckpointStep,
  loadCheckpoint,
  type Player,
  type RunSegment,
  saveCheckpoint,
  type TrainerState,
} from './checkpoint.js';
import { commandLine } from './command-line.js';
import { createProgress } from './progress.js';
import { lockRunDir } from './run-lock.js';

export interface TrainOptions {
  /** Run folder: holds `checkpoints/` and `log.jsonl`. */
  readonly outDir: string;
  readonly totalSteps: number;
  /** The flag that sets `totalSteps`, for messages (default `--steps`; distillation uses `--iterations`). */
  readonly stepsFlag?: string;
  readonly seed: number;
  readonly checkpointEvery: number;
  /** Checkpoint folders kept on disk (the newest ones). */
  readonly keepCheckpoints?: number;
  readonly logEvery: number;
  /** Continue from the newest checkpoint in `outDir` (an existing run without it is an error). */
  readonly resume: boolean;
  /** Progress label. */
  readonly label?: string;
  /** NaN/Inf rollbacks allowed before the run fails. */
  readonly maxRollbacks?: number;
  /** Stop after this many steps in this process (for tests of interruption); the run stays resumable. */
  readonly stopAfter?: number;
  /** The run's resolved settings (a method's config): a resume reports which differ from the last process's. */
  readonly settings?: object;
}

/** Loss of one player's update; `aux` scalars are logged (the trainer disposes them). */
export interface LossOutput {
  readonly loss: tf.Scalar;
  readonly aux?: Readonly<Record<string, tf.Scalar>>;
}

export interface StepContext {
  /** Index of this step (0-based; equals the number of completed steps). */
  readonly step: number;
  /** This run's random stream; its state is checkpointed, so draws replay exactly after a resume. */
  readonly rng: Rng;
  /**
   * One gradient update of `player` on `loss`, which must compute from the params it is given (the player's
   * current weights). Returns the loss and aux values as numbers. Other players' weights may be read (they get no
   * gradient and do not change).
   */
  update(player: string, loss: (params: Params) => LossOutput | tf.Scalar): Record<string, number>;
}

/** One training step: does its updates and returns numbers to log. */
export type TrainStep = (ctx: StepContext) => Record<string, number>;

export interface TrainResult {
  readonly completedSteps: number;
  readonly interrupted: boolean;
  /** Wall time of the whole run, over every process that worked on it. */
  readonly wallSeconds: number;
  /** Mean step time in this process. */
  readonly msPerStep: number;
  /** The processes that trained the run, each with its steps; more than one when flags changed on a resume. */
  readonly segments?: readonly SegmentSummary[];
}

/** A run segment as a card shows it: its steps, its command and the settings it changed. */
export interface SegmentSummary {
  readonly fromStep: number;
  readonly toStep: number;
  readonly command: string;
  readonly changed?: SettingsChanges;
}

export type SettingsChanges = Readonly<Record<string, { readonly from: unknown; readonly to: unknown }>>;

/** The settings that differ between two segments; undefined when none do or either is unknown. */
function settingsChanges(
  before: Readonly<Record<string, unknown>> | undefined,
  after: Readonly<Record<string, unknown>> | undefined,
): SettingsChanges | undefined {
  if (before === undefined || after === undefined) return undefined;
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) {
      changes[key] = { from: before[key], to: after[key] };
    }
  }
  return Object.keys(changes).length > 0 ? changes : undefined;
}

/** `lr 0.01 -> 0.005, ...`; a setting that a checkpoint from an older version did not record reads as such. */
export function describeSettingsChanges(changes: SettingsChanges): string {
  const show = (value: unknown): string => (value === undefined ? '(not recorded)' : JSON.stringify(value));
  return Object.entries(changes)
    .map(([key, c]) => `${key} ${show(c.from)} -> ${show(c.to)}`)
    .join(', ');
}

class NonFiniteLoss extends Error {}

/**
 * Training stopped by SIGINT or SIGTERM after checkpointing: the CLI exits with the signal's conventional status
 * (130 or 143), so `ladder train-teacher ... && ladder distill ...` does not go on with an unfinished model.
 */
export class TrainingInterrupted extends Error {
  constructor(
    readonly signal: NodeJS.Signals,
    readonly step: number,
    readonly outDir: string,
  ) {
    super(
      `interrupted by ${signal} at step ${step}; the checkpoint is in ${join(outDir, 'checkpoints')}: ` +
        'rerun the same command with --resume to continue',
    );
  }

  get exitCode(): number {
    return this.signal === 'SIGINT' ? 130 : 143;
  }
}

// ---------------------------------------------------------------------------------------------------------------

export async function train(
  players: Readonly<Record<string, Player>>,
  trainStep: TrainStep,
  opts: TrainOptions,
): Promise<TrainResult> {
  const { outDir, totalSteps, checkpointEvery, logEvery, keepCheckpoints = 2, maxRollbacks = 5 } = opts;
  const stepsFlag = opts.stepsFlag ?? '--steps';
  await ensureWritableDir(outDir);
  lockRunDir(outDir);
  const logPath = join(outDir, 'log.jsonl');
  const existing = await latestCheckpointStep(outDir);
  if (existing !== undefined && !opts.resume) {
    throw new Error(
      `${outDir} already holds a run (checkpoint at step ${existing}): pass --resume to continue it, or choose another --out`,
    );
  }
  if (existing === undefined && opts.resume && existsSync(logPath)) {
    throw new Error(
      `${outDir} has a log but no checkpoint to resume from: remove the folder or choose another --out`,
    );
  }
  if (existing !== undefined && existing > totalSteps) {
    throw new Error(
      `the run in ${outDir} is already at step ${existing}, past ${stepsFlag} ${totalSteps}: ` +
        `pass ${stepsFlag} ${existing} or more to resume it`,
    );
  }
  if (existing === undefined && opts.resume) {
    process.stderr.write(`note: --resume found no checkpoint in ${outDir}; starting a fresh run\n`);
  }

  // 1. Start fresh (checkpoint at step 0, so a NaN before the first periodic checkpoint can roll back) or resume.
  let state: TrainerState;
  const thisSegment = (fromStep: number): RunSegment => ({
    fromStep,
    command: commandLine(),
    ...(opts.settings === undefined ? {} : { settings: { ...opts.settings } }),
  });
  let segments: RunSegment[];
  if (existing !== undefined) {
    state = await loadCheckpoint(outDir, players);
    // Flags may change on resume (a later phase of a curriculum, say): the log, the checkpoints and the card keep
    // each segment's command and what it changed, so the run stays reproducible.
    // A process stopped before its first step still checkpoints; it drops out here, so changes count from the
    // last process that trained.
    const earlier = (
      state.segments ?? [{ fromStep: 0, command: 'unknown (checkpoint older than segment records)' }]
    ).filter((segment) => segment.fromStep < state.step);
    const current = thisSegment(state.step);
    const changed = settingsChanges(earlier.at(-1)?.settings, current.settings);
    segments = [...earlier, current];
    const resumed = {
      event: 'resume',
      step: state.step,
      argv: process.argv.slice(2),
      ...(changed && { changed }),
    };
    await appendFile(logPath, `${JSON.stringify(resumed)}\n`);
    if (changed) {
      process.stderr.write(
        `note: resuming at step ${state.step} with changed settings: ${describeSettingsChanges(changed)}\n`,
      );
    }
  } else {
    segments = [thisSegment(0)];
    state = { step: 0, rng: new Rng(opts.seed).state(), lrScale: 1, rollbacks: 0, wallSeconds: 0, segments };
    await saveCheckpoint(outDir, players, state, keepCheckpoints);
  }
  let rng = Rng.fromState(state.rng);

  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = signal;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const progress = createProgress(opts.label ?? 'train', totalSteps, state.step);
  const began = performance.now();
  const priorSeconds = state.wallSeconds;
  const snapshot = (): TrainerState => ({
    ...state,
    segments,
    rng: rng.state(),
    wallSeconds: priorSeconds + (performance.now() - began) / 1000,
  });
  const startStep = state.step;
  let windowStart = performance.now();
  let windowSteps = 0;
  let msPerStep = 0;
  try {
    while (state.step < totalSteps && interrupted === undefined) {
      if (opts.stopAfter !== undefined && state.step - startStep >= opts.stopAfter) break;
      // 2. One step: the method's updates, each guarded against a non-finite loss.
      let metrics: Record<string, number>;
      try {
        metrics = trainStep(makeContext(players, state, rng));
      } catch (err) {
        if (!(err instanceof NonFiniteLoss)) throw err;
        // 3. NaN/Inf: reload the last good checkpoint, halve the learning rate, carry on.
        if (state.rollbacks >= maxRollbacks)
          throw new Error(`${err.message}; gave up after ${maxRollbacks} rollbacks`);
        const failedStep = state.step;
        const lrScale = state.lrScale / 2;
        const rollbacks = state.rollbacks + 1;
        state = {
          ...(await loadCheckpoint(outDir, players)),
          lrScale,
          rollbacks,
          wallSeconds: state.wallSeconds,
        };
        rng = Rng.fromState(state.rng);
        process.stderr.write(
          `warning: ${err.message} at step ${failedStep}; rolled back to step ${state.step}, learning rate x${lrScale}\n`,
        );
        await appendFile(logPath, `${JSON.stringify({ event: 'rollback', step: state.step, lrScale })}\n`);
        continue;
      }
      state.step += 1;
      windowSteps += 1;
      // 4. Log and checkpoint at their cadence.
      if (state.step % logEvery === 0 || state.step === totalSteps) {
        const now = performance.now();
        msPerStep = (now - windowStart) / windowSteps;
        windowStart = now;
        windowSteps = 0;
        const line = { step: state.step, ...metrics, lrScale: state.lrScale, msPerStep: round(msPerStep) };
        await appendFile(logPath, `${JSON.stringify(line)}\n`);
      }
      progress.update(state.step, metrics);
      if (state.step % checkpointEvery === 0 || state.step === totalSteps) {
        await saveCheckpoint(outDir, players, snapshot(), keepCheckpoints);
      }
    }
    if (state.step % checkpointEvery !== 0 && state.step < totalSteps) {
      await saveCheckpoint(outDir, players, snapshot(), keepCheckpoints);
    }
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (interrupted !== undefined && state.step < totalSteps) {
    throw new TrainingInterrupted(interrupted, state.step, outDir);
  }
  const processSeconds = (performance.now() - began) / 1000;
  const done = state.step - startStep;
  return {
    completedSteps: state.step,
    interrupted: state.step < totalSteps,
    wallSeconds: priorSeconds + processSeconds,
    msPerStep: done > 0 ? (processSeconds * 1000) / done : msPerStep,
    segments: summarizeSegments(segments, state.step),
  };
}

/** Each segment that trained at least one step, with the settings it changed from the one before. */
function summarizeSegments(segments: readonly RunSegment[], lastStep: number): SegmentSummary[] {
  return segments.flatMap((segment, i) => {
    const toStep = segments[i + 1]?.fromStep ?? lastStep;
    if (toStep <= segment.fromStep) return [];
    const changed = settingsChanges(segments[i - 1]?.settings, segment.settings);
    return [{ fromStep: segment.fromStep, toStep, command: segment.command, ...(changed && { changed }) }];
  });
}

const round = (x: number): number => Math.round(x * 100) / 100;

function makeContext(players: Readonly<Record<string, Player>>, state: TrainerState, rng: Rng): StepContext {
  return {
    step: state.step,
    rng,
    update(name, lossFn) {
      const player = players[name];
      if (!player) throw new Error(`no player named ${name} (have: ${Object.keys(players).join(', ')})`);
      const names = Object.keys(player.params);
      let aux: Record<string, tf.Scalar> = {};
      const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
        const params: Params = Object.fromEntries(names.map((n, i) => [n, xs[i]!]));
        const out = lossFn(params);
        if (out instanceof tf.Tensor) return out;
        aux = Object.fromEntries(Object.entries(out.aux ?? {}).map(([k, t]) => [k, tf.keep(t)])); // freed below
        return out.loss;
      })(names.map((n) => player.params[n]!));
      const loss = value.dataSync()[0]!; // one sync per update: the NaN guard needs the value now
      const result: Record<string, number> = { [`${name}Loss`]: loss };
      for (const [k, t] of Object.entries(aux)) result[k] = t.dataSync()[0]!;
      tf.dispose([value, ...Object.values(aux)]);
      const gradMap: Params = Object.fromEntries(names.map((n, i) => [n, grads[i]!]));
      if (!Number.isFinite(loss)) {
        tf.dispose(grads);
        throw new NonFiniteLoss(`${name} loss is ${loss}`);
      }
      const { params, gradNorm } = player.optimizer.apply(player.params, gradMap, state.lrScale);
      tf.dispose(grads);
      player.params = params;
      player.ema?.update(params, player.optimizer.updates);
      result[`${name}GradNorm`] = gradNorm;
      return result;
    },
  };
}
