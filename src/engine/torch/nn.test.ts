// Network torch kernels (matmul, conv, pool, resize, batch norm, einsum) against tfjs-backend-cpu.
import { describe, it } from 'node:test';
import * as tf from '../../core/tf.js';
import { expectSameAsCpu, normal, rngFor, torchSkip } from './test-helpers.js';

const TOL = { atol: 1e-4, rtol: 1e-4 };

describe('torch network kernels', { skip: torchSkip }, () => {
  const rng = rngFor(4);

  it('matMul with transposes and broadcast batch dims', () =>
    expectSameAsCpu(
      [
        normal(rng, [5, 4]),
        normal(rng, [4, 6]),
        normal(rng, [3, 5, 4]),
        normal(rng, [1, 6, 4]),
        normal(rng, [6, 5]),
      ],
      (a, b, a3, b3, c) => [
        tf.matMul(a, b),
        tf.matMul(a, c, true, true),
        tf.matMul(b, a, true, true),
        tf.matMul(a3, b3, false, true),
        tf.matMul(a3, b),
      ],
      TOL,
    ));

  it('fused matMul with bias and each activation', () =>
    expectSameAsCpu(
      [normal(rng, [5, 4]), normal(rng, [4, 6]), normal(rng, [6]), normal(rng, [6])],
      (a, b, bias, alpha) =>
        (['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu', 'prelu'] as const).map((activation) =>
          tf.fused.matMul({ a, b, bias, activation, preluActivationWeights: alpha, leakyreluAlpha: 0.1 }),
        ),
      TOL,
    ));

  const x7 = normal(rng, [2, 7, 7, 3]);
  const x8 = normal(rng, [1, 8, 8, 3]);
  const w3 = normal(rng, [3, 3, 3, 4]);
  const w1 = normal(rng, [1, 1, 3, 4]);
  const w2 = normal(rng, [2, 2, 3, 4]);
  const convCases: Array<[string, (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor]> = [
    ['3x3 stride 1 same', (x, w) => tf.conv2d(x, w, 1, 'same')],
    ['3x3 stride 1 valid', (x, w) => tf.conv2d(x, w, 1, 'valid')],
    ['3x3 stride 2 same', (x, w) => tf.conv2d(x, w, 2, 'same')],
    ['3x3 stride 2 valid', (x, w) => tf.conv2d(x, w, 2, 'valid')],
    ['3x3 strides [2,1] same', (x, w) => tf.conv2d(x, w, [2, 1], 'same')],
    ['3x3 dilation 2 same', (x, w) => tf.conv2d(x, w, 1, 'same', 'NHWC', 2)],
    [
      '3x3 explicit pads',
      (x, w) =>
        tf.conv2d(x, w, 1, [
          [0, 0],
          [2, 1],
          [0, 1],
          [0, 0],
        ]),
    ],
    ['3x3 numeric pad 1 stride 2', (x, w) => tf.conv2d(x, w, 2, 1)],
  ];
  for (const [name, f] of convCases) {
    it(`conv2d ${name} on 7x7 (batch 2) and 8x8 (batch 1)`, () =>
      expectSameAsCpu(
        [x7, x8, w3],
        (a, b, w) => [f(a as tf.Tensor4D, w as tf.Tensor4D), f(b as tf.Tensor4D, w as tf.Tensor4D)],
        TOL,
      ));
  }

  it('conv2d with 1x1 and 2x2 filters, single input channel', () =>
    expectSameAsCpu(
      [x7, w1, w2, normal(rng, [1, 6, 6, 1]), normal(rng, [3, 3, 1, 2])],
      (x, a, b, g, k) => [
        tf.conv2d(x as tf.Tensor4D, a as tf.Tensor4D, 1, 'same'),
        tf.conv2d(x as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'),
        tf.conv2d(g as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'),
      ],
      TOL,
    ));

  it('conv2dTranspose (Conv2DBackpropInput) stride 2 same', () =>
    expectSameAsCpu(
      [normal(rng, [2, 4, 4, 4]), w3],
      (y, w) => tf.conv2dTranspose(y as tf.Tensor4D, w as tf.Tensor4D, [2, 8, 8, 3], 2, 'same'),
      TOL,
    ));

  it('fused conv2d with bias and relu / prelu', () =>
    expectSameAsCpu(
      [x7, w3, normal(rng, [4]), normal(rng, [4])],
      (x, w, bias, alpha) => [
        tf.fused.conv2d({
          x: x as tf.Tensor4D,
          filter: w as tf.Tensor4D,
          strides: 1,
          pad: 'same',
          bias,
          activation: 'relu',
        }),
        tf.fused.conv2d({
          x: x as tf.Tensor4D,
          filter: w as tf.Tensor4D,
          strides: 2,
          pad: 'same',
          bias,
          activation: 'prelu',
          preluActivationWeights: alpha,
        }),
      ],
      TOL,
    ));

  it('depthwiseConv2d with channel multiplier 2, stride 1 and 2', () =>
    expectSameAsCpu(
      [x7, normal(rng, [3, 3, 3, 2])],
      (x, w) => [
        tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'),
        tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'),
      ],
      TOL,
    ));

  it('maxPool and avgPool: 2x2 stride 2 valid, 3x3 stride 2 same, 3x3 stride 1 same (odd 7x7)', () =>
    expectSameAsCpu(
      [x7],
      (x) => {
        const t = x as tf.Tensor4D;
        return [
          tf.maxPool(t, 2, 2, 'valid'),
          tf.maxPool(t, 3, 2, 'same'),
          tf.maxPool(t, 3, 1, 'same'),
          tf.avgPool(t, 2, 2, 'valid'),
          tf.avgPool(t, 3, 2, 'same'),
          tf.avgPool(t, [3, 2], 1, 'same'),
        ];
      },
      TOL,
    ));

  const resize: Array<[boolean, boolean]> = [
    [false, false],
    [true, false],
    [false, true],
  ];
  for (const [alignCorners, halfPixelCenters] of resize) {
    it(`resizeBilinear and resizeNearestNeighbor up and down (alignCorners=${alignCorners}, halfPixelCenters=${halfPixelCenters})`, () =>
      expectSameAsCpu(
        [normal(rng, [2, 5, 7, 3])],
        (x) => {
          const t = x as tf.Tensor4D;
          return [
            tf.image.resizeBilinear(t, [10, 14], alignCorners, halfPixelCenters),
            tf.image.resizeBilinear(t, [3, 4], alignCorners, halfPixelCenters),
            tf.image.resizeNearestNeighbor(t, [10, 13], alignCorners, halfPixelCenters),
            tf.image.resizeNearestNeighbor(t, [2, 3], alignCorners, halfPixelCenters),
          ];
        },
        TOL,
      ));
  }

  it('batchNorm with and without scale/offset', () =>
    expectSameAsCpu(
      [x7, normal(rng, [3]), normal(rng, [3]), normal(rng, [3]), normal(rng, [3])],
      (x, mean, v, offset, scale) => [
        tf.batchNorm(x, mean, v.abs().add(0.1), offset, scale, 1e-3),
        tf.batchNorm(x, mean, v.abs().add(0.1)),
      ],
      TOL,
    ));

  it('einsum matrix product, batched product and transpose', () =>
    expectSameAsCpu(
      [normal(rng, [3, 4]), normal(rng, [4, 5]), normal(rng, [2, 3, 4]), normal(rng, [2, 4, 5])],
      (a, b, c, d) => [tf.einsum('ij,jk->ik', a, b), tf.einsum('bij,bjk->bik', c, d), tf.einsum('ij->ji', a)],
      TOL,
    ));

  it('flipLeftRight mirrors the width axis', () =>
    expectSameAsCpu([normal(rng, [2, 3, 5, 2])], (x) => tf.image.flipLeftRight(x as tf.Tensor4D)));

  it('fused depthwiseConv2d with bias and relu6, dilation 2', () =>
    expectSameAsCpu(
      [x7, normal(rng, [3, 3, 3, 2]), normal(rng, [6])],
      (x, w, bias) =>
        tf.fused.depthwiseConv2d({
          x: x as tf.Tensor4D,
          filter: w as tf.Tensor4D,
          strides: 1,
          pad: 'same',
          dilations: 2,
          bias,
          activation: 'relu6',
        }),
      TOL,
    ));
});
