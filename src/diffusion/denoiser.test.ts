import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { testBackend } from '../test-utils/backend.js';
import { type Denoiser, guidedDenoiser, impliedNoise, netDenoiser, type RawNet } from './denoiser.js';
import { addNoise, makeFormulation } from './formulation.js';

const NULL_LABEL = 10;
const nullLabels = (b: number) => tf.fill([b], NULL_LABEL, 'int32') as tf.Tensor1D;

/** A toy conditional denoiser whose output depends on each sample's label and time: x (label + 1) + t^2. */
const toy: Denoiser = (x, t, labels) =>
  tf.tidy(() => x.mul(labels.toFloat().add(1).reshape([-1, 1, 1, 1])).add(t.square().reshape([-1, 1, 1, 1])));

const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => a.sub(b).abs().max().dataSync()[0]!);

describe('denoiser', () => {
  before(testBackend);

  const setup = () => ({
    x: randn(new Rng(1), [3, 2, 2, 1]) as tf.Tensor4D,
    t: tf.tensor1d([0.2, 0.5, 0.9]),
    labels: tf.tensor1d([0, 4, 7], 'int32'),
    nulls: tf.fill([3], NULL_LABEL, 'int32') as tf.Tensor1D,
  });

  it('CFG at scale 1 is the conditional denoiser', () => {
    const { x, t, labels, nulls } = setup();
    const guided = guidedDenoiser(toy, 1, nullLabels)(x, t, labels);
    const cond = toy(x, t, labels);
    assert.equal(maxAbsDiff(guided, cond), 0);
    tf.dispose([x, t, labels, nulls, guided, cond]);
  });

  it('CFG at scale 0 is the null-label denoiser', () => {
    const { x, t, labels, nulls } = setup();
    const guided = guidedDenoiser(toy, 0, nullLabels)(x, t, labels);
    const uncond = toy(x, t, nulls);
    assert.ok(maxAbsDiff(guided, uncond) < 1e-6);
    tf.dispose([x, t, labels, nulls, guided, uncond]);
  });

  it('CFG at scale w is D(null) + w (D(c) - D(null)) from two separate calls, without leaks', () => {
    const { x, t, labels, nulls } = setup();
    const w = 3.5;
    const before = tf.memory().numTensors;
    const guided = guidedDenoiser(toy, w, nullLabels)(x, t, labels);
    assert.equal(tf.memory().numTensors, before + 1);
    const expected = tf.tidy(() => {
      const cond = toy(x, t, labels);
      const uncond = toy(x, t, nulls);
      return uncond.add(cond.sub(uncond).mul(w));
    });
    assert.ok(maxAbsDiff(guided, expected) < 1e-5);
    const cond = toy(x, t, labels);
    assert.ok(maxAbsDiff(guided, cond) > 0.1, 'guidance must change the output');
    tf.dispose([x, t, labels, nulls, guided, expected, cond]);
  });

  for (const [name, config, scale] of [
    ['flow', { kind: 'flow', logitMean: 0, logitStd: 1 }, 1000],
    ['vp', { kind: 'vp', prediction: 'v', zeroTerminalSnr: true, betaStart: 0.00085, betaEnd: 0.012 }, 999],
  ] as const) {
    it(`${name}: netDenoiser feeds the net time ${scale} t and converts its output to x0`, () => {
      const f = makeFormulation(config);
      const { x, t, labels, nulls } = setup();
      let seenTime: number[] = [];
      const net: RawNet = (xt, netTime) => {
        seenTime = Array.from(netTime.dataSync());
        return xt.mul(0.5);
      };
      const got = netDenoiser(net, f)(x, t, labels);
      seenTime.forEach((v, i) => {
        assert.ok(Math.abs(v - scale * t.dataSync()[i]!) < 1e-3);
      });
      const expected = tf.tidy(() => f.toX0(x.mul(0.5), x, t));
      assert.ok(maxAbsDiff(got, expected) < 1e-6);
      tf.dispose([x, t, labels, nulls, got, expected]);
    });
  }

  it('impliedNoise recovers the noise that addNoise used', () => {
    const f = makeFormulation({
      kind: 'vp',
      prediction: 'eps',
      zeroTerminalSnr: false,
      betaStart: 0.00085,
      betaEnd: 0.012,
    });
    const rng = new Rng(2);
    const x0 = randn(rng, [3, 2, 2, 1]) as tf.Tensor4D;
    const eps = randn(rng, [3, 2, 2, 1]) as tf.Tensor4D;
    const t = tf.tensor1d([0.1, 0.5, 1]);
    const got = tf.tidy(() => impliedNoise(f, addNoise(f, x0, eps, t), x0, t));
    assert.ok(maxAbsDiff(got, eps) < 1e-4);
    tf.dispose([x0, eps, t, got]);
  });
});
