// Test helpers: the real `ladder` command line in a child process (one libtorch thread each, as CI runs two test
// files at once), and waiting for a run in one to reach a checkpoint.
import { type ChildProcess, type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { latestCheckpointStep } from '../train/checkpoint.js';

const main = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const env = { ...process.env, LADDER_TORCH_THREADS: '1' };

/** Runs `ladder args` to completion. */
export const runLadder = (args: readonly string[]): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, ['--import', 'tsx', main, ...args], { encoding: 'utf8', env });

/** A `ladder` process left running; `done` gives its exit code and what it wrote to stderr. */
export function startLadder(args: readonly string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; stderr: string }>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env,
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
  });
  const done = new Promise<{ code: number | null; stderr: string }>((r) =>
    child.once('close', (code) => r({ code, stderr })),
  );
  return { child, done };
}

/** Waits until the run folder `dir` holds a checkpoint at step `atLeast` or later; returns its step. */
export async function waitForCheckpoint(dir: string, atLeast: number): Promise<number> {
  for (;;) {
    const step = await latestCheckpointStep(dir).catch(() => undefined);
    if (step !== undefined && step >= atLeast) return step;
    await new Promise((r) => setTimeout(r, 50));
  }
}
