import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng, randn } from '../../core/rng.js';
import * as tf from '../../core/tf.js';
import { type HeadsConfig, headLogits, initHeads } from '../../nn/heads.js';
import { disposeParams, type Params } from '../../nn/params.js';
import { expectNoLeak, testBackend } from '../../test-utils/backend.js';
import { approximateR1, exactR1, perturbForR1 } from './r1.js';

before(testBackend);

const heads: HeadsConfig = {
  features: [
    { name: 'a', channels: 4 },
    { name: 'b', channels: 8 },
  ],
  channels: 8,
  groups: 4,
  embedDim: 8,
  numClasses: 3,
};

/** Head weights with the zero-initialised FiLM jittered too, so every path carries a gradient. */
function randomHeads(seed: number): Params {
  const rng = new Rng(seed);
  const fresh = initHeads(heads, rng);
  const out: Params = {};
  for (const [k, t] of Object.entries(fresh)) out[k] = tf.tidy(() => t.add(randn(rng, t.shape).mul(0.2)));
  disposeParams(fresh);
  return out;
}

describe('R1 penalties', () => {
  const rng = new Rng(3);
  const inputs = [randn(rng, [2, 3, 3, 4]), randn(rng, [2, 2, 2, 8])] as tf.Tensor4D[];
  const netTime = tf.tensor1d([100, 800]);
  const labels = tf.tensor1d([0, 3], 'int32');
  const params = randomHeads(1);
  const discriminate =
    (p: Params) =>
    (xs: readonly tf.Tensor4D[]): readonly tf.Tensor1D[] =>
      headLogits(p, heads, xs, netTime, labels);

  it('exact R1 equals the squared input-gradient norm measured by finite differences', () => {
    const r1 = exactR1(discriminate(params), inputs);
    const h = 1e-2;
    const total = (xs: tf.Tensor4D[]): number =>
      tf.tidy(
        () =>
          tf
            .addN([...discriminate(params)(xs)])
            .sum()
            .dataSync()[0]!,
      );
    let squaredNorm = 0;
    inputs.forEach((x, which) => {
      const base = x.dataSync();
      for (let i = 0; i < base.length; i++) {
        const shifted = (delta: number): tf.Tensor4D => {
          const v = Float32Array.from(base);
          v[i]! += delta;
          return tf.tensor4d(v, x.shape);
        };
        const plus = shifted(h);
        const minus = shifted(-h);
        const at = (y: tf.Tensor4D): tf.Tensor4D[] => inputs.map((z, j) => (j === which ? y : z));
        const g = (total(at(plus)) - total(at(minus))) / (2 * h);
        tf.dispose([plus, minus]);
        squaredNorm += g * g;
      }
    });
    const expected = squaredNorm / 2; // averaged over the batch of 2
    const got = r1.dataSync()[0]!;
    r1.dispose();
    assert.ok(expected > 1e-4, `degenerate check: gradient norm ${expected}`);
    assert.ok(
      Math.abs(got - expected) / expected < 0.02,
      `exact R1 ${got} vs finite differences ${expected}`,
    );
  });

  it('exact R1 is differentiable in the head weights (a second-order gradient), matching finite differences', () => {
    const key = 'a.conv1.w';
    const grad = tf.grad((w: tf.Tensor) => exactR1(discriminate({ ...params, [key]: w }), inputs))(
      params[key]!,
    );
    const g = grad.dataSync()[0]!;
    grad.dispose();
    const h = 1e-2;
    const at = (delta: number): number => {
      const w = params[key]!;
      const v = Float32Array.from(w.dataSync());
      v[0]! += delta;
      const moved = tf.tensor(v, w.shape);
      const r = exactR1(discriminate({ ...params, [key]: moved }), inputs);
      const out = r.dataSync()[0]!;
      tf.dispose([moved, r]);
      return out;
    };
    const fd = (at(h) - at(-h)) / (2 * h);
    assert.ok(Math.abs(g) > 1e-6, `the R1 gradient is zero (${g})`);
    assert.ok(
      Math.abs(g - fd) <= 0.05 * Math.abs(fd) + 1e-5,
      `d R1 / d w: autodiff ${g} vs finite differences ${fd}`,
    );
  });

  it('approximate R1 is the mean squared change of the summed-per-head logits, and grows with the perturbation', async () => {
    await expectNoLeak(() =>
      tf.tidy(() => {
        const r = [tf.tensor1d([1, 2]), tf.tensor1d([0, 0])];
        const p = [tf.tensor1d([1.5, 2]), tf.tensor1d([0, -1])];
        // sample 0: .5^2 + 0; sample 1: 0 + 1 -> mean .625
        assert.ok(Math.abs(approximateR1(r, p).dataSync()[0]! - 0.625) < 1e-6);
        assert.throws(() => approximateR1(r, [p[0]!]), /same heads/);
        const noise = [
          randn(new Rng(9), inputs[0]!.shape),
          randn(new Rng(10), inputs[1]!.shape),
        ] as tf.Tensor4D[];
        const real = discriminate(params)(inputs);
        const penalty = (sigma: number): number =>
          approximateR1(
            real,
            discriminate(params)(inputs.map((x, k) => perturbForR1(x, noise[k]!, sigma))),
          ).dataSync()[0]!;
        assert.equal(penalty(0), 0);
        const small = penalty(1e-2);
        const large = penalty(1e-1);
        assert.ok(small > 0 && large > 10 * small, `penalties ${small} (sigma .01) and ${large} (sigma .1)`);
      }),
    );
  });
});
