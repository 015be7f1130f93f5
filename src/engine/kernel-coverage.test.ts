// Every op of a U-Net training step runs forward and backward (kernel + gradient) on wasm and on cpu.
import * as assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as tf from '../core/tf.js';
import { initBackend } from './backend.js';
import { findCoverageGaps, type OpCase } from './kernel-coverage.js';

describe('kernel coverage for training', () => {
  after(async () => {
    await initBackend('wasm');
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    it(`${backend}: every training op has its kernels and gradients, and an Adam step runs`, async () => {
      await initBackend(backend);
      const before = tf.memory().numTensors;
      assert.deepEqual(findCoverageGaps(), []);
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    });
  }

  it('reports an op whose forward kernel or gradient is missing', async () => {
    await initBackend('wasm');
    const missing: OpCase[] = [
      // wasm has no Einsum kernel; no gradient is registered for StridedSlice.
      { name: 'einsum', inputShape: [2, 3], run: (x) => tf.einsum('ij,jk->ik', x, tf.ones([3, 2])) },
      { name: 'stridedSlice', inputShape: [4, 4], run: (x) => tf.stridedSlice(x, [0, 0], [4, 4], [2, 2]) },
    ];
    const gaps = findCoverageGaps(missing);
    assert.deepEqual(
      gaps.map((g) => [g.op, g.stage]),
      [
        ['einsum', 'forward'],
        ['stridedSlice', 'gradient'],
      ],
    );
    assert.match(gaps[0]?.message ?? '', /Einsum/);
    assert.match(gaps[1]?.message ?? '', /StridedSlice/);
  });
});
