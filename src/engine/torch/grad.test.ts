// Gradients through torch kernels (the gradient kernels tfjs calls) against tfjs-backend-cpu.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '../../core/tf.js';
import { expectSameAsCpu, fixed, ints, normal, rngFor, runOn, torchSkip } from './test-helpers.js';

const TOL = { atol: 1e-4, rtol: 1e-3 };

/** Gradients of sum(f(xs) * probe) w.r.t. every float input, so each output element gets its own weight. */
function gradsOf(f: (...xs: tf.Tensor[]) => tf.Tensor, probe: tf.Tensor) {
  return (...xs: tf.Tensor[]) => tf.grads((...ys: tf.Tensor[]) => tf.sum(tf.mul(f(...ys), probe)))(xs);
}

describe('torch gradient kernels', { skip: torchSkip }, () => {
  const rng = rngFor(5);
  const x7 = normal(rng, [2, 7, 7, 3]);
  const x8 = normal(rng, [1, 8, 8, 3]);
  const w3 = normal(rng, [3, 3, 3, 4]);

  const convs: Array<
    [string, (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D, number[], tf.Tensor4D['shape']]
  > = [
    ['stride 1 same', (x, w) => tf.conv2d(x, w, 1, 'same'), [2, 7, 7, 4], [1, 8, 8, 4]],
    ['stride 1 valid', (x, w) => tf.conv2d(x, w, 1, 'valid'), [2, 5, 5, 4], [1, 6, 6, 4]],
    ['stride 2 same', (x, w) => tf.conv2d(x, w, 2, 'same'), [2, 4, 4, 4], [1, 4, 4, 4]],
    ['stride 2 valid', (x, w) => tf.conv2d(x, w, 2, 'valid'), [2, 3, 3, 4], [1, 3, 3, 4]],
    [
      'explicit pads',
      (x, w) =>
        tf.conv2d(x, w, 1, [
          [0, 0],
          [2, 0],
          [1, 1],
          [0, 0],
        ]),
      [2, 7, 7, 4],
      [1, 8, 8, 4],
    ],
  ];
  for (const [name, f, outA, outB] of convs) {
    it(`conv2d ${name}: Conv2DBackpropInput and Conv2DBackpropFilter (7x7 batch 2, 8x8 batch 1)`, async () => {
      await expectSameAsCpu(
        [x7, w3, normal(rng, outA)],
        (x, w, p) => gradsOf((a, b) => f(a as tf.Tensor4D, b as tf.Tensor4D), p)(x, w),
        TOL,
      );
      await expectSameAsCpu(
        [x8, w3, normal(rng, outB)],
        (x, w, p) => gradsOf((a, b) => f(a as tf.Tensor4D, b as tf.Tensor4D), p)(x, w),
        TOL,
      );
    });
  }

  it('conv2dTranspose gradients (conv2d on dy, backprop filter)', () =>
    expectSameAsCpu(
      [normal(rng, [2, 4, 4, 4]), w3, normal(rng, [2, 8, 8, 3])],
      (y, w, p) =>
        gradsOf((a, b) => tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, [2, 8, 8, 3], 2, 'same'), p)(
          y,
          w,
        ),
      TOL,
    ));

  it('depthwiseConv2d gradients', () =>
    expectSameAsCpu(
      [x7, normal(rng, [3, 3, 3, 2]), normal(rng, [2, 4, 4, 6])],
      (x, w, p) =>
        gradsOf((a, b) => tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), p)(x, w),
      TOL,
    ));

  it('fused conv2d + bias + relu gradients', () =>
    expectSameAsCpu(
      [x7, w3, normal(rng, [4]), normal(rng, [2, 7, 7, 4])],
      (x, w, bias, p) =>
        gradsOf(
          (a, b, c) =>
            tf.fused.conv2d({
              x: a as tf.Tensor4D,
              filter: b as tf.Tensor4D,
              strides: 1,
              pad: 'same',
              bias: c,
              activation: 'relu',
            }),
          p,
        )(x, w, bias),
      TOL,
    ));

  it('maxPool / avgPool gradients (MaxPoolGrad, AvgPoolGrad), valid and same', () =>
    expectSameAsCpu(
      [x7, normal(rng, [2, 3, 3, 3]), normal(rng, [2, 4, 4, 3])],
      (x, p3, p4) => [
        ...gradsOf((a) => tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid'), p3)(x),
        ...gradsOf((a) => tf.maxPool(a as tf.Tensor4D, 3, 2, 'same'), p4)(x),
        ...gradsOf((a) => tf.avgPool(a as tf.Tensor4D, 2, 2, 'valid'), p3)(x),
      ],
      TOL,
    ));

  // tfjs-backend-cpu's gradients are wrong here (avgPool 'same' divides by the full window size,
  // resize gradients ignore halfPixelCenters, nearest misindexes batches > 1), so these linear ops
  // are checked by the adjoint identity <f(x), p> = <x, df^T p> on torch instead.
  const adjointCases: Array<[string, (x: tf.Tensor4D) => tf.Tensor4D, number[], number[]]> = [
    ['avgPool 3x3 stride 2 same', (x) => tf.avgPool(x, 3, 2, 'same'), [2, 7, 7, 3], [2, 4, 4, 3]],
    [
      'resizeBilinear halfPixelCenters up',
      (x) => tf.image.resizeBilinear(x, [10, 13], false, true),
      [2, 5, 7, 3],
      [2, 10, 13, 3],
    ],
    [
      'resizeBilinear halfPixelCenters down',
      (x) => tf.image.resizeBilinear(x, [3, 2], false, true),
      [2, 5, 7, 3],
      [2, 3, 2, 3],
    ],
    [
      'resizeNearestNeighbor batch 2',
      (x) => tf.image.resizeNearestNeighbor(x, [10, 14]),
      [2, 5, 7, 3],
      [2, 10, 14, 3],
    ],
    [
      'resizeNearestNeighbor halfPixelCenters',
      (x) => tf.image.resizeNearestNeighbor(x, [9, 4], false, true),
      [2, 5, 7, 3],
      [2, 9, 4, 3],
    ],
  ];
  for (const [name, f, inShape, outShape] of adjointCases) {
    it(`${name}: gradient is the adjoint of the forward op`, async () => {
      const [forward, adjoint] = await runOn(
        'torch',
        [normal(rng, inShape), normal(rng, outShape)],
        (x, p) => {
          const paired = (a: tf.Tensor) => tf.sum(f(a as tf.Tensor4D).mul(p));
          return [paired(x), tf.sum(x.mul(tf.grad(paired)(x)))];
        },
      );
      const lhs = forward?.values[0] ?? Number.NaN;
      const rhs = adjoint?.values[0] ?? Number.NaN;
      assert.ok(Math.abs(lhs - rhs) <= 1e-4 * (1 + Math.abs(lhs)), `<f(x),p> = ${lhs} but <x,grad> = ${rhs}`);
    });
  }

  it('resizeBilinear / resizeNearestNeighbor gradients match cpu where cpu is right', () =>
    expectSameAsCpu(
      [
        normal(rng, [2, 5, 5, 3]),
        normal(rng, [2, 10, 10, 3]),
        normal(rng, [2, 3, 3, 3]),
        normal(rng, [1, 5, 7, 3]),
        normal(rng, [1, 10, 13, 3]),
      ],
      (x, up, down, x1, up1) => [
        ...gradsOf((a) => tf.image.resizeBilinear(a as tf.Tensor4D, [10, 10]), up)(x),
        ...gradsOf((a) => tf.image.resizeBilinear(a as tf.Tensor4D, [10, 10], true), up)(x),
        ...gradsOf((a) => tf.image.resizeBilinear(a as tf.Tensor4D, [3, 3]), down)(x),
        ...gradsOf((a) => tf.image.resizeNearestNeighbor(a as tf.Tensor4D, [10, 13]), up1)(x1),
        ...gradsOf((a) => tf.image.resizeNearestNeighbor(a as tf.Tensor4D, [10, 13], true), up1)(x1),
      ],
      TOL,
    ));

  it('matMul gradients with transposes (batched and 2D)', () =>
    expectSameAsCpu(
      [normal(rng, [3, 5, 4]), normal(rng, [3, 6, 4]), normal(rng, [3, 5, 6]), normal(rng, [4, 5])],
      (a, b, p, c) => [
        ...gradsOf((u, v) => tf.matMul(u, v, false, true), p)(a, b),
        ...gradsOf((u, v) => tf.matMul(u, v, true, true), tf.ones([5, 4]))(c, a.reshape([15, 4]).slice(0, 4)),
      ],
      TOL,
    ));

  it('elementwise chain gradients (GroupNorm-like: moments, rsqrt, mul, add, sigmoid, swish)', () =>
    expectSameAsCpu(
      [x7, normal(rng, [3]), normal(rng, [3]), normal(rng, [2, 7, 7, 3])],
      (x, gamma, beta, p) =>
        gradsOf((a, g, b) => {
          const r = a.reshape([2, 7, 7, 3, 1]);
          const { mean, variance } = tf.moments(r, [1, 2, 4], true);
          const n = r.sub(mean).mul(variance.add(1e-5).rsqrt()).reshape([2, 7, 7, 3]);
          const y = n.mul(g).add(b);
          return y.mul(tf.sigmoid(y));
        }, p)(x, gamma, beta),
      TOL,
    ));

  it('unary gradients: exp, log, sqrt, tanh, elu, leakyRelu, softplus, abs, square, clip, pow', () =>
    expectSameAsCpu(
      [normal(rng, [4, 5]), normal(rng, [4, 5])],
      (x, p) => [
        ...gradsOf((a) => tf.exp(a), p)(x),
        ...gradsOf((a) => tf.log(a.abs().add(0.5)), p)(x),
        ...gradsOf((a) => tf.sqrt(a.abs().add(0.5)), p)(x),
        ...gradsOf((a) => tf.tanh(a), p)(x),
        ...gradsOf((a) => tf.elu(a), p)(x),
        ...gradsOf((a) => tf.leakyRelu(a, 0.2), p)(x),
        ...gradsOf((a) => tf.softplus(a), p)(x),
        ...gradsOf((a) => tf.abs(a), p)(x),
        ...gradsOf((a) => tf.clipByValue(a, -0.5, 0.5), p)(x),
        ...gradsOf((a) => tf.pow(a.abs().add(0.5), 1.7), p)(x),
      ],
      TOL,
    ));

  it('binary gradients with broadcasting: add, sub, mul, div, maximum, minimum, squaredDifference', () =>
    expectSameAsCpu(
      [normal(rng, [2, 3, 4]), normal(rng, [4]), normal(rng, [2, 3, 4])],
      (a, b, p) => [
        ...gradsOf((u, v) => tf.add(u, v), p)(a, b),
        ...gradsOf((u, v) => tf.sub(u, v), p)(a, b),
        ...gradsOf((u, v) => tf.mul(u, v), p)(a, b),
        ...gradsOf((u, v) => tf.div(u, v.abs().add(0.5)), p)(a, b),
        // tfjs' Maximum/Minimum/SquaredDifference gradients do not reduce broadcast axes: same shapes.
        ...gradsOf((u, v) => tf.maximum(u, v), p)(a, p.neg()),
        ...gradsOf((u, v) => tf.minimum(u, v), p)(a, p.neg()),
        ...gradsOf((u, v) => tf.squaredDifference(u, v), p)(a, p.neg()),
      ],
      TOL,
    ));

  it('reduction and softmax gradients: sum, mean, max, min, prod, softmax, logSoftmax', () =>
    expectSameAsCpu(
      [normal(rng, [3, 5]), normal(rng, [3]), normal(rng, [3, 5])],
      (x, p3, p35) => [
        ...gradsOf((a) => tf.sum(a, 1), p3)(x),
        ...gradsOf((a) => tf.mean(a, -1), p3)(x),
        ...gradsOf((a) => tf.max(a, 1), p3)(x),
        ...gradsOf((a) => tf.min(a, 1), p3)(x),
        ...gradsOf((a) => tf.prod(a, 1), p3)(x),
        ...gradsOf((a) => tf.softmax(a), p35)(x),
        ...gradsOf((a) => tf.logSoftmax(a), p35)(x),
      ],
      TOL,
    ));

  it('layout gradients: concat, slice, transpose, tile, pad, gather, stack, split', () =>
    expectSameAsCpu(
      [normal(rng, [4, 3]), normal(rng, [4, 3]), ints(rng, [5], 0, 4), normal(rng, [5, 3])],
      (a, b, idx, p) => [
        ...gradsOf((u, v) => tf.concat([u, v], 1).slice([1, 1], [3, 4]), tf.ones([3, 4]))(a, b),
        ...gradsOf((u) => tf.transpose(u).mul(tf.range(0, 12).reshape([3, 4])), tf.ones([3, 4]))(a),
        ...gradsOf((u) => tf.tile(u, [2, 1]), tf.ones([8, 3]).mul(2))(a),
        ...gradsOf(
          (u) =>
            tf.pad(u, [
              [1, 0],
              [0, 2],
            ]),
          tf.ones([5, 5]),
        )(a),
        ...gradsOf((u) => tf.gather(u, idx), p)(a),
        ...gradsOf((u, v) => tf.stack([u, v], 1).mul(tf.range(0, 24).reshape([4, 2, 3])), tf.ones([4, 2, 3]))(
          a,
          b,
        ),
        ...gradsOf((u) => tf.split(u, [1, 2], 1)[1] ?? u, tf.range(0, 8).reshape([4, 2]))(a),
      ],
      TOL,
    ));

  // A batch of 1 looks up one class embedding: its gradient sums into the table with one segment id,
  // whose size alone cannot say which dims of dy it covers.
  it('gather gradient with a single index (batch-1 embedding lookup); UnsortedSegmentSum with one id', () =>
    expectSameAsCpu(
      [
        normal(rng, [11, 8]),
        fixed([3], [1], 'int32'),
        normal(rng, [1, 8]),
        normal(rng, [2, 4, 3]),
        fixed([2], [1], 'int32'),
        normal(rng, [1, 1, 3]),
      ],
      (table, one, p, x, at, y) => [
        ...gradsOf((u) => tf.gather(u, one), p)(table),
        ...gradsOf((u) => tf.gather(u, at, 1), tf.ones([2, 1, 3]))(x),
        tf.unsortedSegmentSum(y, one as tf.Tensor1D, 4),
      ],
      TOL,
    ));
});
