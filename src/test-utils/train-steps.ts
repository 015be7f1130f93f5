// Test helpers for a method's trainer step: run it briefly with the shared loop, and see which weights moved.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Params } from '../nn/params.js';
import type { Player } from '../train/checkpoint.js';
import { type TrainStep, train } from '../train/loop.js';

/** Every weight's values, as a snapshot to compare against later. */
export const values = (p: Params): Record<string, number[]> =>
  Object.fromEntries(Object.entries(p).map(([k, t]) => [k, Array.from(t.dataSync())]));

/** Whether any value of `now` differs from the snapshot `before`. */
export const moved = (before: Record<string, number[]>, now: Params): boolean =>
  Object.entries(now).some(([k, t]) => t.dataSync().some((v, i) => v !== before[k]![i]));

/** Two steps of the shared loop in a fresh folder; returns each step's metrics, as its log lines hold them. */
export async function trainTwoSteps(
  players: Readonly<Record<string, Player>>,
  step: TrainStep,
): Promise<Record<string, number>[]> {
  const dir = await mkdtemp(join(tmpdir(), 'ladder-steps-'));
  await train(players, step, {
    outDir: dir,
    totalSteps: 2,
    seed: 0,
    checkpointEvery: 10,
    logEvery: 1,
    resume: false,
  });
  const lines = (await readFile(join(dir, 'log.jsonl'), 'utf8')).trim().split('\n');
  return lines
    .map((line) => JSON.parse(line) as Record<string, number>)
    .filter((line) => line.step !== undefined)
    .map(({ step: _step, lrScale: _lrScale, msPerStep: _msPerStep, ...metrics }) => metrics);
}
