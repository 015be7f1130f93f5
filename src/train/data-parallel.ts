// Data parallelism for the training loop: the launch environment (`ladder launch`, torchrun or a scheduler set
// RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), the process group, and what the loop does with it: start every rank
// from rank 0's state, give each rank its share of the global batch, average the gradients.

import * as tf from '../core/tf.js';
import { type Collectives, joinProcessGroup } from '../engine/torch/collectives.js';
import type { Params } from '../nn/params.js';
import { type Player, playersSnapshot, restorePlayers, type TrainerState } from './checkpoint.js';

/** The launch variables of one process, as PyTorch's launchers set them. */
export interface LaunchEnv {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly masterAddr: string;
  readonly masterPort: number;
}

/** Seconds a rendezvous or a collective waits for the other ranks (LADDER_DIST_TIMEOUT overrides). */
export const DEFAULT_DIST_TIMEOUT_S = 300;

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1)$/;

/** The launch variables, or undefined for a single process (no WORLD_SIZE, or 1). Throws on a partial set. */
export function launchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv | undefined {
  const world = env.WORLD_SIZE;
  if (world === undefined || world === '' || world === '1') return undefined;
  const int = (name: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = env[name];
    const value = Number(raw);
    if (raw === undefined || raw === '' || !Number.isInteger(value) || value < min || value > max) {
      throw new Error(
        `${name}=${raw ?? '(unset)'}: a data-parallel process needs RANK, WORLD_SIZE, MASTER_ADDR and ` +
          'MASTER_PORT (`ladder launch` sets them), with 0 <= RANK < WORLD_SIZE',
      );
    }
    return value;
  };
  const worldSize = int('WORLD_SIZE', 1);
  const rank = int('RANK', 0, worldSize - 1);
  const masterAddr = env.MASTER_ADDR;
  if (masterAddr === undefined || masterAddr === '') {
    throw new Error('MASTER_ADDR is unset: the address of the rank 0 process (`ladder launch` sets it)');
  }
  return {
    rank,
    worldSize,
    localRank: env.LOCAL_RANK === undefined ? rank : int('LOCAL_RANK', 0),
    masterAddr,
    masterPort: int('MASTER_PORT', 1, 65535),
  };
}

/**
 * Refuses a launch (WORLD_SIZE > 1) of work that does not split over processes yet, before any of it starts: N
 * processes would repeat it and write the same files.
 */
export function refuseLaunch(what: string, outDir: string, env: NodeJS.ProcessEnv = process.env): void {
  const launch = launchEnv(env);
  if (launch === undefined) return;
  throw new Error(
    `${what} does not split its batches over processes yet: run it without \`ladder launch\` ` +
      `(WORLD_SIZE=${launch.worldSize}) to train ${outDir}`,
  );
}

/** Whether this process writes the run's files: a single process, or rank 0 of a launch. */
export const isRankZero = (env: NodeJS.ProcessEnv = process.env): boolean =>
  (launchEnv(env)?.rank ?? 0) === 0;

let joined: Collectives | undefined;

/**
 * The process group of this process's launch, joined on first use; undefined for a single process. One group per
 * process: a command that trains several runs in turn (PADD's stages) reuses it.
 */
export function processGroupFromEnv(env: NodeJS.ProcessEnv = process.env): Collectives | undefined {
  const launch = launchEnv(env);
  if (launch === undefined) return undefined;
  if (joined !== undefined) return joined;
  const timeoutS = Number(env.LADDER_DIST_TIMEOUT ?? DEFAULT_DIST_TIMEOUT_S);
  if (!(timeoutS > 0)) throw new Error(`LADDER_DIST_TIMEOUT=${env.LADDER_DIST_TIMEOUT}: seconds, > 0`);
  const ifname = env.GLOO_SOCKET_IFNAME;
  joined = joinProcessGroup({
    host: launch.masterAddr,
    port: launch.masterPort,
    rank: launch.rank,
    worldSize: launch.worldSize,
    timeoutMs: Math.round(timeoutS * 1000),
    gloo:
      ifname !== undefined && ifname !== ''
        ? { interface: ifname }
        : LOOPBACK.test(launch.masterAddr)
          ? { address: '127.0.0.1' }
          : 'default',
  });
  return joined;
}

/**
 * Every rank takes rank 0's players (weights, EMA, optimiser moments) and trainer state. Rank 0's own values stay as
 * they are.
 */
export function syncFromRankZero(
  group: Collectives,
  players: Readonly<Record<string, Player>>,
  state: TrainerState,
): TrainerState {
  const snapshot = group.rank === 0 ? playersSnapshot(players, state) : undefined;
  const metadata = valueFromRankZero(group, snapshot?.metadata);
  const tensors = tensorsFromRankZero(group, snapshot?.tensors);
  if (group.rank === 0) return state;
  return restorePlayers('rank 0', tensors, metadata, players);
}

