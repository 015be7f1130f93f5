// The one training loop every trainer uses (teacher, autoencoder, feature net, ADD, PADD, LADD): any number of
// players with their own optimisers, checkpoints that resume exactly, NaN rollback, progress and a JSONL log.
import { existsSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureWritableDir } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { type EngineProfile, type ProfileRun, startProfile } from '../engine/profile.js';
import type { Collectives } from '../engine/torch/collectives.js';
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
import {
  anyRank,
  averageGradients,
  processGroupFromEnv,
  refuseLaunch,
  shardRows,
  shardValues,
  syncFromRankZero,
} from './data-parallel.js';
import { createProgress, silentProgress } from './progress.js';
import { lockRunDir } from './run-lock.js';

export interface TrainOptions {
  /** Run folder: holds `checkpoints/` and `log.jsonl`. */
  readonly outDir: string;
  readonly totalSteps: number;
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
  /**
   * Profile this many steps after one warm-up step, then stop (the run stays resumable); the result's `profile`
   * holds native calls, reads and time per step.
   */
  readonly profile?: number;
  /**
   * The trainer splits its batches with `StepContext.shard`, so it can run data-parallel: under `ladder launch`
   * (WORLD_SIZE > 1) its ranks average gradients and rank 0 alone writes. Trainers without it refuse a launch.
   */
  readonly dataParallel?: boolean;
  /** The process group (tests); default: the launch environment's. */
  readonly group?: Collectives;
}

/** Loss of one player's update; `aux` scalars are logged (the trainer disposes them). */
export interface LossOutput {
  readonly loss: tf.Scalar;
  readonly aux?: Readonly<Record<string, tf.Scalar>>;
}

/**
 * Scalars a step logs. They stay on the device: the loop reads every step's values in one read per log line (on a
 * GPU each read waits for the queue), and owns the tensors a step returns.
 */
export type StepMetrics = Record<string, tf.Scalar>;

export interface StepContext {
  /** Index of this step (0-based; equals the number of completed steps). */
  readonly step: number;
  /** This run's random stream; its state is checkpointed, so draws replay exactly after a resume. */
  readonly rng: Rng;
  /**
   * One gradient update of `player` on `loss`, which must compute from the params it is given (the player's
   * current weights). Returns `<player>Loss`, `<player>GradNorm` and the aux values, owned by the caller: return
   * them from the step or dispose them. Other players' weights may be read (they get no gradient and do not change).
   */
  update(player: string, loss: (params: Params) => LossOutput | tf.Scalar): StepMetrics;
  /**
   * This process's rows of a global batch tensor, drawn whole (the same on every rank); takes `t` over. Without
   * data parallelism, `t` itself.
   */
  shard<T extends tf.Tensor>(t: T): T;
  /** This process's entries of per-sample host values drawn for the whole batch, as `shard` splits rows. */
  shardValues(values: Float32Array): Float32Array;
}

/** One training step: does its updates and returns the scalars to log (the loop takes them over). */
export type TrainStep = (ctx: StepContext) => StepMetrics;

