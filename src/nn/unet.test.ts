import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { loadDataset } from '../data/dataset.js';
import { BatchLoader, datasetSource } from '../data/loader.js';
import { type Denoiser, guidedDenoiser } from '../diffusion/denoiser.js';
import { expectNoLeak, maxAbsDiff, testBackend } from '../test-utils/backend.js';
import { ADAM_DEFAULTS, AdamW } from '../train/optim.js';
import type { Params } from './params.js';
import { tokenizeAll } from './text-encoder.js';
import {
  encoderParams,
  featureChannels,
  initUNet,
  nullCondition,
  type UNetConfig,
  unetEncoderForward,
  unetForward,
} from './unet.js';

const tiny: UNetConfig = {
  inChannels: 2,
  outChannels: 2,
  channels: [8, 16],
  blocksPerLevel: 1,
  attentionLevels: [1],
  midAttention: true,
  numClasses: 3,
  embedDim: 16,
  groups: 4,
  heads: 2,
};

before(testBackend);

describe('U-Net', () => {
  it('maps any latent size, odd and non-square, back to itself and taps encoder features', () => {
    const params = initUNet(tiny, new Rng(0));
    for (const [h, w] of [
      [7, 7],
      [8, 8],
      [7, 11],
      [9, 9],
    ] as const) {
      tf.tidy(() => {
        const x = randn(new Rng(1), [2, h, w, 2]) as tf.Tensor4D;
        const out = unetForward(params, tiny, x, tf.tensor1d([10, 500]), tf.tensor1d([0, 3], 'int32'));
        assert.deepEqual(out.out.shape, [2, h, w, 2]);
        assert.deepEqual(
          out.features.map((f) => f.name),
          ['down.0', 'down.1', 'mid'],
        );
        assert.deepEqual(
          out.features.map((f) => f.x.shape[3]),
          featureChannels(tiny),
        );
        assert.deepEqual(out.features[1]!.x.shape.slice(1, 3), [Math.ceil(h / 2), Math.ceil(w / 2)]);
      });
    }
  });

  it('runs its encoder alone on the encoder parameters, with the same features as the full net', () => {
    const params = initUNet(tiny, new Rng(0));
    const enc = encoderParams(params);
    assert.ok(Object.keys(enc).length < Object.keys(params).length);
    assert.ok(Object.keys(enc).every((k) => !k.startsWith('up.') && !k.startsWith('out.')));
    tf.tidy(() => {
      const x = randn(new Rng(2), [2, 7, 7, 2]) as tf.Tensor4D;
      const t = tf.tensor1d([100, 900]);
      const labels = tf.tensor1d([1, 2], 'int32');
      const full = unetForward(params, tiny, x, t, labels).features;
      const alone = unetEncoderForward(enc, tiny, x, t, labels);
      for (const [i, f] of full.entries()) assert.ok(maxAbsDiff(f.x, alone[i]!.x) < 1e-5);
    });
  });

  it('fails with the parameter name when weights do not match the config', () => {
    const params = initUNet(tiny, new Rng(0));
    const wider = { ...tiny, channels: [8, 24] };
    assert.throws(
      () =>
        tf.tidy(() => {
          unetForward(params, wider, tf.zeros([1, 7, 7, 2]), tf.zeros([1]), tf.tensor1d([0], 'int32'));
        }),
      /parameter down\.1\.res\.0\.conv1\.w has shape .* but the network config needs/,
    );
    assert.throws(
      () => initUNet({ ...tiny, groups: 3 }, new Rng(0)),
      /groups=3 does not divide level width 8/,
    );
  });

  it('learns: the denoising loss falls over a few Adam steps on a tiny MNIST slice', async () => {
    const data = await loadDataset('mnist', 'train', { limit: 64 });
    const cfg: UNetConfig = { ...tiny, inChannels: 1, outChannels: 1, numClasses: 10, attentionLevels: [] };
    const optimizer = new AdamW({ ...ADAM_DEFAULTS, lr: 3e-3 });
    const loader = new BatchLoader(datasetSource(data), { batchSize: 16, seed: 0 });
    const rng = new Rng(4);
    const losses: number[] = [];
    await expectNoLeak(() => {
      let params: Params = initUNet(cfg, new Rng(3));
      for (let step = 0; step < 40; step++) {
        const { x, labels } = loader.batchAt(step % 4);
        const eps = randn(rng, x.shape);
        const t = tf.tensor1d(Array.from({ length: 16 }, () => rng.uniform()));
        const names = Object.keys(params);
        const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
          const p = Object.fromEntries(names.map((n, i) => [n, xs[i]!]));
          const r = t.reshape([-1, 1, 1, 1]);
          const xt = x.mul(tf.sub(1, r)).add(eps.mul(r)) as tf.Tensor4D;
          return unetForward(p, cfg, xt, t.mul(1000), labels)
            .out.sub(eps.sub(x))
            .square()
            .mean() as tf.Scalar;
        })(names.map((n) => params[n]!));
        losses.push(value.dataSync()[0]!);
        const update = optimizer.apply(params, Object.fromEntries(names.map((n, i) => [n, grads[i]!])));
        params = update.params;
        update.gradNorm.dispose();
        tf.dispose([value, ...grads, x, labels, eps, t]);
      }
      tf.dispose(Object.values(params));
      optimizer.dispose();
    });
    const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(last < 0.8 * first, `loss did not fall: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  });
});

/** Adds small noise to every parameter in place, so zero-initialised layers pass information. */
function perturb(params: Params, scale = 0.1): void {
  const rng = new Rng(99);
  for (const [name, p] of Object.entries(params)) {
    params[name] = tf.tidy(() => p.add(randn(rng, p.shape).mul(scale)));
    p.dispose();
  }
}

describe('prompt-conditional U-Net', () => {
  const promptNet: UNetConfig = {
    ...tiny,
    numClasses: 0,
    text: { maxTokens: 8, width: 8, layers: 1, heads: 2 },
  };
  const tokens = (prompts: string[]) =>
    tf.tensor2d(tokenizeAll(prompts, 8), [prompts.length, 8], 'int32') as tf.Tensor2D;

  it('cross-attends to the prompt at every width a digit string takes, and the output follows the prompt', () => {
    const params = initUNet(promptNet, new Rng(0));
    // Residual branches and the output layer start at zero (the net outputs zero): move every weight off its init.
    perturb(params);
    for (const width of [7, 14, 28, 42]) {
      tf.tidy(() => {
        const x = randn(new Rng(width), [2, 7, width, 2]) as tf.Tensor4D;
        const t = tf.tensor1d([300, 300]);
        const same = unetForward(params, promptNet, x, t, tokens(['4', '4'])).out;
        const other = unetForward(params, promptNet, x, t, tokens(['4', '7'])).out;
        assert.deepEqual(same.shape, [2, 7, width, 2]);
        const row = (y: tf.Tensor, i: number) => y.slice([i], [1]);
        assert.equal(maxAbsDiff(row(same, 0), row(other, 0)), 0);
        assert.ok(
          maxAbsDiff(row(same, 1), row(other, 1)) > 1e-5,
          `width ${width}: the prompt changes nothing`,
        );
      });
    }
    assert.ok(Object.keys(params).some((n) => n.startsWith('text.')));
    assert.ok(
      Object.keys(encoderParams(params)).some((n) => n.startsWith('text.')),
      'the encoder holds the text net',
    );
    tf.dispose(Object.values(params));
  });

  it('guides with the empty prompt: scale 0 is the model on the empty prompt', () => {
    const params = initUNet(promptNet, new Rng(1));
    tf.tidy(() => {
      const denoise: Denoiser = (x, t, cond) => unetForward(params, promptNet, x, t.mul(1000), cond).out;
      const x = randn(new Rng(2), [2, 7, 14, 2]) as tf.Tensor4D;
      const t = tf.tensor1d([0.5, 0.9]);
      const unguided = guidedDenoiser(denoise, 0, (b) => nullCondition(promptNet, b))(
        x,
        t,
        tokens(['12', '90']),
      );
      assert.ok(maxAbsDiff(unguided, denoise(x, t, tokens(['', '']))) < 1e-5);
    });
    tf.dispose(Object.values(params));
  });

  it('refuses class labels, and a config with both classes and a prompt', () => {
    const params = initUNet(promptNet, new Rng(0));
    tf.tidy(() => {
      const x = tf.zeros([1, 7, 7, 2]) as tf.Tensor4D;
      assert.throws(
        () => unetForward(params, promptNet, x, tf.tensor1d([1]), tf.tensor1d([3], 'int32')),
        /prompt-conditional: pass token ids/,
      );
    });
    tf.dispose(Object.values(params));
    assert.throws(() => initUNet({ ...promptNet, numClasses: 3 }, new Rng(0)), /has no classes/);
  });
});
