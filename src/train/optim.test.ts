import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '../core/tf.js';
import { startProfile } from '../engine/profile.js';
import type { Params } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { Ema } from './ema.js';
import { ADAM_DEFAULTS, AdamW } from './optim.js';

before(testBackend);

const close = (a: number, b: number, tol = 1e-6): void => assert.ok(Math.abs(a - b) < tol, `${a} != ${b}`);

describe('AdamW', () => {
  it('matches hand-worked updates, with bias correction and decoupled weight decay', () => {
    // Step 1: m = 0.1 g, v = 0.001 g^2; mhat = g, vhat = g^2, so the step is lr * g / (|g| + eps) = lr * sign(g).
    // Step 2 with the same g: mhat = g, vhat = g^2 again, so another lr * sign(g).
    const opt = new AdamW({ ...ADAM_DEFAULTS, lr: 0.1, clipNorm: 0, weightDecay: 0.5 });
    let params: Params = { w: tf.tensor1d([1, -2]) };
    const grads = { w: tf.tensor1d([0.3, -4]) };
    ({ params } = opt.apply(params, grads));
    // w <- w (1 - lr wd) - lr sign(g) = [1 * 0.95 - 0.1, -2 * 0.95 + 0.1]
    const once = params.w!.dataSync();
    close(once[0]!, 0.85, 1e-5);
    close(once[1]!, -1.8, 1e-5);
    ({ params } = opt.apply(params, grads));
    const twice = params.w!.dataSync();
    close(twice[0]!, 0.85 * 0.95 - 0.1, 1e-5);
    close(twice[1]!, -1.8 * 0.95 + 0.1, 1e-5);
    assert.equal(opt.updates, 2);
    tf.dispose([params.w!, grads.w]);
    opt.dispose();
  });

  it('clips the global gradient norm and reports the norm before clipping', () => {
    const opt = new AdamW({ ...ADAM_DEFAULTS, lr: 0.1, clipNorm: 1, beta1: 0, beta2: 0, eps: 0 });
    const grads = { a: tf.tensor1d([3]), b: tf.tensor1d([4]) };
    const profile = startProfile();
    const { params, gradNorm } = opt.apply({ a: tf.tensor1d([0]), b: tf.tensor1d([0]) }, grads);
    assert.equal(profile.reads(), 0, 'the update read a value back (a host sync)');
    profile.stop(1);
    close(gradNorm.dataSync()[0]!, 5);
    // beta1 = beta2 = 0 makes the step lr * g / |g| whatever the clip: values move by exactly lr.
    close(params.a!.dataSync()[0]!, -0.1);
    // beta1 = 0: the first moment is the clipped gradient, 3 * (1 / 5).
    close(opt.stateTensors()['m.a']!.dataSync()[0]!, 0.6);
    tf.dispose([...Object.values(params), grads.a, grads.b, gradNorm]);
    opt.dispose();
  });

  it('warms the learning rate up linearly', () => {
    const opt = new AdamW({ ...ADAM_DEFAULTS, lr: 1, warmupSteps: 4 });
    const rates = [0, 1, 2, 3, 4].map((updates) => {
      opt.updates = updates;
      return opt.learningRate();
    });
    assert.deepEqual(rates, [0.25, 0.5, 0.75, 1, 1]);
    assert.equal(opt.learningRate(0.5), 0.5);
  });

  it('round-trips its moments through stateTensors/loadState', () => {
    const opt = new AdamW(ADAM_DEFAULTS);
    const { params, gradNorm } = opt.apply({ w: tf.tensor1d([1, 2]) }, { w: tf.tensor1d([0.5, 0.5]) });
    gradNorm.dispose();
    const saved = Object.fromEntries(Object.entries(opt.stateTensors()).map(([k, t]) => [k, t.clone()]));
    const other = new AdamW(ADAM_DEFAULTS);
    other.loadState(saved, opt.updates);
    assert.deepEqual(Object.keys(other.stateTensors()).sort(), ['m.w', 'v.w']);
    assert.deepEqual(
      Array.from(other.stateTensors()['m.w']!.dataSync()),
      Array.from(opt.stateTensors()['m.w']!.dataSync()),
    );
    assert.throws(() => other.loadState({ 'x.w': tf.scalar(1) }, 1), /unknown tensor x\.w/);
    tf.dispose(Object.values(params));
    opt.dispose();
    other.dispose();
  });
});

describe('EMA', () => {
  it('averages with the warmed-up decay min(decay, (1 + n) / (10 + n))', () => {
    const source = { w: tf.tensor1d([0]) };
    const ema = new Ema(source, 0.9);
    close(ema.decayAt(0), 0.1);
    close(ema.decayAt(1000), 0.9);
    const target = { w: tf.tensor1d([10]) };
    ema.update(target, 0); // 0.1 * 0 + 0.9 * 10
    close(ema.params.w!.dataSync()[0]!, 9, 1e-5);
    ema.update(target, 1000); // 0.9 * 9 + 0.1 * 10
    close(ema.params.w!.dataSync()[0]!, 9.1, 1e-5);
    tf.dispose([source.w, target.w]);
    ema.dispose();
  });
});
