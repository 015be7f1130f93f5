// Elementwise torch kernels against tfjs-backend-cpu on random inputs.
import { describe, it } from 'node:test';
import * as tf from '../../core/tf.js';
import { bools, expectSameAsCpu, fixed, ints, normal, rngFor, torchSkip, uniform } from './test-helpers.js';

describe('torch elementwise kernels', { skip: torchSkip }, () => {
  const rng = rngFor(1);
  const x = normal(rng, [2, 7, 7, 3]);
  const positive = uniform(rng, [3, 5], 0.1, 4);
  const unit = uniform(rng, [3, 5], -0.9, 0.9);

  const unaryOnNormal: Array<[string, (t: tf.Tensor) => tf.Tensor]> = [
    ['neg', tf.neg],
    ['abs', tf.abs],
    ['square', tf.square],
    ['relu', tf.relu],
    ['relu6', (t) => tf.relu6(t.mul(4))],
    ['sign', tf.sign],
    ['exp', tf.exp],
    ['sigmoid', tf.sigmoid],
    ['tanh', tf.tanh],
    ['elu', tf.elu],
    ['selu', tf.selu],
    ['sin', tf.sin],
    ['cos', tf.cos],
    ['tan', tf.tan],
    ['atan', tf.atan],
    ['sinh', tf.sinh],
    ['cosh', tf.cosh],
    ['asinh', tf.asinh],
    ['softplus', tf.softplus],
    ['floor', (t) => tf.floor(t.mul(3))],
    ['ceil', (t) => tf.ceil(t.mul(3))],
    ['round', (t) => tf.round(t.mul(3))],
    ['erf', tf.erf],
    ['expm1', tf.expm1],
    ['leakyRelu', (t) => tf.leakyRelu(t, 0.3)],
    ['step', (t) => tf.step(t, 0.25)],
    ['clipByValue', (t) => tf.clipByValue(t, -0.5, 0.7)],
    ['reciprocal', tf.reciprocal],
    ['zerosLike', tf.zerosLike],
    ['onesLike', tf.onesLike],
    ['clone', tf.clone],
  ];
  for (const [name, f] of unaryOnNormal) {
    it(`${name} matches cpu on a 2x7x7x3 normal input`, () => expectSameAsCpu([x], f));
  }

  const unaryOnPositive: Array<[string, (t: tf.Tensor) => tf.Tensor]> = [
    ['log', tf.log],
    ['sqrt', tf.sqrt],
    ['rsqrt', tf.rsqrt],
    ['log1p', tf.log1p],
    ['acosh', (t) => tf.acosh(t.add(1))],
  ];
  for (const [name, f] of unaryOnPositive) {
    it(`${name} matches cpu on positive inputs`, () => expectSameAsCpu([positive], f));
  }

  it('asin, acos, atanh match cpu inside (-1, 1)', () =>
    expectSameAsCpu([unit], (t) => [tf.asin(t), tf.acos(t), tf.atanh(t)]));

  it('isNaN, isInf, isFinite flag special values', () =>
    expectSameAsCpu(
      [fixed([0, Number.NaN, Number.POSITIVE_INFINITY, -1, Number.NEGATIVE_INFINITY], [5])],
      (t) => [tf.isNaN(t), tf.isInf(t), tf.isFinite(t)],
    ));

  it('round rounds halves to even', () =>
    expectSameAsCpu([fixed([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.49], [7])], (t) => tf.round(t)));

  it('int32 unary ops keep int32', () =>
    expectSameAsCpu([ints(rng, [4, 3], -5, 5)], (t) => [
      tf.neg(t),
      tf.abs(t),
      tf.square(t),
      tf.sign(t),
      tf.relu(t),
    ]));

  it('cast converts float -> int32 (truncating), int -> float, and to bool', () =>
    expectSameAsCpu([fixed([-1.7, -0.2, 0, 0.6, 2.9], [5])], (t) => [
      tf.cast(t, 'int32'),
      tf.cast(t, 'bool'),
      tf.cast(tf.cast(t, 'int32'), 'float32'),
      tf.cast(tf.cast(t, 'bool'), 'int32'),
    ]));

  const binary: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
    ['add', tf.add],
    ['sub', tf.sub],
    ['mul', tf.mul],
    ['div', tf.div],
    ['maximum', tf.maximum],
    ['minimum', tf.minimum],
    ['squaredDifference', tf.squaredDifference],
    ['atan2', tf.atan2],
    ['equal', (a, b) => tf.equal(a.round(), b.round())],
    ['notEqual', (a, b) => tf.notEqual(a.round(), b.round())],
    ['greater', tf.greater],
    ['greaterEqual', tf.greaterEqual],
    ['less', tf.less],
    ['lessEqual', tf.lessEqual],
    ['floorDiv', (a, b) => tf.floorDiv(a.mul(5), b)],
    ['mod', (a, b) => tf.mod(a.mul(5), b)],
    ['pow', (a, b) => tf.pow(a.abs(), b)],
  ];
  const a = normal(rng, [2, 7, 7, 3]);
  const bSame = normal(rng, [2, 7, 7, 3]);
  const bRow = normal(rng, [3]);
  const bCol = normal(rng, [2, 1, 7, 1]);
  const scalar = fixed([1.25], []);
  for (const [name, f] of binary) {
    it(`${name} matches cpu for equal shapes and broadcast [3], [2,1,7,1], scalar`, () =>
      expectSameAsCpu([a, bSame, bRow, bCol, scalar], (p, q, r, s, t) => [
        f(p, q),
        f(p, r),
        f(r, p),
        f(p, s),
        f(p, t),
      ]));
  }

  it('int32 arithmetic stays int32 (add, sub, mul, floorDiv, mod, maximum)', () => {
    const p = ints(rng, [3, 4], -20, 20);
    const q = ints(rng, [4], 1, 6);
    return expectSameAsCpu([p, q], (u, v) => [
      tf.add(u, v),
      tf.sub(u, v),
      tf.mul(u, v),
      tf.floorDiv(u, v),
      tf.mod(u, v),
      tf.maximum(u, v),
      tf.div(u, v),
    ]);
  });

  it('logicalAnd, logicalOr, logicalXor, logicalNot on bools with broadcasting', () =>
    expectSameAsCpu([bools(rng, [3, 4]), bools(rng, [4])], (p, q) => [
      tf.logicalAnd(p, q),
      tf.logicalOr(p, q),
      tf.logicalXor(p, q),
      tf.logicalNot(p),
    ]));

  it('where selects with a broadcast condition', () =>
    expectSameAsCpu([bools(rng, [7, 1]), normal(rng, [7, 5]), normal(rng, [5])], (c, p, q) =>
      tf.where(c, p, q),
    ));

  it('addN sums several tensors', () =>
    expectSameAsCpu([normal(rng, [3, 4]), normal(rng, [3, 4]), normal(rng, [3, 4])], (p, q, r) =>
      tf.addN([p, q, r]),
    ));

  it('prelu uses per-channel alpha', () =>
    expectSameAsCpu([normal(rng, [2, 5, 3]), uniform(rng, [3], 0, 0.5)], (p, al) => tf.prelu(p, al)));

  it('handles a batch of 1 and a zero-size tensor', () =>
    expectSameAsCpu([normal(rng, [1, 7, 7, 1]), fixed([], [0, 3])], (p, empty) => [
      tf.exp(p),
      tf.add(empty, 1),
    ]));
});
