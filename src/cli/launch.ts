// `ladder launch`: starts the processes of a data-parallel run on this machine with the variables PyTorch's
// launchers set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), and stops them all when one fails.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { selfLauncher, showCommand } from './from-scratch.js';

export interface LaunchOptions {
  /** Processes on this machine. */
  readonly nproc: number;
  /** Machines in the run (each runs `ladder launch` with its own --node-rank). */
  readonly nnodes: number;
  readonly nodeRank: number;
  /** Rank 0's machine and a free port on it; default on one machine: 127.0.0.1 and a free port. */
  readonly master?: { readonly host: string; readonly port: number };
  /** The ladder command each process runs (verb first). */
  readonly command: readonly string[];
  /** Global --backend of the launch (passed on; the children default to torch). */
  readonly backend?: string;
}

/** The verbs that split their work over processes (every distillation method). */
export const DATA_PARALLEL_VERBS: readonly string[] = [
  'train-ae',
  'train-teacher',
  'train-features',
  'distill',
  'eval',
  'synth',
];

/**
 * Refuses a verb that would run as N identical copies under a launch (RANK and WORLD_SIZE set): each would write
 * the same files.
 */
export function checkLaunchable(verb: string, world: number | undefined): void {
  if (world === undefined || world === 1 || DATA_PARALLEL_VERBS.includes(verb)) return;
  throw new Error(
    `${verb} runs in one process (WORLD_SIZE=${world} is set): data-parallel verbs are ` +
      `${DATA_PARALLEL_VERBS.join(', ')}; run ${verb} without a launcher`,
  );
}

/** `host:port` of --master. */
export function parseMaster(text: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(text);
  const port = Number(m?.[2]);
  if (m === null || !(port >= 1 && port <= 65535)) {
    throw new Error(`--master ${text}: expected ADDRESS:PORT of the rank 0 machine, e.g. 10.0.0.1:29500`);
  }
  return { host: m[1]!, port };
}

/** A TCP port nobody listens on now (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** The environment of local process `local` of this node. */
export function rankEnv(
  o: Pick<LaunchOptions, 'nproc' | 'nnodes' | 'nodeRank'>,
  master: { host: string; port: number },
  local: number,
): Record<string, string> {
  return {
    RANK: String(o.nodeRank * o.nproc + local),
    WORLD_SIZE: String(o.nproc * o.nnodes),
    LOCAL_RANK: String(local),
    LOCAL_WORLD_SIZE: String(o.nproc),
    GROUP_RANK: String(o.nodeRank),
    MASTER_ADDR: master.host,
    MASTER_PORT: String(master.port),
  };
}

/**
 * Seconds the other processes get after one fails: their collectives usually fail at once when a peer's connection
 * closes. Then they are killed: a process blocked inside a collective (or a rendezvous that rank 0 never opened)
 * runs no signal handler, and checkpoints are written atomically, so a kill loses only the steps since the last one.
 */
const FAILURE_GRACE_S = 10;

/** Runs the processes and resolves with the launch's exit code: 0 when all succeed, else the first failure's. */
export async function launchCommand(o: LaunchOptions): Promise<number> {
  if (!Number.isInteger(o.nproc) || o.nproc < 1) throw new Error(`--nproc ${o.nproc}: at least 1 process`);
  if (o.nodeRank < 0 || o.nodeRank >= o.nnodes) {
    throw new Error(`--node-rank ${o.nodeRank} is outside --nnodes ${o.nnodes} (0 to ${o.nnodes - 1})`);
  }
  if (o.nnodes > 1 && o.master === undefined) {
    throw new Error(
      '--nnodes above 1 needs --master ADDRESS:PORT: the rank 0 machine, reachable from the others',
    );
  }
  if (o.command.length === 0) throw new Error('no command: `ladder launch --nproc 2 -- train-teacher ...`');
  checkLaunchable(o.command[0]!, o.nproc * o.nnodes);
  const master = o.master ?? { host: '127.0.0.1', port: await freePort() };
  const args = [...(o.backend === undefined ? [] : ['--backend', o.backend]), ...o.command];
  process.stderr.write(
    `launch: ${o.nproc} of ${o.nproc * o.nnodes} processes (master ${master.host}:${master.port}): ` +
      `ladder ${showCommand(args)}\n`,
  );
  const children: ChildProcess[] = [];
  const exits = Array.from({ length: o.nproc }, (_, local) => {
    const env = {
      ...process.env,
      // c10d lives in libtorch: the children run on the torch backend unless told otherwise.
      LADDER_BACKEND: process.env.LADDER_BACKEND ?? 'torch',
      ...rankEnv(o, master, local),
    };
    const child = spawn(selfLauncher()[0]!, [...selfLauncher().slice(1), ...args], { env, stdio: 'inherit' });
    children.push(child);
    return new Promise<{ local: number; code: number }>((resolve) => {
      child.once('error', (err) => {
        process.stderr.write(`launch: process ${local} did not start: ${err.message}\n`);
        resolve({ local, code: 1 });
      });
      child.once('exit', (code, signal) =>
        resolve({ local, code: code ?? (signal === null ? 1 : 128 + 15) }),
      );
    });
  });
  const forward = (signal: NodeJS.Signals) => (): void => {
    for (const child of children) child.kill(signal);
  };
  const onTerm = forward('SIGTERM');
  process.on('SIGTERM', onTerm);
  let firstFailure: number | undefined;
  let killer: NodeJS.Timeout | undefined;
  try {
    await Promise.all(
      exits.map(async (exit) => {
        const { local, code } = await exit;
        if (code === 0 || firstFailure !== undefined) return;
        firstFailure = code;
        process.stderr.write(
          `launch: process ${local} (rank ${o.nodeRank * o.nproc + local}) exited with ${code}; stopping the ` +
            `others (rerun with --resume to continue from the last checkpoint)\n`,
        );
        killer = setTimeout(forward('SIGKILL'), FAILURE_GRACE_S * 1000);
      }),
    );
  } finally {
    clearTimeout(killer);
    process.off('SIGTERM', onTerm);
  }
  return firstFailure ?? 0;
}
