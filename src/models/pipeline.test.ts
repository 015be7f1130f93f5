// Generation's NaN check (opt-in, so the web page does no extra reads) and its cleanup when a chunk fails.
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { initAutoencoder } from '../nn/autoencoder.js';
import { disposeParams } from '../nn/params.js';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import { TINY_AE_CONFIG, tinyTeacherConfig, tinyUNetParams } from '../test-utils/tiny-models.js';
import {
  checkFiniteValues,
  type DiffusionModel,
  type GenerateOptions,
  generateImages,
  latentChunks,
} from './pipeline.js';

const POISONED_CLASS = 9;
let model: DiffusionModel;
before(async () => {
  await testBackend();
  const rng = new Rng(1);
  const params = tinyUNetParams(rng);
  // A NaN class embedding: images of POISONED_CLASS are NaN, every other class's are finite.
  const table = params['class.table']!;
  params['class.table'] = tf.tidy(() => {
    const row = tf.oneHot([POISONED_CLASS], table.shape[0]!).reshape([-1, 1]);
    return tf.where(row.cast('bool'), tf.fill(table.shape, Number.NaN), table);
  });
  table.dispose();
  model = {
    config: tinyTeacherConfig(),
    params,
    autoencoder: { config: TINY_AE_CONFIG, params: initAutoencoder(TINY_AE_CONFIG.autoencoder, rng) },
  };
});
after(() => {
  disposeParams(model.params);
  disposeParams(model.autoencoder.params);
});

// Two chunks of two: the first finite, the second NaN.
const opts: GenerateOptions = {
  labels: Int32Array.from([0, 1, POISONED_CLASS, 2]),
  steps: 2,
  cfg: 1,
  sampler: 'euler',
  seed: 0,
  batchSize: 2,
  modelName: 'poisoned',
};

describe('generateImages', () => {
  it('checks for NaN only when asked (the web page generates every frame and must not wait on reads)', () => {
    // Unchecked, the NaN images come back (clipped), as they would to the page.
    const images = generateImages(model, opts);
    assert.deepEqual(images.shape, [4, 28, 28, 1]);
    images.dispose();
    assert.throws(
      () => generateImages(model, { ...opts, checkFinite: true }),
      /poisoned made NaN or infinite latents at 2 sampling steps \(cfg 1, euler sampler\)/,
    );
  });

  it('disposes the chunks already made when a later one fails the NaN check', async () => {
    await expectNoLeak(() =>
      assert.throws(() => generateImages(model, { ...opts, checkFinite: true }), /poisoned made NaN/),
    );
  });
});

describe('latentChunks shared between processes', () => {
  it("gives each process's chunks the latents one process makes, for the sampler that re-noises too", async () => {
    for (const sampler of ['few-step', 'euler'] as const) {
      const shared: GenerateOptions = {
        ...opts,
        labels: Int32Array.from([0, 1, 2, 3, 4, 5, 6]),
        sampler,
        steps: 3,
      };
      type Chunk = { start: number; v: ReturnType<tf.Tensor['dataSync']> };
      const values = (o: GenerateOptions): Chunk[] =>
        [...latentChunks(model, o)].map(({ start, tensor }) => {
          const v = tensor.dataSync().slice();
          tensor.dispose();
          return { start, v };
        });
      const whole = values(shared);
      const parts: Chunk[] = [0, 1, 2].flatMap((index) => values({ ...shared, share: { index, count: 3 } }));
      assert.deepEqual(parts.map((p) => p.start).sort(), [0, 2, 4, 6]);
      for (const part of parts)
        assert.deepEqual(part.v, whole.find((w) => w.start === part.start)!.v, sampler);
    }
    await expectNoLeak(() => {
      for (const { tensor } of latentChunks(model, {
        ...opts,
        labels: Int32Array.from([0, 1, 2, 3]),
        sampler: 'few-step',
        share: { index: 1, count: 2 },
      }))
        tensor.dispose();
    });
  });
});

describe('checkFiniteValues', () => {
  it('fails on NaN or an infinity in values already read back, as the backend check does', () => {
    checkFiniteValues(Float32Array.from([0, -1, 3.5]), 'latents', opts);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => checkFiniteValues(Float32Array.from([0, bad]), 'images', opts),
        /poisoned made NaN or infinite images at 2 sampling steps/,
      );
    }
  });
});
