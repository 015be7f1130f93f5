// Atomic file and folder writes: a result is either complete on disk or absent, never half-written.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { access, constants, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const tempName = (path: string): string =>
  join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);

/** Writes `data` to `path` through a temp file in the same folder, fsync and rename. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await ensureWritableDir(dirname(path));
  const tmp = tempName(path);
  try {
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Fills a fresh temp folder with `fill`, then renames it to `dir`. An existing `dir` is replaced only
 * when `replace` is set (it is moved aside first and removed after the new one is in place).
 */
export async function writeDirAtomic(
  dir: string,
  fill: (tmpDir: string) => Promise<void>,
  { replace = false }: { replace?: boolean } = {},
): Promise<void> {
  await ensureWritableDir(dirname(dir));
  if (existsSync(dir) && !replace) {
    throw new Error(`${dir} already exists; refusing to overwrite it (choose another --out or remove it)`);
  }
  const tmp = tempName(dir);
  await mkdir(tmp);
  try {
    await fill(tmp);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  if (existsSync(dir)) {
    const old = tempName(dir);
    await rename(dir, old);
    await rename(tmp, dir);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(tmp, dir);
  }
}

/** Creates `dir` if needed and checks that it is writable, with a message a user can act on. */
export async function ensureWritableDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`cannot write to folder ${dir} (${code}): choose a writable output path`);
  }
}