/**
 * Rank 0's named tensors on every rank (the others pass undefined): one broadcast of their names and shapes, one
 * of all of them. Rank 0 gets its own tensors back; the others own what they receive.
 */
export function tensorsFromRankZero(
  group: Collectives,
  tensors: Readonly<Record<string, tf.Tensor>> | undefined,
): Record<string, tf.Tensor> {
  const shapes = valueFromRankZero(
    group,
    tensors && Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.shape])),
  );
  const names = Object.keys(shapes);
  const lead = group.rank === 0;
  const mine = names.map((n) => (lead ? tensors![n]! : tf.zeros(shapes[n]!, 'float32')));
  const received = group.broadcast(mine, 0);
  if (lead) {
    tf.dispose(received);
    return { ...tensors };
  }
  tf.dispose(mine);
  return Object.fromEntries(names.map((n, i) => [n, received[i]!]));
}

/** Rank 0's JSON value on every rank (the others pass undefined): what rank 0 read from its disk or decided. */
export function valueFromRankZero<T>(group: Collectives, value: T | undefined): T {
  const text = group.rank === 0 ? JSON.stringify(value ?? null) : '';
  const sendLength = tf.tensor1d([text.length], 'int32');
  const [length] = group.broadcast([sendLength], 0);
  sendLength.dispose();
  const n = length!.dataSync()[0]!;
  length!.dispose();
  const codes = group.rank === 0 ? Int32Array.from(text, (ch) => ch.charCodeAt(0)) : new Int32Array(n);
  const sendCodes = tf.tensor1d(codes, 'int32');
  const [received] = group.broadcast([sendCodes], 0);
  sendCodes.dispose();
  const values = received!.dataSync();
  received!.dispose();
  return JSON.parse(Array.from(values, (c) => String.fromCharCode(c)).join('')) as T;
}

/**
 * Every rank's rows merged, on every rank: row r of the result (`rowSize` values) comes from the array of rank
 * `owner(r)`. Each rank passes an array of the whole size with its own rows filled (work split by rows, as synth
 * and eval split their batches).
 */
export function gatherRows(
  group: Collectives,
  mine: Float32Array,
  rowSize: number,
  owner: (row: number) => number,
): Float32Array {
  const local = tf.tensor1d(mine);
  const all = group.allGather(local);
  local.dispose();
  const parts = all.dataSync() as Float32Array;
  all.dispose();
  const merged = new Float32Array(mine.length);
  for (let row = 0; row < mine.length / rowSize; row++) {
    const from = owner(row) * mine.length + row * rowSize;
    merged.set(parts.subarray(from, from + rowSize), row * rowSize);
  }
  return merged;
}

/** Averages a player's gradients over the ranks in one call; the inputs are disposed. */
export function averageGradients(group: Collectives, grads: Params): Params {
  const names = Object.keys(grads);
  const averaged = group.allReduceMean(names.map((n) => grads[n]!));
  tf.dispose(Object.values(grads));
  return Object.fromEntries(names.map((n, i) => [n, averaged[i]!]));
}

/** Whether any rank says yes (a stop signal reaches the ranks at different steps; they must stop at one). */
export function anyRank(group: Collectives, yes: boolean): boolean {
  const flag = tf.scalar(yes ? 1 : 0);
  const [mean] = group.allReduceMean([flag]);
  flag.dispose();
  const any = mean!.dataSync()[0]! > 0;
  mean!.dispose();
  return any;
}

/**
 * This rank's rows of a global batch tensor (rank r of W takes rows [r B/W, (r+1) B/W)); the input is disposed.
 * Every rank draws the whole batch from the same stream, so the ranks together see exactly the single-process
 * batch and the averaged gradient is its gradient.
 */
export function shardRows<T extends tf.Tensor>(group: Collectives | undefined, t: T): T {
  if (group === undefined) return t;
  const { start, count } = rowShare(group, t.shape[0] ?? 0);
  const part = t.slice(start, count) as T;
  t.dispose();
  return part;
}

/** This rank's entries of per-sample host values drawn for the whole batch (times, say), as `shardRows` splits. */
export function shardValues(group: Collectives | undefined, values: Float32Array): Float32Array {
  if (group === undefined) return values;
  const { start, count } = rowShare(group, values.length);
  return values.slice(start, start + count);
}

function rowShare(group: Collectives, rows: number): { start: number; count: number } {
  if (rows % group.worldSize !== 0) {
    throw new Error(
      `a batch of ${rows} does not split evenly over ${group.worldSize} processes: pass a --batch that is a ` +
        `multiple of ${group.worldSize}`,
    );
  }
  const count = rows / group.worldSize;
  return { start: group.rank * count, count };
}

/** For tests: forget the joined group (after its shutdown). */
export function leaveProcessGroup(): void {
  joined?.shutdown();
  joined = undefined;
}
