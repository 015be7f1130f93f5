// One writer per run folder: a lock file holding the writer's PID, taken before any training output is written and
// released when the process exits. A lock left by a dead process (SIGKILL, power loss) is taken over.
import { randomBytes } from 'node:crypto';
import {
  linkSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const LOCK_FILE = '.ladder.lock';

/** Run folders this process holds (released on exit; a second lock of the same folder is a no-op). */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** What a lock file records: the writer, its machine, and the folder it locked (a copied folder copies the lock). */
interface LockRecord {
  readonly pid: number;
  readonly host: string;
  readonly dir: string;
}

function readLock(lock: string): LockRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(lock, 'utf8')) as Partial<LockRecord>;
    const { pid, host, dir } = record;
    if (typeof pid === 'number' && typeof host === 'string' && typeof dir === 'string')
      return { pid, host, dir };
  } catch {
    // removed in between, or not a lock this version wrote
  }
  return undefined;
}

/** Why `record` does not hold `dir` for a live writer on this machine: undefined while it does. */
function staleReason(record: LockRecord | undefined, dir: string): string | undefined {
  if (record === undefined) return 'unreadable';
  if (record.dir !== dir) return `copied from ${record.dir}`;
  if (record.host !== hostname()) return undefined; // another machine's process: cannot be checked from here
  return record.pid === process.pid || alive(record.pid) ? undefined : `process ${record.pid} is gone`;
}

/**
 * Locks `dir` (which must exist) for this process, or throws naming the process that holds it. Also removes the
 * temp files that killed writers left behind (they are named `.<name>.<pid>.<hex>.tmp` by core/fs.ts).
 */
export function lockRunDir(dir: string): void {
  const real = realpathSync(dir);
  if (held.has(real)) return;
  const lock = join(real, LOCK_FILE);
  const mine: LockRecord = { pid: process.pid, host: hostname(), dir: real };
  for (let attempt = 0; attempt < 5; attempt++) {
    // Written whole to a temp file, then linked into place: the lock never exists without its record, and the link
    // fails when any lock exists.
    const tmp = join(real, `${LOCK_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    writeFileSync(tmp, `${JSON.stringify(mine)}\n`);
    try {
      linkSync(tmp, lock);
      held.add(real);
      if (held.size === 1) process.once('exit', releaseAll);
      removeStaleTemps(real);
      removeStaleTemps(join(real, 'checkpoints'));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      rmSync(tmp, { force: true });
    }
    const holder = readLock(lock);
    const reason = staleReason(holder, real);
    if (reason === undefined && holder !== undefined) {
      const where = holder.host === hostname() ? '' : ` on ${holder.host}`;
      throw new Error(
        `${dir} is in use by another ladder process (PID ${holder.pid}${where}): wait for it to finish or stop it; ` +
          `if no ladder process writes there, remove ${lock}`,
      );
    }
    // Take a stale lock over by moving it away first: of two processes doing so at once, one moves it and the
    // other finds it gone (or finds the winner's fresh lock, which it then reads as live on its next attempt).
    const moved = `${lock}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      renameSync(lock, moved);
    } catch {
      continue;
    }
    const taken = readLock(moved);
    if (taken !== undefined && staleReason(taken, real) === undefined) {
      // Another process took the lock between our read and the move: give it back.
      try {
        linkSync(moved, lock);
      } catch {
        // a third process already holds it; the next attempt reads that one
      }
    }
    rmSync(moved, { force: true });
  }
  throw new Error(`could not lock ${dir}: other processes keep taking ${lock}`);
}

function releaseAll(): void {
  for (const dir of held) {
    const lock = join(dir, LOCK_FILE);
    if (readLock(lock)?.pid === process.pid) unlinkSync(lock);
  }
  held.clear();
}

/** Temp files and folders of writers that are no longer running. */
function removeStaleTemps(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) {
      rmSync(join(dir, name), { recursive: true, force: true });
    }
  }
}
