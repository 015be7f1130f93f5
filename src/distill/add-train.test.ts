import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '../core/tf.js';
import { tinyFeaturesConfig, writeTinyFeatureNet } from '../eval/fixtures/tiny-models.js';
import { loadFeatureNet } from '../models/feature-net.js';
import { loadDiffusionModel } from '../models/folder.js';
import { defaultSampler, generateImages } from '../models/pipeline.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { readRunLog } from '../test-utils/run-log.js';
import { type AddTiming, checkFeatureNet, type DistillAddOptions, distillAdd } from './add-train.js';
import { makeTinyTeacher } from './fixtures/tiny-teacher.js';

const ITERATIONS = 2;

let root = '';
let teacherDir = '';
let fashionDir = '';
let mnistDir = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-add-train-'));
  teacherDir = await makeTinyTeacher(root);
  fashionDir = join(root, 'fashion-features');
  mnistDir = join(root, 'mnist-features');
  await writeTinyFeatureNet(fashionDir, tinyFeaturesConfig('fashion-mnist'));
  await writeTinyFeatureNet(mnistDir, tinyFeaturesConfig('mnist'));
});

const options = (outDir: string, extra: Partial<DistillAddOptions> = {}): DistillAddOptions => ({
  teacherDir,
  outDir,
  featureNetDir: fashionDir,
  config: { batchSize: 2, headChannels: 4, headGroups: 2, headEmbedDim: 4, iterations: ITERATIONS },
  seed: 1,
  resume: false,
  checkpointEvery: 2,
  logEvery: 1,
  limit: 8,
  timingReps: 1,
  ...extra,
});

describe('distill --method add (tiny, end to end)', () => {
  it("refuses a feature net trained on the teacher's dataset, saying why, before any training", async () => {
    const out = join(root, 'refused');
    await assert.rejects(
      distillAdd(options(out, { featureNetDir: mnistDir })),
      (err: Error) =>
        /trained on mnist, the dataset of the teacher/.test(err.message) &&
        /evaluation/.test(err.message) &&
        /allowSameDatasetFeatures/.test(err.message),
    );
    assert.ok(!existsSync(join(out, 'checkpoints')), 'training started');

    const teacher = await loadDiffusionModel(teacherDir);
    const mnist = await loadFeatureNet(mnistDir);
    assert.doesNotThrow(() => checkFeatureNet(mnist, teacher, true));
    const wrongSize = { ...tinyFeaturesConfig('fashion-mnist') };
    const rgb = {
      dir: 'rgb',
      config: { ...wrongSize, featureNet: { ...wrongSize.featureNet, imageShape: [32, 32, 3] as const } },
    };
    assert.throws(
      () => checkFeatureNet(rgb, teacher),
      /reads 32x32x3 images, but the teacher's decoder makes 28x28x1/,
    );
    for (const p of [teacher.params, teacher.autoencoder.params, mnist.params]) disposeParams(p);
  });

  it('finishes without NaN and writes a loadable 4/2/1-step student with a timing card', async () => {
    const whole = join(root, 'whole');
    const result = await distillAdd(options(whole));
    assert.equal(result.completedSteps, ITERATIONS);
    const log = await readRunLog(whole);
    assert.equal(log.length, ITERATIONS);
    for (const line of log) {
      for (const key of ['generatorLoss', 'discriminatorLoss', 'realLogit', 'fakeLogit', 'distill', 'r1']) {
        assert.ok(Number.isFinite(line[key]), `log line ${JSON.stringify(line)} lacks a finite ${key}`);
      }
    }

    const student = await loadDiffusionModel(whole);
    const { config } = student;
    assert.equal(config.kind, 'student');
    assert.deepEqual(config.sampling, { steps: [4, 2, 1], cfg: 1 });
    assert.equal(config.distill?.method, 'add');
    assert.equal(config.distill?.teacher, '../teacher');
    const card = JSON.parse(await readFile(join(whole, 'card.json'), 'utf8'));
    assert.equal(card.method, 'add');
    assert.equal(card.featureNet.dataset, 'fashion-mnist');
    assert.equal(card.teacherCfg, 2); // the tiny teacher's default CFG
    const timing = card.timing as AddTiming;
    for (const key of ['totalMs', 'decodeMs', 'decodeShare', 'featureNetMs', 'featureNetShare'] as const) {
      assert.ok(Number.isFinite(timing[key]) && timing[key] > 0, `timing.${key} = ${timing[key]}`);
    }
    for (const steps of [4, 1]) {
      const images = generateImages(student, {
        labels: Int32Array.from([0, 7]),
        steps,
        cfg: 1,
        sampler: defaultSampler(config),
        seed: 2,
      });
      assert.equal(
        tf.tidy(() => images.isNaN().sum().dataSync()[0]),
        0,
        `NaN in ${steps}-step samples`,
      );
      images.dispose();
    }
    disposeParams(student.params);
    disposeParams(student.autoencoder.params);
  });
});