export interface TrainResult {
  readonly completedSteps: number;
  readonly interrupted: boolean;
  /** Wall time of the whole run, over every process that worked on it. */
  readonly wallSeconds: number;
  /** Mean step time in this process. */
  readonly msPerStep: number;
  /** The processes that trained the run, each with its steps; more than one when flags changed on a resume. */
  readonly segments?: readonly SegmentSummary[];
  /** Set when `profile` was asked for. */
  readonly profile?: EngineProfile;
  /** Set for a data-parallel run: its processes and the time per step in collectives (waits for others included). */
  readonly dataParallel?: { readonly processes: number; readonly collectiveMsPerStep: number };
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

class NonFiniteLoss extends Error {
  constructor(
    readonly step: number,
    readonly player: string,
    readonly value: number,
  ) {
    super(`${player} loss is ${value}`);
  }
}

/** A step's device scalars, waiting for the next read: its metrics and each update's loss (the NaN guard's). */
interface PendingStep {
  readonly step: number;
  readonly metrics: StepMetrics;
  readonly losses: readonly { readonly player: string; readonly loss: tf.Scalar }[];
}

/** The pending steps' scalars in read order: each step's losses, then its metrics. */
const pendingScalars = (pending: readonly PendingStep[]): tf.Scalar[] =>
  pending.flatMap((p) => [...p.losses.map((l) => l.loss), ...Object.values(p.metrics)]);

/**
 * Reads the pending steps' scalars in one read and disposes them. Returns the newest step's metrics, or throws
 * NonFiniteLoss naming the first step whose update had a non-finite loss.
 */
function readPending(pending: PendingStep[], group?: Collectives): Record<string, number> {
  const scalars = pendingScalars(pending);
  try {
    if (scalars.length === 0) return {};
    // Data-parallel: the mean over the ranks, so every rank sees a NaN of any rank and rolls back with it.
    const local = tf.stack(scalars);
    const stacked = group === undefined ? local : group.allReduceMean([local])[0]!;
    if (stacked !== local) local.dispose();
    const values = stacked.dataSync();
    stacked.dispose();
    let at = 0;
    let latest: Record<string, number> = {};
    for (const p of pending) {
      for (const { player } of p.losses) {
        const value = values[at++]!;
        if (!Number.isFinite(value)) throw new NonFiniteLoss(p.step, player, value);
      }
      latest = {};
      for (const key of Object.keys(p.metrics)) latest[key] = values[at++]!;
    }
    return latest;
  } finally {
    tf.dispose(scalars);
    pending.length = 0;
  }
}

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
  const group = opts.group ?? dataParallelGroup(opts, outDir);
  // Rank 0 alone reads and writes the run folder; the others take its state over the process group.
  const lead = group === undefined || group.rank === 0;
  if (group !== undefined && opts.profile !== undefined) {
    throw new Error('--profile times one process: run it without `ladder launch`');
  }
  if (lead) {
    await ensureWritableDir(outDir);
    lockRunDir(outDir);
  }
  const logPath = join(outDir, 'log.jsonl');
  const existing = lead ? await latestCheckpointStep(outDir) : undefined;
  if (existing !== undefined && !opts.resume) {
    throw new Error(
      `${outDir} already holds a run (checkpoint at step ${existing}): pass --resume to continue it, or choose another --out`,
    );
  }
  if (lead && existing === undefined && opts.resume && existsSync(logPath)) {
    throw new Error(
      `${outDir} has a log but no checkpoint to resume from: remove the folder or choose another --out`,
    );
  }
  if (existing !== undefined && existing > totalSteps) {
    throw new Error(
      `the run in ${outDir} is already at step ${existing}, past --iterations ${totalSteps}: ` +
        `pass --iterations ${existing} or more to resume it`,
    );
  }
  if (lead && existing === undefined && opts.resume) {
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
    if (lead) await saveCheckpoint(outDir, players, state, keepCheckpoints);
  }
  if (group !== undefined) {
    // Identical weights, moments and random stream on every rank: rank 0's, fresh or resumed.
    state = syncFromRankZero(group, players, { ...state, segments });
    segments = [...(state.segments ?? segments)];
  }
  let rng = Rng.fromState(state.rng);

