import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '../../core/tf.js';
import { expectNoLeak, testBackend } from '../../test-utils/backend.js';
import {
  discriminatorLoss,
  generatorLoss,
  hingeDiscriminatorLoss,
  hingeGeneratorLoss,
  meanLogit,
  nonSaturatingDiscriminatorLoss,
  nonSaturatingGeneratorLoss,
} from './gan-loss.js';

before(testBackend);

const value = (t: tf.Tensor): number => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};
const close = (actual: number, expected: number, tol = 1e-6): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `got ${actual}, expected ${expected}`);

describe('GAN losses on known logits', () => {
  const real = [2, 0.5, -1];
  const fake = [-2, 0, 1];

  it('hinge D: mean max(0, 1 - real) + mean max(0, 1 + fake), summed over heads', () => {
    tf.tidy(() => {
      const r = tf.tensor1d(real);
      const f = tf.tensor1d(fake);
      // real: [0, .5, 2] -> 2.5 / 3; fake: [0, 1, 2] -> 1
      close(value(hingeDiscriminatorLoss([r], [f])), 2.5 / 3 + 1);
      close(value(hingeDiscriminatorLoss([r, r], [f, f])), 2 * (2.5 / 3 + 1));
      // Confident and right: no loss at all.
      close(value(hingeDiscriminatorLoss([tf.tensor1d([1, 3])], [tf.tensor1d([-1, -5])])), 0);
    });
  });

  it('hinge G: minus the mean fake logit, summed over heads', () => {
    tf.tidy(() => {
      const f = tf.tensor1d(fake);
      close(value(hingeGeneratorLoss([f])), 1 / 3);
      close(value(hingeGeneratorLoss([f, tf.tensor1d([4, 4, 4])])), 1 / 3 - 4);
      close(value(generatorLoss('hinge', [f])), 1 / 3);
      close(value(discriminatorLoss('hinge', [tf.tensor1d(real)], [f])), 2.5 / 3 + 1);
    });
  });

  it('non-saturating: softplus(-real) + softplus(fake) for D and softplus(-fake) for G', () => {
    tf.tidy(() => {
      const sp = (x: number): number => Math.log1p(Math.exp(x));
      const r = tf.tensor1d(real);
      const f = tf.tensor1d(fake);
      const dExpected = real.reduce((a, x) => a + sp(-x), 0) / 3 + fake.reduce((a, x) => a + sp(x), 0) / 3;
      close(value(nonSaturatingDiscriminatorLoss([r], [f])), dExpected, 1e-5);
      close(value(discriminatorLoss('non-saturating', [r], [f])), dExpected, 1e-5);
      close(value(nonSaturatingGeneratorLoss([f])), fake.reduce((a, x) => a + sp(-x), 0) / 3, 1e-5);
      // At logit 0 both sides cost log 2.
      close(value(nonSaturatingGeneratorLoss([tf.zeros([4]) as tf.Tensor1D])), Math.LN2, 1e-6);
    });
  });

  it('meanLogit averages over heads and batch; no heads is an error; nothing leaks', async () => {
    await expectNoLeak(() => {
      const a = tf.tensor1d([1, 3]);
      const b = tf.tensor1d([-1, 5]);
      close(value(meanLogit([a, b])), 2);
      assert.throws(() => hingeGeneratorLoss([]), /no head logits/);
      tf.dispose([a, b]);
    });
  });
});
