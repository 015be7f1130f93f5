import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import {
  type HeadsConfig,
  headLogits,
  initHeads,
  pickFeatures,
  tapUNetFeatures,
  unetFeatureNames,
} from './heads.js';
import { disposeParams, type Params } from './params.js';
import { initUNet, type UNetConfig, unetEncoderForward } from './unet.js';

before(testBackend);

const unet: UNetConfig = {
  inChannels: 4,
  outChannels: 4,
  channels: [8, 16],
  blocksPerLevel: 1,
  attentionLevels: [],
  midAttention: false,
  numClasses: 3,
  embedDim: 8,
  groups: 4,
  heads: 1,
};

describe('discriminator heads', () => {
  it('tap the U-Net encoder by name, with each feature width', () => {
    assert.deepEqual(unetFeatureNames(unet), ['down.0', 'down.1', 'mid']);
    assert.deepEqual(tapUNetFeatures(unet, 'all'), [
      { name: 'down.0', channels: 8 },
      { name: 'down.1', channels: 16 },
      { name: 'mid', channels: 16 },
    ]);
    assert.deepEqual(tapUNetFeatures(unet, ['mid']), [{ name: 'mid', channels: 16 }]);
    assert.throws(
      () => tapUNetFeatures(unet, ['down.7']),
      /no U-Net feature named "down.7".*down.0, down.1, mid/,
    );
  });

  it('give one logit per sample and head on encoder features, conditioned on t_hat and class', async () => {
    const cfg: HeadsConfig = {
      features: tapUNetFeatures(unet, 'all'),
      channels: 8,
      groups: 4,
      embedDim: 8,
      numClasses: 3,
    };
    const rng = new Rng(2);
    const net = initUNet(unet, rng);
    const fresh = initHeads(cfg, rng);
    // Jitter the zero-initialised FiLM so the condition matters, as it will after training.
    const params: Params = {};
    for (const [k, t] of Object.entries(fresh))
      params[k] = tf.tidy(() => t.add(randn(rng, t.shape).mul(0.3)));
    assert.ok(
      Object.keys(params).some((k) => k.startsWith('down0.')) &&
        Object.keys(params).some((k) => k.startsWith('mid.')),
    );
    await expectNoLeak(() =>
      tf.tidy(() => {
        const x = randn(new Rng(4), [2, 7, 7, 4]) as tf.Tensor4D;
        const logitsAt = (time: number[], labels: number[]): Float32Array[] => {
          const t = tf.tensor1d(time);
          const l = tf.tensor1d(labels, 'int32');
          const features = pickFeatures(unetEncoderForward(net, unet, x, t, l), cfg);
          return headLogits(params, cfg, features, t, l).map((z) => {
            assert.deepEqual(z.shape, [2]);
            return z.dataSync() as Float32Array;
          });
        };
        const base = logitsAt([500, 500], [0, 1]);
        assert.equal(base.length, 3);
        const otherClass = logitsAt([500, 500], [2, 3]); // 3 = the null class
        const otherTime = logitsAt([100, 900], [0, 1]);
        const differs = (a: Float32Array[], b: Float32Array[]): boolean =>
          a.some((v, k) => v.some((x, i) => Math.abs(x - b[k]![i]!) > 1e-6));
        assert.ok(differs(base, otherClass), 'the class does not change the logits');
        assert.ok(differs(base, otherTime), 't_hat does not change the logits');
        assert.throws(
          () => headLogits(params, cfg, [x], tf.tensor1d([1, 1]), tf.tensor1d([0, 0], 'int32')),
          /read 3 features but got 1/,
        );
      }),
    );
    disposeParams(net);
    disposeParams(fresh);
    disposeParams(params);
  });

  it('reject a group count that does not divide the head width', () => {
    assert.throws(
      () =>
        initHeads(
          { features: [{ name: 'mid', channels: 8 }], channels: 6, groups: 4, embedDim: 4, numClasses: 0 },
          new Rng(0),
        ),
      /groups=4 do not divide head channels=6/,
    );
  });
});
