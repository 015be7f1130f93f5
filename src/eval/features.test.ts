// Tests for the feature net: shapes, class accuracy through the net, the model folder and its errors, and the
// shift augmentation of its trainer.
import * as assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { loadFeatureNet } from '../models/feature-net.js';
import type { FeaturesModelConfig } from '../models/schema.js';
import { type FeatureNetConfig, featureNetForward, initFeatureNet } from '../nn/feature-net.js';
import { disposeParams, type Params } from '../nn/params.js';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import { ADAM_DEFAULTS } from '../train/optim.js';
import { extractFeatures } from './features.js';
import { tinyFeaturesConfig, writeTinyFeatureNet } from './fixtures/tiny-models.js';
import { classAccuracy } from './metrics.js';
import { CosineAdamW, featureNetLoss, labelledAccuracy, shiftedImages } from './train-features.js';

let root = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-features-'));
});

// A hand-set net that classifies 4x4 constant images by brightness: conv 1x1 (w 1, b 1) gives x + 1, the dense
// layer averages it to f = x + 1, and logits 2 c_k f - c_k^2 pick the nearest centre c = 0.5, 1, 1.5, i.e. the
// pixel values -0.5, 0 and 0.5.
const BRIGHTNESS: FeatureNetConfig = {
  imageShape: [4, 4, 1],
  numClasses: 3,
  channels: [1],
  kernel: 1,
  featureDim: 1,
};
function brightnessNet(): { config: FeaturesModelConfig; params: Params } {
  const params: Params = {
    'conv.0.w': tf.ones([1, 1, 1, 1]),
    'conv.0.b': tf.ones([1]),
    'fc.w': tf.fill([4, 1], 0.25),
    'fc.b': tf.zeros([1]),
    'head.w': tf.tensor2d([[1, 2, 3]]),
    'head.b': tf.tensor1d([-0.25, -1, -2.25]),
  };
  return { config: { ...tinyFeaturesConfig(), featureNet: BRIGHTNESS }, params };
}

