import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeNpy, encodeNpy } from './npy.js';

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;

const headerOf = (bytes: Uint8Array): string => {
  const length = bytes[8]! | (bytes[9]! << 8);
  return new TextDecoder().decode(bytes.subarray(10, 10 + length));
};

describe('npy', () => {
  it('writes a v1.0 header padded to a multiple of 64 bytes', () => {
    const bytes = encodeNpy(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    assert.deepEqual([...bytes.subarray(0, 8)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const header = headerOf(bytes);
    assert.equal((10 + header.length) % 64, 0);
    assert.match(header, /^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} *\n$/);
    assert.equal(bytes.length, 10 + header.length + 24);
  });

  it('writes one-dimensional and scalar shapes as Python tuples', () => {
    assert.match(headerOf(encodeNpy(new Uint8Array(4), [4])), /'descr': '\|u1'.*'shape': \(4,\)/);
    assert.match(headerOf(encodeNpy(Int32Array.from([9]), [])), /'descr': '<i4'.*'shape': \(\)/);
  });

  it('round-trips each dtype', () => {
    const cases = [
      { data: Uint8Array.from([0, 7, 255]), shape: [3] },
      { data: Int32Array.from([-2147483648, 5, 2147483647, 0]), shape: [2, 1, 2] },
      { data: Float32Array.from([-1, 0.5, 1e-30, 3]), shape: [4, 1] },
      { data: new Float32Array(0), shape: [0, 3] },
    ];
    for (const { data, shape } of cases) {
      const back = decodeNpy(encodeNpy(data, shape));
      assert.deepEqual(back.shape, shape);
      assert.deepEqual(back.data, data);
    }
  });

  it('rejects bad input with a clear error', () => {
    assert.throws(() => encodeNpy(new Float32Array(5), [2, 3]), /5 values but shape \[2,3\] needs 6/);
    assert.throws(() => decodeNpy(Uint8Array.from([1, 2, 3])), /corrupt \.npy file: .*magic/);
    const good = encodeNpy(Float32Array.from([1, 2]), [2]);
    assert.throws(
      () => decodeNpy(good.subarray(0, good.length - 1)),
      /data has 7 bytes but <f4 shape \(2\) needs 8/,
    );
    const f8 = encodeNpy(Float32Array.from([1, 2]), [2]);
    f8.set(new TextEncoder().encode("'<f8'"), 10 + headerOf(f8).indexOf("'<f4'"));
    assert.throws(() => decodeNpy(f8), /dtype <f8 is not supported/);
  });

  it('matches numpy in both directions', {
    skip: hasNumpy ? false : 'python3 with numpy is not installed',
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ladder-npy-'));
    try {
      const ours = join(dir, 'ours.npy');
      const theirs = join(dir, 'theirs.npy');
      await writeFile(ours, encodeNpy(Float32Array.from([0.5, -1.5, 2, 4, 8, 16]), [3, 2]));
      const script = [
        'import numpy as np, sys',
        'a = np.load(sys.argv[1])',
        'assert a.dtype == np.float32 and a.shape == (3, 2), (a.dtype, a.shape)',
        'assert a.tolist() == [[0.5, -1.5], [2, 4], [8, 16]], a.tolist()',
        'np.save(sys.argv[2], np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5)',
      ].join('\n');
      const run = spawnSync('python3', ['-c', script, ours, theirs], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      const back = decodeNpy(await readFile(theirs));
      assert.deepEqual(back.shape, [2, 3, 4]);
      assert.deepEqual(
        back.data,
        Int32Array.from({ length: 24 }, (_, i) => i - 5),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
