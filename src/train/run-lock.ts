// One writer per run folder: a lock file holding the writer's PID, taken before any training output is written and
// released when the process exits. A lock left by a dead process (SIGKILL, power loss) is taken over.
import { closeSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
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

function holderOf(lock: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lock, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined; // removed in between, or being written: treated as stale below
  }
}

/**
 * Locks `dir` (which must exist) for this process, or throws naming the process that holds it. Also removes the
 * temp files that killed writers left behind (they are named `.<name>.<pid>.<hex>.tmp` by core/fs.ts).
 */
export function lockRunDir(dir: string): void {
  if (held.has(dir)) return;
  const lock = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(lock, 'wx'); // atomic: exactly one process creates it
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = holderOf(lock);
      if (holder !== undefined && holder !== process.pid && alive(holder)) {
        throw new Error(
          `${dir} is in use by another ladder process (PID ${holder}): wait for it to finish or stop it; ` +
            `if that process is not ladder, remove ${lock}`,
        );
      }
      rmSync(lock, { force: true }); // stale: its writer is gone
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    held.add(dir);
    if (held.size === 1) process.once('exit', releaseAll);
    removeStaleTemps(dir);
    removeStaleTemps(join(dir, 'checkpoints'));
    return;
  }
  throw new Error(`could not lock ${dir}: another process keeps taking ${lock}`);
}

function releaseAll(): void {
  for (const dir of held) {
    const lock = join(dir, LOCK_FILE);
    if (holderOf(lock) === process.pid) unlinkSync(lock);
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
