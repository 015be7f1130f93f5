// Training checkpoints: every player's weights, EMA and optimiser moments, the RNG state and the step, in one
// safetensors file per checkpoint folder. Folders are written atomically; `latest.json` points at the newest.
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDirAtomic, writeJsonAtomic } from '../core/fs.js';
import type { RngState } from '../core/rng.js';
import type * as tf from '../core/tf.js';
import { loadTensors, saveTensors } from '../io/safetensors.js';
import { checkSameShapes } from '../nn/check-shapes.js';
import { type Params, paramsUnder } from '../nn/params.js';
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

/**
 * Every player's weights, optimiser moments and EMA by name (`<player>/params|optim|ema/<name>`, the players' own
 * tensors, not copies) and the trainer state with the optimisers' update counts as metadata: what a checkpoint holds
 * and what rank 0 sends the other ranks of a data-parallel run.
 */
export function playersSnapshot(
  players: Readonly<Record<string, Player>>,
  state: TrainerState,
): { tensors: Record<string, tf.Tensor>; metadata: Record<string, string> } {
  const tensors: Record<string, tf.Tensor> = {};
  for (const [name, p] of Object.entries(players)) {
    for (const [k, t] of Object.entries(p.params)) tensors[`${name}/params/${k}`] = t;
    for (const [k, t] of Object.entries(p.optimizer.stateTensors())) tensors[`${name}/optim/${k}`] = t;
    if (p.ema) for (const [k, t] of Object.entries(p.ema.params)) tensors[`${name}/ema/${k}`] = t;
  }
  const updates = Object.fromEntries(Object.entries(players).map(([n, p]) => [n, p.optimizer.updates]));
  return { tensors, metadata: { trainer: JSON.stringify({ ...state, updates }) } };
}

export async function saveCheckpoint(
  outDir: string,
  players: Readonly<Record<string, Player>>,
  state: TrainerState,
  keep: number,
): Promise<void> {
  const root = checkpointsDir(outDir);
  const { tensors, metadata } = playersSnapshot(players, state);
  const dir = stepDir(state.step);
  await writeDirAtomic(join(root, dir), (tmp) => saveTensors(join(tmp, STATE_FILE), tensors, metadata), {
    replace: true,
  });
  await writeJsonAtomic(join(root, 'latest.json'), { step: state.step, dir });
  const old = (await readdir(root)).filter((d) => d.startsWith('step-') && d !== dir).sort();
  for (const d of old.slice(0, Math.max(0, old.length - (keep - 1))))
    await rm(join(root, d), { recursive: true });
}

/** The steps of the checkpoint folders on disk, newest first. */
async function checkpointSteps(outDir: string): Promise<number[]> {
  const root = checkpointsDir(outDir);
  if (!existsSync(root)) return [];
  return (await readdir(root))
    .map((d) => /^step-(\d{8})$/.exec(d))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
}

/** What `latest.json` names, or undefined (with a warning) when it is missing or damaged. */
async function latestPointer(outDir: string): Promise<number | undefined> {
  const path = join(checkpointsDir(outDir), 'latest.json');
  if (!existsSync(path)) return undefined;
  try {
    const latest = JSON.parse(await readFile(path, 'utf8')) as { step?: unknown };
    if (typeof latest.step === 'number' && Number.isInteger(latest.step) && latest.step >= 0)
      return latest.step;
    warn(`${path} names no step; using the checkpoint folders instead`);
  } catch (err) {
    warn(`${path} is damaged (${(err as Error).message}); using the checkpoint folders instead`);
  }
  return undefined;
}

const warn = (line: string): void => {
  process.stderr.write(`warning: ${line}\n`);
};

/**
 * Checkpoint steps to try, best first: the one `latest.json` names, then every folder on disk, newest first. A
 * damaged pointer or a missing folder (a kill between the two writes) does not lose the run.
 */
