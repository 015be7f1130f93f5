import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import { DigitStrings } from './digit-strings.js';
import type { ImageDataset } from './image-dataset.js';
import { loadMnist } from './mnist.js';
import { DIGIT_STRING_TRAIN_LENGTHS, digitStringSize, parseDigitString } from './prompts.js';

let mnist: ImageDataset;
before(async () => {
  mnist = await loadMnist('train', 500);
});

// Whether the cell-th 28x28 cell of image n equals some training image of `digit`.
function cellIsDigit(
  batch: ReturnType<DigitStrings['batchAt']>,
  n: number,
  cell: number,
  digit: number,
): boolean {
  const { height, width } = batch;
  for (let k = 0; k < mnist.count; k++) {
    if (mnist.labels[k] !== digit) continue;
    let same = true;
    for (let row = 0; row < 28 && same; row++) {
      for (let col = 0; col < 28 && same; col++) {
        same =
          batch.images[n * height * width + row * width + cell * 28 + col] ===
          mnist.images[k * 784 + row * 28 + col];
      }
    }
    if (same) return true;
  }
  return false;
}

describe('digit strings', () => {
  it('draws each prompt digit by digit from the split, in 28-px cells', () => {
    const data = new DigitStrings(mnist, { seed: 3 });
    for (let step = 0; step < 4; step++) {
      const batch = data.batchAt(step, 5);
      const length = data.lengthAt(step);
      assert.deepEqual([batch.height, batch.width, batch.channels], [28, 28 * length, 1]);
      assert.equal(batch.images.length, 5 * 28 * 28 * length);
      for (const [n, prompt] of batch.prompts.entries()) {
        assert.match(prompt, new RegExp(`^[0-9]{${length}}$`));
        parseDigitString(prompt).forEach((digit, cell) => {
          assert.ok(cellIsDigit(batch, n, cell, digit), `step ${step}, "${prompt}", cell ${cell}`);
        });
      }
    }
  });

  it('keeps one shape per batch and covers every bucket equally, round by round', () => {
    const data = new DigitStrings(mnist, { seed: 0 });
    assert.deepEqual(data.buckets, DIGIT_STRING_TRAIN_LENGTHS.map(digitStringSize));
    const rounds = 25;
    const counts = new Map<number, number>();
    const orders = new Set<string>();
    for (let round = 0; round < rounds; round++) {
      const lengths = [0, 1, 2, 3].map((i) => data.lengthAt(round * 4 + i));
      assert.deepEqual([...lengths].sort(), [1, 2, 3, 4], `round ${round} misses a bucket`);
      orders.add(lengths.join(''));
      for (const length of lengths) counts.set(length, (counts.get(length) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], [rounds, rounds, rounds, rounds]);
    assert.ok(orders.size > 5, 'the bucket order is shuffled per round');
  });

  it('is stateless: a batch depends only on the seed and the step', () => {
    const a = new DigitStrings(mnist, { seed: 7 });
    const b = new DigitStrings(mnist, { seed: 7 });
    const later = b.batchAt(9, 4);
    b.batchAt(2, 4);
    assert.deepEqual(a.batchAt(9, 4), later);
    assert.notDeepEqual(new DigitStrings(mnist, { seed: 8 }).batchAt(9, 4).prompts, later.prompts);
  });

  it('renders given prompts and refuses what is not one digit string per bucket', () => {
    const data = new DigitStrings(mnist, { seed: 0, lengths: [5, 6] });
    const batch = data.render(['40712', '99999'], new Rng(1));
    assert.deepEqual([batch.height, batch.width], [28, 140]);
    assert.throws(() => data.render(['12', '345'], new Rng(1)), /one length/);
    assert.throws(() => data.render(['4a'], new Rng(1)), /"4a" is not a digit string/);
    assert.throws(() => new DigitStrings(mnist, { seed: 0, lengths: [0] }), /lengths must be integers >= 1/);
    assert.throws(
      () => new DigitStrings({ ...mnist, labels: mnist.labels.map(() => 1) }, { seed: 0 }),
      /no 0/,
    );
  });
});
