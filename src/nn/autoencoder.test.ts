import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { autoencoderLoss } from '../autoencoder/train.js';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { maxAbsDiff, testBackend } from '../test-utils/backend.js';
import {
  type AutoencoderConfig,
  decodeLatents,
  decodeRaw,
  encodeLatents,
  encodePosterior,
  initAutoencoder,
  latentShape,
} from './autoencoder.js';

const mnist: AutoencoderConfig = {
  imageShape: [28, 28, 1],
  latentChannels: 4,
  channels: [8, 8, 8],
  groups: 4,
  klWeight: 1e-4,
  latentScale: 2.5,
  latentShift: 0.3,
};

before(testBackend);

describe('autoencoder', () => {
  it('maps MNIST 28x28x1 to 7x7x4 latents and emoji 32x32x3 to 8x8x4, and back to the image size', () => {
    const emoji: AutoencoderConfig = { ...mnist, imageShape: [32, 32, 3] };
    assert.deepEqual(latentShape(mnist), [7, 7, 4]);
    assert.deepEqual(latentShape(emoji), [8, 8, 4]);
    for (const cfg of [mnist, emoji]) {
      const params = initAutoencoder(cfg, new Rng(0));
      tf.tidy(() => {
        const x = randn(new Rng(1), [2, ...cfg.imageShape]) as tf.Tensor4D;
        const z = encodeLatents(params, cfg, x);
        assert.deepEqual(z.shape, [2, ...latentShape(cfg)]);
        assert.deepEqual(decodeLatents(params, cfg, z).shape, [2, ...cfg.imageShape]);
      });
      tf.dispose(Object.values(params));
    }
  });

  it('normalises latents as (z - shift) * scale and undoes it before decoding', () => {
    const params = initAutoencoder(mnist, new Rng(0));
    tf.tidy(() => {
      const x = randn(new Rng(2), [3, 28, 28, 1]) as tf.Tensor4D;
      const raw = encodePosterior(params, mnist, x).mean;
      const normalised = encodeLatents(params, mnist, x);
      assert.ok(maxAbsDiff(normalised, raw.sub(0.3).mul(2.5)) < 1e-5);
      assert.ok(maxAbsDiff(decodeLatents(params, mnist, normalised), decodeRaw(params, mnist, raw)) < 1e-4);
    });
    tf.dispose(Object.values(params));
  });

  it('loss is reconstruction MSE plus klWeight x a non-negative KL', () => {
    const params = initAutoencoder(mnist, new Rng(0));
    tf.tidy(() => {
      const x = randn(new Rng(3), [2, 28, 28, 1]) as tf.Tensor4D;
      const eps = randn(new Rng(4), [2, 7, 7, 4]) as tf.Tensor4D;
      const { loss, aux } = autoencoderLoss(params, mnist, x, eps);
      const [l, r, k] = [loss, aux.recon!, aux.kl!].map((t) => t.dataSync()[0]!);
      assert.ok(Math.abs(l! - (r! + 1e-4 * k!)) < 1e-6);
      assert.ok(k! >= 0);
    });
    tf.dispose(Object.values(params));
  });
});