  let interrupted: NodeJS.Signals | undefined;
  let stopped = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted = signal;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const progress = lead ? createProgress(opts.label ?? 'train', totalSteps, state.step) : silentProgress;
  const began = performance.now();
  const priorSeconds = state.wallSeconds;
  const snapshot = (): TrainerState => ({
    ...state,
    segments,
    rng: rng.state(),
    wallSeconds: priorSeconds + (performance.now() - began) / 1000,
  });
  const startStep = state.step;
  const collectiveMsBefore = group?.traffic.ms ?? 0;
  let windowStart = performance.now();
  let windowSteps = 0;
  let msPerStep = 0;
  const pending: PendingStep[] = [];
  let latest: Record<string, number> = {};
  let profiling: ProfileRun | undefined;
  let profile: EngineProfile | undefined;
  let savedStep = state.step;
  // 3. NaN/Inf in a loss read back: reload the last good checkpoint (the steps since were never checkpointed, as
  // every checkpoint reads the pending losses first), halve the learning rate, carry on.
  const rollBack = async (err: NonFiniteLoss): Promise<void> => {
    if (state.rollbacks >= maxRollbacks)
      throw new Error(`${err.message}; gave up after ${maxRollbacks} rollbacks`);
    const lrScale = state.lrScale / 2;
    const rollbacks = state.rollbacks + 1;
    state = {
      ...(lead ? await loadCheckpoint(outDir, players) : state),
      lrScale,
      rollbacks,
      wallSeconds: state.wallSeconds,
    };
    if (group !== undefined) state = { ...syncFromRankZero(group, players, state), lrScale, rollbacks };
    savedStep = state.step;
    rng = Rng.fromState(state.rng);
    if (!lead) return;
    process.stderr.write(
      `warning: ${err.message} at step ${err.step}; rolled back to step ${state.step}, learning rate x${lrScale}\n`,
    );
    await appendFile(logPath, `${JSON.stringify({ event: 'rollback', step: state.step, lrScale })}\n`);
  };
  try {
    // Ranks stop together: a signal that reached one rank stops every rank at the same step.
    const stopNow = (): boolean => {
      stopped = group === undefined ? interrupted !== undefined : anyRank(group, interrupted !== undefined);
      return stopped;
    };
    while (state.step < totalSteps && !stopNow()) {
      const done = state.step - startStep;
      if (opts.stopAfter !== undefined && done >= opts.stopAfter) break;
      if (opts.profile !== undefined && done === 1) profiling = startProfile(); // after a warm-up step
      if (profiling !== undefined && done === 1 + (opts.profile ?? 0)) {
        profile = profiling.stop(opts.profile ?? 0);
        profiling = undefined;
        break;
      }
      // 2. One step: the method's updates. Its scalars stay on the device until the next log line or checkpoint.
      const losses: { player: string; loss: tf.Scalar }[] = [];
      const metrics = trainStep(makeContext(players, state, rng, losses, group));
      pending.push({ step: state.step, metrics, losses });
      state.step += 1;
      windowSteps += 1;
      // 4. Log and checkpoint at their cadence: read the pending scalars once, then write.
      const logNow = state.step % logEvery === 0 || state.step === totalSteps;
      const checkpointNow = state.step % checkpointEvery === 0 || state.step === totalSteps;
      if (logNow || checkpointNow) {
        try {
          latest = readPending(pending, group);
        } catch (err) {
          if (!(err instanceof NonFiniteLoss)) throw err;
          await rollBack(err);
          continue;
        }
      }
      if (logNow && lead) {
        const now = performance.now();
        msPerStep = (now - windowStart) / windowSteps;
        windowStart = now;
        windowSteps = 0;
        const line = { step: state.step, ...latest, lrScale: state.lrScale, msPerStep: round(msPerStep) };
        await appendFile(logPath, `${JSON.stringify(line)}\n`);
      }
      progress.update(state.step, latest);
      if (checkpointNow) {
        if (lead) await saveCheckpoint(outDir, players, snapshot(), keepCheckpoints);
        savedStep = state.step;
      }
    }
    if (state.step !== savedStep) {
      // Stopped between checkpoints: keep the steps done, unless one of them went non-finite.
      try {
        readPending(pending, group);
        if (lead) await saveCheckpoint(outDir, players, snapshot(), keepCheckpoints);
      } catch (err) {
        if (!(err instanceof NonFiniteLoss)) throw err;
        await rollBack(err);
      }
    }
  } finally {
    tf.dispose(pendingScalars(pending));
    if (profiling !== undefined) profiling.stop(1);
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (state.step < totalSteps && (interrupted !== undefined || stopped)) {
    throw new TrainingInterrupted(interrupted ?? 'SIGTERM', state.step, outDir);
  }
  const processSeconds = (performance.now() - began) / 1000;
  const done = state.step - startStep;
  return {
    completedSteps: state.step,
    interrupted: state.step < totalSteps,
    wallSeconds: priorSeconds + processSeconds,
    msPerStep: done > 0 ? (processSeconds * 1000) / done : msPerStep,
    segments: summarizeSegments(segments, state.step),
    ...(profile === undefined ? {} : { profile }),
    ...(group === undefined
      ? {}
      : {
          dataParallel: {
            processes: group.worldSize,
            collectiveMsPerStep: round((group.traffic.ms - collectiveMsBefore) / Math.max(1, done)),
          },
        }),
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

function makeContext(
  players: Readonly<Record<string, Player>>,
  state: TrainerState,
  rng: Rng,
  losses: { player: string; loss: tf.Scalar }[],
  group: Collectives | undefined,
): StepContext {
  return {
    step: state.step,
    rng,
    shard: (t) => shardRows(group, t),
    shardValues: (values) => shardValues(group, values),
    update(name, lossFn) {
      const player = players[name];
      if (!player) throw new Error(`no player named ${name} (have: ${Object.keys(players).join(', ')})`);
      const names = Object.keys(player.params);
      let aux: StepMetrics = {};
      const { value, grads: localGrads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
        const params: Params = Object.fromEntries(names.map((n, i) => [n, xs[i]!]));
        const out = lossFn(params);
        if (out instanceof tf.Tensor) return out;
        aux = Object.fromEntries(Object.entries(out.aux ?? {}).map(([k, t]) => [k, tf.keep(t)]));
        return out.loss;
      })(names.map((n) => player.params[n]!));
      // No read here: a non-finite loss is caught when the loop next reads (its update is rolled back with it).
      losses.push({ player: name, loss: value });
      const local: Params = Object.fromEntries(names.map((n, i) => [n, localGrads[i]!]));
      // Data-parallel: each rank's gradient is of the mean loss over its rows; their mean is the whole batch's.
      const gradMap = group === undefined ? local : averageGradients(group, local);
      const { params, gradNorm } = player.optimizer.apply(player.params, gradMap, state.lrScale);
      tf.dispose(Object.values(gradMap));
      player.params = params;
      player.ema?.update(params, player.optimizer.updates);
      return { [`${name}Loss`]: value.clone(), ...aux, [`${name}GradNorm`]: gradNorm };
    },
  };
}

/**
 * The launch environment's process group when this trainer can use it; a launch of a trainer that cannot split its
 * batches is refused rather than run as N copies of the same run.
 */
function dataParallelGroup(opts: TrainOptions, outDir: string): Collectives | undefined {
  if (opts.dataParallel !== true) refuseLaunch(opts.label ?? 'this trainer', outDir);
  return processGroupFromEnv();
}