describe('feature net', () => {
  it('gives post-ReLU features [B, featureDim] and logits [B, classes] without leaking', async () => {
    const cfg = tinyFeaturesConfig().featureNet;
    const params = initFeatureNet(cfg, new Rng(0));
    await expectNoLeak(() => {
      const x = randn(new Rng(1), [3, 28, 28, 1]) as tf.Tensor4D;
      const [features, logits] = tf.tidy(() => {
        const out = featureNetForward(params, cfg, x);
        return [out.features, out.logits];
      });
      assert.deepEqual(features.shape, [3, 16]);
      assert.deepEqual(logits.shape, [3, 10]);
      assert.ok(features.dataSync().every((v) => v >= 0));
      tf.dispose([x, features, logits]);
    });
    disposeParams(params);
  });

  it('rejects images of the wrong size, naming both sizes', () => {
    const cfg = tinyFeaturesConfig().featureNet;
    const params = initFeatureNet(cfg, new Rng(0));
    assert.throws(
      () => tf.tidy(() => featureNetForward(params, cfg, tf.zeros([1, 32, 32, 3]) as tf.Tensor4D).logits),
      /expects 28x28x1 images, got 32x32x3/,
    );
    disposeParams(params);
  });

  it('has the cross-entropy of a uniform guess when the logits are zero', () => {
    const { config, params } = brightnessNet();
    const zeroHead = { ...params, 'head.w': tf.zeros([1, 3]), 'head.b': tf.zeros([3]) };
    const { loss } = tf.tidy(() =>
      featureNetLoss(
        zeroHead,
        config.featureNet,
        tf.zeros([2, 4, 4, 1]) as tf.Tensor4D,
        tf.tensor1d([0, 2], 'int32'),
      ),
    );
    assert.ok(Math.abs(loss.dataSync()[0]! - Math.log(3)) < 1e-5);
    tf.dispose([loss, zeroHead['head.w']!, zeroHead['head.b']!]);
    disposeParams(params);
  });

  it('measures class accuracy on a labelled set through the net, across batch boundaries', async () => {
    const net = brightnessNet();
    const levels = [-0.5, 0, 0.5];
    const truth = [0, 1, 2, 2, 1, 0, 0, 1, 2, 1];
    // Three images carry a wrong label, so the expected accuracy is 7 / 10.
    const labels = Int32Array.from(truth, (k, i) => (i === 1 || i === 4 || i === 8 ? (k + 1) % 3 : k));
    const images = new Float32Array(truth.length * 16);
    for (const [i, k] of truth.entries()) images.fill(levels[k]!, i * 16, (i + 1) * 16);
    const extracted = await extractFeatures(net, images, truth.length, 3);
    assert.deepEqual([...extracted.predicted], truth);
    assert.equal(classAccuracy(extracted.predicted, labels), 0.7);
    assert.equal(await labelledAccuracy(net, { images, labels, count: truth.length }), 0.7);
    await expectNoLeak(() => extractFeatures(net, images, truth.length, 4));
    disposeParams(net.params);
  });

  it('round-trips through its model folder, with a stable hash of the weights', async () => {
    const dir = join(root, 'net');
    await writeTinyFeatureNet(dir);
    const a = await loadFeatureNet(dir);
    const b = await loadFeatureNet(dir);
    assert.equal(a.config.kind, 'features');
    assert.match(a.hash, /^[0-9a-f]{16}$/);
    assert.equal(a.hash, b.hash);
    assert.equal(a.name, `mnist-features@${a.hash}`);
    await writeTinyFeatureNet(join(root, 'other'), tinyFeaturesConfig(), 3);
    const c = await loadFeatureNet(join(root, 'other'));
    assert.notEqual(c.hash, a.hash);
    for (const net of [a, b, c]) disposeParams(net.params);
  });

  it('says how to make a missing feature net, and rejects a folder of another kind', async () => {
    await assert.rejects(
      loadFeatureNet(join(root, 'nowhere')),
      /feature net folder .*nowhere does not exist: train one with `ladder train-features/,
    );
    const dir = join(root, 'wrong-kind');
    await writeTinyFeatureNet(dir);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...tinyFeaturesConfig(), kind: 'teacher' }));
    await assert.rejects(loadFeatureNet(dir), /holds a teacher model, not a feature net/);
  });
});

describe('shiftedImages', () => {
  const shape = [5, 5, 1] as const;
  // One image with a single bright pixel in the middle.
  const dot = new Float32Array(25).fill(-1);
  dot[12] = 1;

  it('copies the chosen images unchanged when the shift is 0', () => {
    const data = Float32Array.from({ length: 50 }, (_, i) => i);
    const out = shiftedImages(data, Int32Array.of(1, 0), shape, 0, new Rng(0));
    assert.deepEqual([...out], [...data.subarray(25), ...data.subarray(0, 25)]);
  });

  it('moves the content by at most maxShift pixels, by different amounts per image', () => {
    const indices = new Int32Array(40); // the dot image, 40 times
    const out = shiftedImages(dot, indices, shape, 1, new Rng(3));
    const offsets = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const image = out.subarray(i * 25, (i + 1) * 25);
      assert.equal(image.filter((v) => v === 1).length, 1);
      const at = image.indexOf(1);
      const [dy, dx] = [Math.floor(at / 5) - 2, (at % 5) - 2];
      assert.ok(Math.abs(dy) <= 1 && Math.abs(dx) <= 1, `shift (${dy}, ${dx})`);
      offsets.add(`${dy},${dx}`);
    }
    assert.ok(offsets.size >= 5, `only ${offsets.size} distinct shifts`);
  });
});

describe('CosineAdamW', () => {
  it('decays the learning rate on a half cosine to 0 over the run', () => {
    const optimizer = new CosineAdamW({ ...ADAM_DEFAULTS, lr: 0.01 }, 100);
    const at = (updates: number): number => {
      optimizer.updates = updates;
      return optimizer.learningRate();
    };
    assert.equal(at(0), 0.01);
    assert.ok(Math.abs(at(50) - 0.005) < 1e-12);
    assert.ok(at(99) < 1e-5 && at(99) > 0);
    assert.equal(at(100), 0);
  });
});
