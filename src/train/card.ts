// Model cards: how a model was made (exact command, seed, data, steps, wall time, backend) and what it measures;
// and the checks every trainer makes on its output folder before any slow work.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureWritableDir } from '../core/fs.js';
import { currentBackend } from '../engine/backend.js';
import type { TrainResult } from './loop.js';

/** What a trainer knows about its run besides the loop's result. */
export interface RunSettings {
  readonly seed: number;
  readonly dataset: string;
  readonly batchSize: number;
}

/**
 * The command line as typed (program name shortened to `ladder`), for the card. `--resume` is left out: a
 * resumed run ends where the uninterrupted command would have.
 */
export function commandLine(argv: readonly string[] = process.argv): string {
  return ['ladder', ...argv.slice(2).filter((a) => a !== '--resume')]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)))
    .join(' ');
}

/** Fails fast when `outDir` cannot be written, or holds a finished model (`configFile`) and this is no resume. */
export async function prepareRunDir(
  outDir: string,
  resume: boolean,
  configFile = 'config.json',
): Promise<void> {
  await ensureWritableDir(outDir);
  if (existsSync(join(outDir, configFile)) && !resume) {
    throw new Error(`${outDir} already holds a finished model: choose another --out`);
  }
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
    backend: currentBackend(),
    node: process.version,
    createdAt: new Date().toISOString(),
    metrics,
    ...extra,
  };
}