async function candidateSteps(outDir: string): Promise<number[]> {
  const onDisk = await checkpointSteps(outDir);
  const pointer = await latestPointer(outDir);
  const first = pointer !== undefined && onDisk.includes(pointer) ? [pointer] : [];
  return [...first, ...onDisk.filter((s) => s !== pointer)];
}

/** The newest checkpoint's step, or undefined when the run has none. */
export async function latestCheckpointStep(outDir: string): Promise<number | undefined> {
  return (await candidateSteps(outDir))[0];
}

/**
 * Restores players (weights, EMA, optimiser) from the newest readable checkpoint in place and returns the trainer
 * state. A checkpoint file that cannot be read (truncated, say) is reported and the one before it is used. Every
 * tensor's name and shape must match the players as configured; parameters keep the players' own order, so
 * order-dependent sums (the gradient norm for clipping) are the same after a resume as before.
 */
export async function loadCheckpoint(
  outDir: string,
  players: Readonly<Record<string, Player>>,
): Promise<TrainerState> {
  const steps = await candidateSteps(outDir);
  if (steps.length === 0) throw new Error(`no checkpoint in ${checkpointsDir(outDir)}: nothing to resume`);
  const unreadable: number[] = [];
  for (const [i, step] of steps.entries()) {
    const file = join(checkpointsDir(outDir), stepDir(step), STATE_FILE);
    let loaded: Awaited<ReturnType<typeof loadTensors>>;
    try {
      loaded = await loadTensors(file);
    } catch (err) {
      const next = steps[i + 1];
      if (next === undefined) {
        throw new Error(`no readable checkpoint in ${checkpointsDir(outDir)}: ${(err as Error).message}`);
      }
      warn(`cannot read checkpoint ${file} (${(err as Error).message}); falling back to step ${next}`);
      unreadable.push(step);
      continue;
    }
    const state = restorePlayers(file, loaded.tensors, loaded.metadata, players);
    // Renamed out of the `step-` series, so neither the next resume nor the pruning of old checkpoints (which
    // keeps the newest names) takes them for good ones; kept for a look, not deleted.
    for (const bad of unreadable) {
      const dir = join(checkpointsDir(outDir), stepDir(bad));
      await rename(dir, join(checkpointsDir(outDir), `damaged-${stepDir(bad)}`)).catch(() => undefined);
    }
    return state;
  }
  throw new Error('unreachable');
}

/**
 * Puts a snapshot's tensors (taking them over) into the players and returns its trainer state. `file` names the
 * snapshot's source in errors.
 */
export function restorePlayers(
  file: string,
  tensors: Record<string, tf.Tensor>,
  metadata: Record<string, string>,
  players: Readonly<Record<string, Player>>,
): TrainerState {
  const raw = metadata.trainer;
  if (raw === undefined) throw new Error(`${file} has no trainer metadata: not a ladder checkpoint`);
  const saved = JSON.parse(raw) as TrainerState & { updates: Record<string, number> };
  // Tensors under `prefix`, in the order of `order` (the file stores them alphabetically).
  const take = (prefix: string, order: readonly string[]): Params => {
    const part = paramsUnder(tensors, prefix);
    const rank = new Map(order.map((k, i) => [k, i]));
    const found = Object.keys(part).sort(
      (a, b) => (rank.get(a) ?? order.length) - (rank.get(b) ?? order.length) || (a < b ? -1 : 1),
    );
    return Object.fromEntries(found.map((k) => [k, part[k]!]));
  };
  for (const [name, p] of Object.entries(players)) {
    const order = Object.keys(p.params);
    const params = take(`${name}/params/`, order);
    checkSameShapes(params, p.params, `${file} (${name}/params/)`);
    for (const t of Object.values(p.params)) t.dispose();
    p.params = params;
    const moments = order.flatMap((k) => [`m.${k}`, `v.${k}`]);
    p.optimizer.loadState(take(`${name}/optim/`, moments), saved.updates[name] ?? 0);
    if (p.ema) {
      const ema = take(`${name}/ema/`, order);
      checkSameShapes(ema, p.ema.params, `${file} (${name}/ema/)`);
      p.ema.load(ema);
    }
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
