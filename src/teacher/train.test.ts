import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { trainAutoencoder } from '../autoencoder/train.js';
import * as tf from '../core/tf.js';
import { loadDiffusionModel } from '../models/folder.js';
import { generateImages } from '../models/pipeline.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { FLOW_DEFAULTS, trainTeacher, VP_DEFAULTS } from './train.js';

let root = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-teacher-'));
  const quiet = { seed: 0, resume: false, checkpointEvery: 2, limit: 64, batchSize: 8, lr: 1e-3 };
  await trainAutoencoder({
    ...quiet,
    dataset: 'mnist',
    outDir: join(root, 'ae'),
    steps: 2,
    arch: { channels: [8, 8, 8], groups: 4 },
  });
});

describe('teacher training (tiny, end to end)', () => {
  for (const formulation of [FLOW_DEFAULTS, VP_DEFAULTS]) {
    it(`trains a ${formulation.kind} teacher into a model folder that samples`, async () => {
      const out = join(root, `teacher-${formulation.kind}`);
      await trainTeacher({
        aeDir: join(root, 'ae'),
        outDir: out,
        formulation,
        steps: 3,
        batchSize: 8,
        lr: 1e-3,
        seed: 0,
        resume: false,
        checkpointEvery: 2,
        labelDropout: 0.1,
        emaDecay: 0.9,
        limit: 64,
        unet: {
          channels: [8, 8],
          blocksPerLevel: 1,
          attentionLevels: [],
          midAttention: false,
          groups: 4,
          heads: 1,
        },
      });
      for (const file of ['config.json', 'weights.safetensors', 'card.json', 'log.jsonl'])
        assert.ok(existsSync(join(out, file)), file);
      const card = JSON.parse(await readFile(join(out, 'card.json'), 'utf8'));
      assert.equal(card.steps, 3);
      assert.equal(card.dataset, 'mnist');
      assert.match(card.command, /^ladder\b/);
      const model = await loadDiffusionModel(out);
      assert.equal(model.config.autoencoder, '../ae');
      const images = generateImages(model, {
        labels: Int32Array.from([0, 5, 9]),
        steps: 2,
        cfg: 3,
        sampler: 'euler',
        seed: 1,
      });
      assert.deepEqual(images.shape, [3, 28, 28, 1]);
      assert.ok(images.min().dataSync()[0]! >= -1 && images.max().dataSync()[0]! <= 1);
      tf.dispose(images);
      disposeParams(model.params);
      disposeParams(model.autoencoder.params);
    });
  }
});
