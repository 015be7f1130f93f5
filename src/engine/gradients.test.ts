// Gradients of every training op (tfjs's plus ladder's fixes): finite differences on wasm, and wasm vs cpu.
import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { initBackend } from './backend.js';
import { analyticGradient, centralDifferences, maxMixedError, type ScalarFn } from './gradient-check.js';
import { LADDER_GRADIENT_KERNELS, registerGradientFixes } from './gradients.js';
import { type OpCase, TRAINING_OPS } from './kernel-coverage.js';

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Input values and an upstream weighting, drawn once per op so both backends see the same numbers. */
function fixture(op: OpCase): { x: Float32Array; weightSeed: number; indices: number[] } {
  const rng = new Rng(op.name.length * 7919 + 1);
  const x = rng.fillNormal(new Float32Array(size(op.inputShape)));
  // Keep inputs 0.05 away from the op's kinks, where a ±1e-2 difference would straddle a corner.
  for (const k of op.kinks ?? []) {
    x.forEach((v, i) => {
      if (Math.abs(v - k) < 0.05) x[i] = k + (v >= k ? 0.05 : -0.05);
    });
  }
  const n = x.length;
  const indices = [...new Set(Array.from({ length: Math.min(6, n) }, () => rng.int(n)))];
  return { x, weightSeed: rng.nextUint32(), indices };
}

/** loss(x) = Σ op(x) ⊙ w with fixed random w, so the gradient is not all ones. */
function weightedLoss(op: OpCase, weightSeed: number): ScalarFn {
  return (x) =>
    tf.tidy(() => {
      const y = op.run(x);
      const w = tf.tensor(new Rng(weightSeed).fillNormal(new Float32Array(y.size)), y.shape);
      return tf.sum(tf.mul(y, w));
    });
}

/** Forward output and gradient of one op on the active backend. */
function evaluate(op: OpCase): { y: Float32Array; dx: Float32Array } {
  const { x, weightSeed } = fixture(op);
  return tf.tidy(() => {
    const input = tf.tensor(x, [...op.inputShape]);
    const y = op.run(input).dataSync() as Float32Array;
    return { y, dx: analyticGradient(weightedLoss(op, weightSeed), input) };
  });
}

describe('gradients of training ops', () => {
  before(async () => {
    await initBackend('wasm');
  });

  it('registers its gradient fixes idempotently', () => {
    const before = LADDER_GRADIENT_KERNELS.map((name) => tf.getGradient(name));
    registerGradientFixes();
    LADDER_GRADIENT_KERNELS.forEach((name, i) => {
      assert.ok(tf.getGradient(name), `no gradient for ${name}`);
      assert.equal(tf.getGradient(name), before[i], `${name} re-registered`);
    });
  });

  for (const op of TRAINING_OPS) {
    it(`${op.name}: analytic gradient matches central differences on wasm`, () => {
      const { x, weightSeed, indices } = fixture(op);
      const before = tf.memory().numTensors;
      const f = weightedLoss(op, weightSeed);
      const input = tf.tensor(x, [...op.inputShape]);
      const analytic = analyticGradient(f, input);
      const numeric = centralDifferences(f, input, indices, 1e-2);
      input.dispose();
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      const picked = indices.map((i) => analytic[i] ?? Number.NaN);
      const err = maxMixedError(picked, numeric);
      assert.ok(err < 2e-2, `max error ${err}: analytic ${picked} vs numeric ${numeric}`);
    });
  }

  it('gives the same outputs and gradients on wasm and on cpu for every op', async () => {
    const onWasm = TRAINING_OPS.map(evaluate);
    await initBackend('cpu');
    try {
      TRAINING_OPS.forEach((op, k) => {
        const wasm = onWasm[k];
        const cpu = evaluate(op);
        assert.ok(wasm);
        assert.ok(maxMixedError(wasm.y, cpu.y) < 1e-4, `${op.name}: forward differs between wasm and cpu`);
        const err = maxMixedError(wasm.dx, cpu.dx);
        assert.ok(err < 1e-4, `${op.name}: wasm vs cpu gradient max error ${err}`);
      });
    } finally {
      await initBackend('wasm');
    }
  });
});
