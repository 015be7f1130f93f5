import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '../core/tf.js';
import { testBackend } from '../test-utils/backend.js';
import { BucketedLoader, type PromptBucket } from './prompts.js';

before(testBackend);

// Bucket k holds `count` samples of [1, k + 1, 1]; sample i's values and its 3 token ids all encode (k, i).
const bucket = (k: number, count: number): PromptBucket => ({
  shape: [1, k + 1, 1],
  data: Float32Array.from({ length: count * (k + 1) }, (_, j) => 100 * k + Math.floor(j / (k + 1))),
  tokens: Int32Array.from({ length: count * 3 }, (_, j) => 100 * k + Math.floor(j / 3)),
});

describe('BucketedLoader', () => {
  // Buckets of one size (a digit-strings set): every bucket once per round.
  const buckets = [bucket(0, 6), bucket(1, 6), bucket(2, 6)];
  const loader = new BucketedLoader(buckets, 3, { batchSize: 2, seed: 7 });
  const batch = (step: number) => {
    const { x, condition } = loader.batchAt(step);
    const out = { shape: x.shape, values: [...x.dataSync()], tokens: [...condition.dataSync()] };
    x.dispose();
    condition.dispose();
    return out;
  };

  it("gives every bucket once per round, each batch of one shape with its own samples' prompts", () => {
    for (let round = 0; round < 4; round++) {
      const widths = [0, 1, 2].map((i) => batch(3 * round + i).shape[2]).sort();
      assert.deepEqual(widths, [1, 2, 3], `round ${round}`);
    }
    for (let step = 0; step < 12; step++) {
      const { shape, values, tokens } = batch(step);
      const width = shape[2]!;
      for (let i = 0; i < 2; i++) {
        const sample = values.slice(i * width, (i + 1) * width);
        assert.ok(sample.every((v) => v === sample[0]));
        assert.deepEqual(tokens.slice(3 * i, 3 * i + 3), [sample[0], sample[0], sample[0]]);
        assert.equal(Math.floor(sample[0]! / 100), width - 1, 'a sample from its own bucket');
      }
    }
  });

  it('draws each bucket without replacement, and batch k depends only on the seed and k', () => {
    // Bucket 0 (6 samples, 2 per batch): its first 3 batches are one epoch.
    const seen: number[] = [];
    for (let step = 0; seen.length < 6; step++) {
      const { shape, values } = batch(step);
      if (shape[2] === 1) seen.push(...values);
    }
    assert.deepEqual(seen.sort(), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(batch(9), batch(9));
    const again = new BucketedLoader(buckets, 3, { batchSize: 2, seed: 7 });
    const { x, condition } = again.batchAt(9);
    assert.deepEqual([...x.dataSync()], batch(9).values);
    x.dispose();
    condition.dispose();
  });

  it('draws buckets of different sizes in proportion to them, every sample once per epoch', () => {
    // 6 + 2 samples, 2 a batch: each epoch is 3 batches of bucket 0 and 1 of bucket 1.
    const skewed = new BucketedLoader([bucket(0, 6), bucket(1, 2)], 3, { batchSize: 2, seed: 7 });
    for (let epoch = 0; epoch < 3; epoch++) {
      const values: number[][] = [[], []];
      for (let step = 4 * epoch; step < 4 * epoch + 4; step++) {
        const { x, condition } = skewed.batchAt(step);
        values[x.shape[2] - 1]!.push(...x.dataSync());
        tf.dispose([x, condition]);
      }
      assert.deepEqual(values[0]!.sort(), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(values[1]!.sort(), [100, 100, 101, 101]);
    }
  });

  it('refuses token rows that do not match the prompt length', () => {
    assert.throws(() => new BucketedLoader([bucket(0, 2)], 4, { batchSize: 1, seed: 0 }), /not rows of 4/);
  });
});
