// Reduction, softmax and cumulative torch kernels against tfjs-backend-cpu.
import { describe, it } from 'node:test';
import * as tf from '../../core/tf.js';
import { bools, expectSameAsCpu, fixed, ints, normal, rngFor, torchSkip } from './test-helpers.js';

describe('torch reduction kernels', { skip: torchSkip }, () => {
  const rng = rngFor(2);
  const x = normal(rng, [2, 7, 5, 3]);
  type Axes = number | number[] | undefined;
  const reducers: Array<[string, (t: tf.Tensor, axis: Axes, keep: boolean) => tf.Tensor]> = [
    ['sum', (t, axis, keep) => tf.sum(t, axis, keep)],
    ['mean', (t, axis, keep) => tf.mean(t, axis, keep)],
    ['max', (t, axis, keep) => tf.max(t, axis, keep)],
    ['min', (t, axis, keep) => tf.min(t, axis, keep)],
    ['prod', (t, axis, keep) => tf.prod(t.mul(0.5).add(1), axis, keep)],
  ];
  const axesCases: Axes[] = [undefined, 0, -1, [1, 2], [-3, 3], [0, 1, 2, 3], []];
  for (const [name, f] of reducers) {
    for (const keep of [false, true]) {
      it(`${name} over axes ${JSON.stringify(axesCases)} keepDims=${keep}`, () =>
        expectSameAsCpu([x], (t) => axesCases.map((axes) => f(t, axes, keep))));
    }
  }

  it('sum and prod of int32 stay int32; sum of bool counts', () =>
    expectSameAsCpu([ints(rng, [3, 4], -3, 4), bools(rng, [3, 4])], (i, b) => [
      tf.sum(i, 1),
      tf.prod(i, 0),
      tf.sum(b, 0),
      tf.max(i, 1, true),
    ]));

  it('mean of int32 gives float32', () => expectSameAsCpu([ints(rng, [3, 4], -3, 4)], (i) => tf.mean(i, 1)));

  it('all and any with keepDims and negative axes', () =>
    expectSameAsCpu([bools(rng, [3, 4, 2])], (b) => [
      tf.all(b),
      tf.any(b),
      tf.all(b, -1, true),
      tf.any(b, [0, 2]),
      tf.all(b, [1, -1], true),
    ]));

  it('argMax and argMin pick the first extreme, including negative axes', () =>
    expectSameAsCpu([x, fixed([1, 3, 3, 0, -2, -2], [2, 3])], (t, ties) => [
      tf.argMax(t, 0),
      tf.argMax(t, -1),
      tf.argMin(t, 2),
      tf.argMax(ties, 1),
      tf.argMin(ties, 1),
    ]));

  it('softmax and logSoftmax over the last axis', () =>
    expectSameAsCpu([normal(rng, [4, 7], 3)], (t) => [tf.softmax(t), tf.logSoftmax(t)]));

  it('moments (mean and variance, as GroupNorm uses them)', () =>
    expectSameAsCpu([x], (t) => {
      const { mean, variance } = tf.moments(t.reshape([2, 7, 5, 3, 1]), [1, 2, 4], true);
      return [mean, variance];
    }));

  // Negative axes are left out: tfjs-backend-cpu mis-shapes cumsum over axis -1.
  it('cumsum and cumprod, exclusive and reverse', () =>
    expectSameAsCpu([normal(rng, [3, 5])], (t) => [
      tf.cumsum(t, 1),
      tf.cumsum(t, 0, true),
      tf.cumsum(t, 1, false, true),
      tf.cumsum(t, 1, true, true),
      tf.cumprod(t, 1),
      tf.cumprod(t, 1, true, true),
    ]));

  it('topk values and indices, sorted', () =>
    expectSameAsCpu([normal(rng, [3, 7])], (t) => {
      const { values, indices } = tf.topk(t, 3, true);
      return [values, indices];
    }));
});
