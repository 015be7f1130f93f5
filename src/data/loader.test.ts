import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '../core/tf.js';
import { loadDataset } from './dataset.js';
import { type ArraySource, BatchLoader, BucketBatches, datasetSource } from './loader.js';

/** 10 samples of shape [1, 2, 1] whose values encode their index: sample i = [i, i + 0.5]. */
function tinySource(count = 10): ArraySource {
  const data = new Float32Array(count * 2);
  for (let i = 0; i < count; i++) data.set([i, i + 0.5], 2 * i);
  return { data, labels: Int32Array.from({ length: count }, (_, i) => i % 3), shape: [1, 2, 1] };
}

describe('BatchLoader', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('visits every sample exactly once per epoch, also across uneven batch boundaries', () => {
    const loader = new BatchLoader(tinySource(), { batchSize: 3, seed: 7 });
    // 30 positions = exactly 3 epochs of 10 samples, drawn as 10 batches of 3.
    const positions = Array.from({ length: 10 }, (_, step) => [...loader.indicesAt(step)]).flat();
    for (let epoch = 0; epoch < 3; epoch++) {
      const seen = positions.slice(epoch * 10, epoch * 10 + 10).sort((a, b) => a - b);
      assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], `epoch ${epoch}`);
    }
    assert.equal(loader.epochAt(3), 0);
    assert.equal(loader.epochAt(4), 1); // positions 12..14 are in epoch 1
  });

  it('orders differ between epochs and seeds, and are not the identity', () => {
    const a = new BatchLoader(tinySource(), { batchSize: 5, seed: 1 });
    const b = new BatchLoader(tinySource(), { batchSize: 5, seed: 2 });
    assert.notDeepEqual(a.permutation(0), a.permutation(1));
    assert.notDeepEqual(a.permutation(0), b.permutation(0));
    assert.notDeepEqual([...a.permutation(0)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('batchAt is a pure function of (seed, step): a resumed loader reproduces the same batch', async () => {
    const uninterrupted = new BatchLoader(tinySource(), { batchSize: 4, seed: 42 });
    const expected: number[][] = [];
    for (let step = 0; step < 8; step++) {
      const batch = uninterrupted.batchAt(step);
      expected.push([...(await batch.x.data()), ...(await batch.labels.data())]);
      tf.dispose([batch.x, batch.labels]);
    }
    const resumed = new BatchLoader(tinySource(), { batchSize: 4, seed: 42 });
    for (const step of [5, 2, 7]) {
      const batch = resumed.batchAt(step);
      assert.deepEqual([...(await batch.x.data()), ...(await batch.labels.data())], expected[step]);
      tf.dispose([batch.x, batch.labels]);
    }
  });

  it('returns tensors that match the indexed samples, with no leaks beyond them', async () => {
    const loader = new BatchLoader(tinySource(), { batchSize: 3, seed: 3 });
    const before = tf.memory().numTensors;
    const batch = loader.batchAt(2);
    assert.equal(tf.memory().numTensors, before + 2);
    assert.deepEqual(batch.x.shape, [3, 1, 2, 1]);
    assert.equal(batch.labels.dtype, 'int32');
    const indices = [...loader.indicesAt(2)];
    assert.deepEqual(
      [...(await batch.x.data())],
      indices.flatMap((i) => [i, i + 0.5]),
    );
    assert.deepEqual(
      [...(await batch.labels.data())],
      indices.map((i) => i % 3),
    );
    tf.dispose([batch.x, batch.labels]);
    assert.equal(tf.memory().numTensors, before);
  });

  it('iterates batches from a start step', async () => {
    const loader = new BatchLoader(tinySource(), { batchSize: 2, seed: 9 });
    const it = loader.batches(4);
    const first = it.next().value;
    const direct = loader.batchAt(4);
    assert.deepEqual(await first.x.data(), await direct.x.data());
    tf.dispose([first.x, first.labels, direct.x, direct.labels]);
  });

  it('rejects inconsistent sources and bad arguments', () => {
    const source = tinySource();
    assert.throws(
      () => new BatchLoader({ ...source, data: new Float32Array(5) }, { batchSize: 2, seed: 0 }),
      /5 values but 10 labels/,
    );
    assert.throws(
      () => new BatchLoader(source, { batchSize: 0, seed: 0 }),
      /batchSize must be a positive integer, got 0/,
    );
    assert.throws(
      () => new BatchLoader(source, { batchSize: 2, seed: 0 }).batchAt(-1),
      /non-negative integer, got -1/,
    );
  });

  it('batches real MNIST images', async () => {
    const mnist = await loadDataset('mnist', 'train', { limit: 64 });
    const loader = new BatchLoader(datasetSource(mnist), { batchSize: 16, seed: 0 });
    const batch = loader.batchAt(5);
    assert.deepEqual(batch.x.shape, [16, 28, 28, 1]);
    const values = await batch.x.data();
    assert.ok(values.every((v) => v >= -1 && v <= 1));
    const index = loader.indicesAt(5)[0]!;
    assert.deepEqual(values.subarray(0, 784), mnist.images.subarray(index * 784, (index + 1) * 784));
    tf.dispose([batch.x, batch.labels]);
  });
});

describe('BucketBatches', () => {
  const counts = [7, 2, 12];
  const batchSize = 3;
  // ceil(7/3) + ceil(2/3) + ceil(12/3) batches a pass.
  const perEpoch = 3 + 1 + 4;

  it('draws buckets in proportion to their sizes and every sample of every bucket each epoch', () => {
    const batches = new BucketBatches(counts, batchSize, 5);
    for (const epoch of [0, 1]) {
      const seen = counts.map(() => new Set<number>());
      const perBucket = counts.map(() => 0);
      for (let k = epoch * perEpoch; k < (epoch + 1) * perEpoch; k++) {
        const { bucket, rows } = batches.at(k);
        assert.equal(rows.length, batchSize);
        perBucket[bucket]!++;
        for (const row of rows) {
          assert.ok(row >= 0 && row < counts[bucket]!);
          seen[bucket]!.add(row);
        }
      }
      assert.deepEqual(perBucket, [3, 1, 4]);
      assert.deepEqual(
        seen.map((s) => s.size),
        counts,
      );
    }
  });

  it('depends only on (seed, step): a fresh instance and a backwards walk agree', () => {
    const a = new BucketBatches(counts, batchSize, 5);
    const forward = Array.from({ length: 2 * perEpoch }, (_, k) => a.at(k));
    const b = new BucketBatches(counts, batchSize, 5);
    for (let k = 2 * perEpoch - 1; k >= 0; k--) assert.deepEqual(b.at(k), forward[k]);
    const other = new BucketBatches(counts, batchSize, 6);
    assert.notDeepEqual(
      Array.from({ length: perEpoch }, (_, k) => other.at(k)),
      forward.slice(0, perEpoch),
    );
    // The next epoch is another order.
    assert.notDeepEqual(forward.slice(perEpoch), forward.slice(0, perEpoch));
  });

  it('refuses an empty bucket and bad arguments', () => {
    assert.throws(() => new BucketBatches([3, 0], 2, 0), /every bucket needs samples/);
    assert.throws(() => new BucketBatches([3], 0, 0), /batchSize must be a positive integer/);
    assert.throws(() => new BucketBatches([3], 2, 0).at(-1), /non-negative integer/);
  });
});
