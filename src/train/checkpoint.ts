// Training checkpoints: every player's weights, EMA and optimiser moments, the RNG state and the step, in one
// safetensors file per checkpoint folder. Folders are written atomically; `latest.json` points at the newest.
import { existsSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDirAtomic, writeJsonAtomic } from '../core/fs.js';
import type { RngState } from '../core/rng.js';
import type * as tf from '../core/tf.js';
import { loadTensors, saveTensors } from '../io/safetensors.js';
import { checkSameShapes } from '../nn/check-shapes.js';
import type { Params } from '../nn/params.js';
import type { Ema } from './ema.js';
import type { AdamW } from './optim.js';

// Moved to nn/check-shapes.ts (browser-safe); re-exported for existing importers.
export { checkSameShapes } from '../nn/check-shapes.js';

/** A network the trainer optimises: its weights are replaced on every update. */
export interface Player {
  params: Params;
  readonly optimizer: AdamW;
  readonly ema?: Ema;
}

export interface TrainerState {
  /** Steps completed. */
  step: number;
  rng: RngState;
  /** Multiplier on every learning rate; halved at each NaN rollback. */
  lrScale: number;
  rollbacks: number;
  /** Training wall time so far, summed over every process that worked on the run. */
  wallSeconds: number;
  /** The processes that trained the run, oldest first (absent in checkpoints written before segments existed). */
  segments?: readonly RunSegment[];
}

/** One process's share of a run: where it started, its command and the settings it trained with. */
export interface RunSegment {
  readonly fromStep: number;
  readonly command: string;
  /** The trainer's resolved settings (a method's config), when the trainer gave them. */
  readonly settings?: Readonly<Record<string, unknown>>;
}

const STATE_FILE = 'state.safetensors';
const stepDir = (step: number): string => `step-${String(step).padStart(8, '0')}`;

export function checkpointsDir(outDir: string): string {
  return join(outDir, 'checkpoints');
}

export async function saveCheckpoint(
  outDir: string,
  players: Readonly<Record<string, Player>>,
  state: TrainerState,
  keep: number,
): Promise<void> {
  const root = checkpointsDir(outDir);
  const tensors: Record<string, tf.Tensor> = {};
  for (const [name, p] of Object.entries(players)) {
    for (const [k, t] of Object.entries(p.params)) tensors[`${name}/params/${k}`] = t;
    for (const [k, t] of Object.entries(p.optimizer.stateTensors())) tensors[`${name}/optim/${k}`] = t;
    if (p.ema) for (const [k, t] of Object.entries(p.ema.params)) tensors[`${name}/ema/${k}`] = t;
  }
  const updates = Object.fromEntries(Object.entries(players).map(([n, p]) => [n, p.optimizer.updates]));
  const meta = { trainer: JSON.stringify({ ...state, updates }) };
  const dir = stepDir(state.step);
  await writeDirAtomic(join(root, dir), (tmp) => saveTensors(join(tmp, STATE_FILE), tensors, meta), {
    replace: true,
  });
  await writeJsonAtomic(join(root, 'latest.json'), { step: state.step, dir });
  const old = (await readdir(root)).filter((d) => d.startsWith('step-') && d !== dir).sort();
  for (const d of old.slice(0, Math.max(0, old.length - (keep - 1))))
    await rm(join(root, d), { recursive: true });
}

/** The newest checkpoint's step, or undefined when the run has none. */
export async function latestCheckpointStep(outDir: string): Promise<number | undefined> {
  const path = join(checkpointsDir(outDir), 'latest.json');
  if (!existsSync(path)) return undefined;
  const latest = JSON.parse(await readFile(path, 'utf8')) as { step?: unknown };
  if (typeof latest.step !== 'number') throw new Error(`${path} is damaged: it names no step`);
  return latest.step;
}

/**
 * Restores players (weights, EMA, optimiser) from the newest checkpoint in place and returns the trainer state.
 * Every tensor's name and shape must match the players as configured.
 */
export async function loadCheckpoint(
  outDir: string,
  players: Readonly<Record<string, Player>>,
): Promise<TrainerState> {
  const step = await latestCheckpointStep(outDir);
  if (step === undefined) throw new Error(`no checkpoint in ${checkpointsDir(outDir)}: nothing to resume`);
  const file = join(checkpointsDir(outDir), stepDir(step), STATE_FILE);
  const { tensors, metadata } = await loadTensors(file);
  const raw = metadata.trainer;
  if (raw === undefined) throw new Error(`${file} has no trainer metadata: not a ladder checkpoint`);
  const saved = JSON.parse(raw) as TrainerState & { updates: Record<string, number> };
  const take = (prefix: string, expected: Params | undefined): Params => {
    const out: Params = {};
    for (const [k, t] of Object.entries(tensors)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = t;
    if (expected) checkSameShapes(out, expected, `${file} (${prefix})`);
    return out;
  };
  for (const [name, p] of Object.entries(players)) {
    const params = take(`${name}/params/`, p.params);
    for (const t of Object.values(p.params)) t.dispose();
    p.params = params;
    p.optimizer.loadState(take(`${name}/optim/`, undefined), saved.updates[name] ?? 0);
    if (p.ema) p.ema.load(take(`${name}/ema/`, p.ema.params));
  }
  const known = Object.keys(players);
  for (const k of Object.keys(tensors)) {
    if (!known.includes(k.split('/')[0]!))
      throw new Error(`${file} holds ${k}, which no network of this run has`);
  }
  return {
    step: saved.step,
    rng: saved.rng,
    lrScale: saved.lrScale,
    rollbacks: saved.rollbacks,
    wallSeconds: saved.wallSeconds,
    ...(saved.segments === undefined ? {} : { segments: saved.segments }),
  };
}
