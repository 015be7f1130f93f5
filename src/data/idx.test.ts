import * as assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { readIdx } from './idx.js';

/** An IDX file of unsigned bytes, laid out by hand: 0 0 0x08 rank, big-endian u32 dims, data. */
function idxBytes(dims: number[], data: number[]): Uint8Array {
  const header = [
    0,
    0,
    0x08,
    dims.length,
    ...dims.flatMap((d) => [d >>> 24, (d >>> 16) & 255, (d >>> 8) & 255, d & 255]),
  ];
  return Uint8Array.from([...header, ...data]);
}

describe('readIdx', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ladder-idx-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const pixels = Array.from({ length: 3 * 2 * 2 }, (_, i) => i * 10);

  it('reads raw and gzipped files, whole or limited', async () => {
    const raw = join(dir, 'images-idx3-ubyte');
    await writeFile(raw, idxBytes([3, 2, 2], pixels));
    await writeFile(`${raw}.gz`, gzipSync(idxBytes([3, 2, 2], pixels)));
    for (const path of [raw, `${raw}.gz`]) {
      const all = await readIdx(path, 3);
      assert.deepEqual(all.dims, [3, 2, 2]);
      assert.deepEqual([...all.data], pixels);
      const two = await readIdx(path, 3, 2);
      assert.deepEqual(two.dims, [2, 2, 2]);
      assert.deepEqual([...two.data], pixels.slice(0, 8));
    }
  });

  it('rejects a wrong element type, rank or size', async () => {
    const path = join(dir, 'bad');
    const bytes = idxBytes([3, 2, 2], pixels);
    bytes[2] = 0x0d; // float
    await writeFile(path, bytes);
    await assert.rejects(readIdx(path, 3), /corrupt IDX file .*bad: element type 0xd is not unsigned byte/);
    await writeFile(path, idxBytes([12], pixels));
    await assert.rejects(readIdx(path, 3), /it has 1 dimensions, expected 3/);
    await writeFile(path, idxBytes([3, 2, 2], pixels.slice(1)));
    await assert.rejects(readIdx(path, 3), /27 bytes but dims \[3,2,2\] need 28/);
    await writeFile(path, Uint8Array.from([1, 2, 3]));
    await assert.rejects(readIdx(`${path}`, 1), /too short/);
  });
});
