// Layout, factory and indexing torch kernels against tfjs-backend-cpu.
import { describe, it } from 'node:test';
import * as tf from '../../core/tf.js';
import { bools, expectSameAsCpu, fixed, ints, normal, rngFor, torchSkip } from './test-helpers.js';

describe('torch layout and indexing kernels', { skip: torchSkip }, () => {
  const rng = rngFor(3);
  const x = normal(rng, [2, 7, 5, 3]);

  it('reshape (with -1), expandDims, squeeze', () =>
    expectSameAsCpu([x], (t) => [
      t.reshape([14, -1]),
      t.expandDims(0),
      t.expandDims(-1),
      t.expandDims(2),
      t.reshape([2, 7, 5, 3, 1]).squeeze([4]),
    ]));

  it('transpose to NCHW and back, then elementwise on the strided result', () =>
    expectSameAsCpu([x], (t) => {
      const nchw = t.transpose([0, 3, 1, 2]);
      return [nchw, nchw.add(1).transpose([0, 2, 3, 1]), t.transpose(), nchw.reshape([6, 35])];
    }));

  it('concat along every axis, including negative axes and three inputs', () =>
    expectSameAsCpu([x, normal(rng, [2, 7, 5, 3])], (p, q) => [
      tf.concat([p, q], 0),
      tf.concat([p, q], 1),
      tf.concat([p, q, p], -1),
      tf.concat([p.reshape([70, 3]), q.reshape([70, 3])], -2),
    ]));

  it('slice with sizes and -1', () =>
    expectSameAsCpu([x], (t) => [tf.slice(t, [1, 2, 0, 1], [1, 3, -1, 2]), tf.slice(t, [0, 6], [2, 1])]));

  it('stridedSlice with strides, negative strides, masks', () =>
    expectSameAsCpu([x], (t) => [
      tf.stridedSlice(t, [0, 1, 0, 0], [2, 7, 5, 3], [1, 2, 2, 1]),
      tf.stridedSlice(t, [1, 6, 4, 2], [0, 0, 0, 0], [-1, -2, -1, -1], 0, 0),
      tf.stridedSlice(t, [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], 15, 15),
      tf.stridedSlice(t, [1, 2], [2, 5], [1, 1], 0, 0, 0, 0, 1),
      tf.stridedSlice(t, [0, 0], [1, 3], [1, 1], 0, 0, 0, 1, 0),
      tf.stridedSlice(t, [0, -1], [2, -8], [1, -3]),
    ]));

  it('stack/unstack and split with sizes and -1', () =>
    expectSameAsCpu([normal(rng, [4, 3]), normal(rng, [4, 3])], (p, q) => [
      tf.stack([p, q]),
      tf.stack([p, q], -1),
      ...tf.unstack(p, 1),
      ...tf.split(p, 2, 0),
      ...tf.split(q, [1, -1], 1),
    ]));

  it('tile (size-1 axes and repeats) and broadcastTo', () =>
    expectSameAsCpu([normal(rng, [2, 1, 3])], (t) => [
      tf.tile(t, [1, 4, 1]),
      tf.tile(t, [2, 3, 2]),
      tf.broadcastTo(t, [3, 2, 5, 3]),
      tf.tile(t, [2, 2, 1]).add(1),
    ]));

  it('pad with constants, mirrorPad reflect and symmetric', () =>
    expectSameAsCpu([normal(rng, [1, 4, 5, 2])], (t) => [
      tf.pad(t, [
        [0, 0],
        [1, 2],
        [0, 3],
        [0, 0],
      ]),
      tf.pad(
        t,
        [
          [1, 0],
          [0, 0],
          [2, 2],
          [1, 1],
        ],
        0.5,
      ),
      tf.mirrorPad(
        t,
        [
          [0, 0],
          [2, 1],
          [1, 3],
          [0, 0],
        ],
        'reflect',
      ),
      tf.mirrorPad(
        t,
        [
          [0, 0],
          [2, 1],
          [1, 4],
          [0, 0],
        ],
        'symmetric',
      ),
    ]));

  it('reverse along one and several axes', () =>
    expectSameAsCpu([x], (t) => [tf.reverse(t, 1), tf.reverse(t, [0, -1]), tf.reverse(t)]));

  it('fill, zeros, ones, range (float and int, negative step), linspace, oneHot', () =>
    expectSameAsCpu([ints(rng, [5], -1, 5)], (idx) => [
      tf.fill([2, 3], 1.5),
      tf.fill([2], 7, 'int32'),
      tf.zeros([3, 2]),
      tf.ones([2], 'int32'),
      tf.range(0, 10, 0.7),
      tf.range(10, 2, -3, 'int32'),
      tf.range(5, 0),
      tf.linspace(-1, 2, 7),
      tf.oneHot(idx, 4),
      tf.oneHot(idx, 3, 2, -1, 'float32'),
    ]));

  it('gather along axes 0 and 2, with batchDims 1', () =>
    expectSameAsCpu(
      [x, ints(rng, [4], 0, 2), ints(rng, [2, 3], 0, 5), ints(rng, [2, 4], 0, 7)],
      (t, i0, i2, ib) => [tf.gather(t, i0, 0), tf.gather(t, i2, 2), tf.gather(t, ib, 1, 1)],
    ));

  it('gatherND and scatterND (duplicates add up)', () =>
    expectSameAsCpu(
      [x, fixed([0, 1, 1, 3, 1, 6], [3, 2], 'int32'), fixed([0, 2, 0], [3, 1], 'int32'), normal(rng, [3, 4])],
      (t, ind, sind, upd) => [tf.gatherND(t, ind), tf.scatterND(sind, upd, [4, 4])],
    ));

  it('unsortedSegmentSum', () =>
    expectSameAsCpu([normal(rng, [6, 3]), fixed([0, 2, 0, 1, 2, 2], [6], 'int32')], (t, ids) =>
      tf.unsortedSegmentSum(t, ids as tf.Tensor1D, 4),
    ));

  it('bool tensors survive layout ops', () =>
    expectSameAsCpu([bools(rng, [3, 4])], (b) => [
      b.transpose(),
      tf.concat([b, b], 0),
      b.reshape([12]).slice(2, 5),
    ]));
});
