import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import { classEmbedding, groupNorm, selfAttention, sinusoidalEmbedding, upsample } from './layers.js';
import { initParams, ParamScope } from './params.js';

before(testBackend);

describe('nn building blocks', () => {
  it('GroupNorm gives each (sample, group) zero mean and unit variance', () => {
    tf.tidy(() => {
      const x = randn(new Rng(0), [2, 3, 5, 6]).mul(3).add(7) as tf.Tensor4D;
      const y = groupNorm(ParamScope.init({}, new Rng(0)), x, 2).reshape([2, 15, 2, 3]);
      const { mean, variance } = tf.moments(y, [1, 3]);
      for (const m of mean.dataSync()) assert.ok(Math.abs(m) < 1e-4);
      for (const v of variance.dataSync()) assert.ok(Math.abs(v - 1) < 1e-3);
    });
  });

  it('sinusoidal embedding is [cos(t f), sin(t f)] with geometric frequencies', () => {
    tf.tidy(() => {
      const e = sinusoidalEmbedding(tf.tensor1d([0, 3]), 4, 10000).arraySync() as number[][];
      // freqs = [1, 10000^(-1/2) = 0.01]
      assert.deepEqual(e[0], [1, 1, 0, 0]);
      const expected = [Math.cos(3), Math.cos(0.03), Math.sin(3), Math.sin(0.03)];
      for (const [i, v] of e[1]!.entries()) assert.ok(Math.abs(v - expected[i]!) < 1e-5);
    });
  });

  it('class embedding has a separate learned row for the null class', () => {
    const params = initParams(new Rng(0), (s) => classEmbedding(s, tf.tensor1d([0], 'int32'), 10, 4));
    assert.deepEqual(params.table!.shape, [11, 4]);
    tf.tidy(() => {
      const e = classEmbedding(ParamScope.apply(params), tf.tensor1d([10, 3], 'int32'), 10, 4).arraySync();
      assert.deepEqual(e[0], Array.from(params.table!.arraySync() as number[][])[10]);
    });
    tf.dispose(Object.values(params));
  });

  it('attention starts as the identity (zero-initialised output) and keeps the shape', async () => {
    await expectNoLeak(() => {
      const x = randn(new Rng(1), [2, 3, 4, 8]) as tf.Tensor4D;
      const params = initParams(new Rng(0), (s) => selfAttention(s, x, 2, 4));
      const y = tf.tidy(() => selfAttention(ParamScope.apply(params), x, 2, 4));
      assert.deepEqual(y.shape, [2, 3, 4, 8]);
      assert.deepEqual(Array.from(y.dataSync()), Array.from(x.dataSync()));
      tf.dispose([x, y, ...Object.values(params)]);
    });
  });

  it('upsampling doubles by repetition and crops odd targets', () => {
    tf.tidy(() => {
      const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
      const params = initParams(new Rng(0), (s) => upsample(s, x, [3, 4]));
      // Replace the conv with the identity to see the resampling alone.
      params['conv.w'] = tf.tensor4d([0, 0, 0, 0, 1, 0, 0, 0, 0], [3, 3, 1, 1]);
      const y = upsample(ParamScope.apply(params), x, [3, 4]);
      assert.deepEqual(y.shape, [1, 3, 4, 1]);
      assert.deepEqual(Array.from(y.dataSync()), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4]);
    });
  });
});

describe('Rng', () => {
  it('replays exactly from a saved state and draws standard normals', () => {
    const a = new Rng(42);
    a.uniform();
    const b = Rng.fromState(a.state());
    assert.deepEqual(
      Array.from({ length: 5 }, () => a.nextUint32()),
      Array.from({ length: 5 }, () => b.nextUint32()),
    );
    const xs = new Rng(7).fillNormal(new Float32Array(20000));
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    const variance = xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length;
    assert.ok(Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.04, `mean ${mean} var ${variance}`);
    const p = new Rng(1).permutation(50);
    assert.deepEqual(
      [...p].sort((x, y) => x - y),
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.notDeepEqual(Array.from(new Rng(1).permutation(50)), Array.from(new Rng(2).permutation(50)));
  });
});
