// Model cards: how a model was made (exact command, seed, data, steps, wall time, backend) and what it measures;
// and the checks every trainer makes on its output folder before any slow work.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureWritableDir } from '../core/fs.js';
import { currentBackend } from '../engine/backend.js';
import { CONFIG_FILE } from '../models/folder.js';
import { latestCheckpointStep } from './checkpoint.js';
import { commandLine } from './command-line.js';
import { isRankZero } from './data-parallel.js';
import type { TrainResult } from './loop.js';
import { lockRunDir } from './run-lock.js';

/** What a trainer knows about its run besides the loop's result. */
export interface RunSettings {
  readonly seed: number;
  readonly dataset: string;
  readonly batchSize: number;
}

/**
 * Fails fast, before any slow work, when `outDir` cannot be written or is in use by another process (and locks it
 * for this one). A finished model there (`config.json`) is never rewritten: a new run refuses the folder, and
 * --resume refuses it unless `totalSteps` goes past the step it was trained to; the finished model is then moved
 * aside when the new one is written (saveModelFolder). `totalSteps` is what --iterations sets.
 */
export async function prepareRunDir(outDir: string, resume: boolean, totalSteps: number): Promise<void> {
  if (!isRankZero()) return; // a data-parallel run's folder is rank 0's
  await ensureWritableDir(outDir);
  lockRunDir(outDir);
  if (!existsSync(join(outDir, CONFIG_FILE))) return;
  if (!resume) throw new Error(`${outDir} already holds a finished model: choose another --out`);
  const finishedAt = await latestCheckpointStep(outDir);
  if (finishedAt === undefined) {
    throw new Error(
      `${outDir} holds a finished model without checkpoints: it cannot be continued (--resume needs the ` +
        'checkpoints its run wrote); train a new one into another --out',
    );
  }
  if (finishedAt >= totalSteps) {
    throw new Error(
      `${outDir} holds a model finished at step ${finishedAt}; --resume never rewrites a finished model: ` +
        `pass --iterations above ${finishedAt} to train it further (it is then kept in ${outDir}.replaced-step-${finishedAt})`,
    );
  }
  process.stderr.write(
    `note: continuing the model finished at step ${finishedAt} to --iterations ${totalSteps}; when the new one is ` +
      `written, the old one moves to ${outDir}.replaced-step-${finishedAt}\n`,
  );
}

export function makeCard(
  run: RunSettings,
  result: TrainResult,
  metrics: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  // A resumed, already finished run takes no steps in this process: fall back to the run's mean step time.
  const msPerStep =
    result.msPerStep > 0
      ? result.msPerStep
      : (1000 * result.wallSeconds) / Math.max(1, result.completedSteps);
  return {
    command: commandLine(),
    // A run resumed with other flags: its command alone would not reproduce it.
    ...(result.segments !== undefined && result.segments.length > 1 ? { segments: result.segments } : {}),
    seed: run.seed,
    dataset: run.dataset,
    steps: result.completedSteps,
    batchSize: run.batchSize,
    wallSeconds: Math.round(result.wallSeconds),
    msPerStep: Math.round(msPerStep),
    ...(result.dataParallel === undefined ? {} : { dataParallel: result.dataParallel }),
    backend: currentBackend(),
    node: process.version,
    createdAt: new Date().toISOString(),
    metrics,
    ...extra,
  };
}
