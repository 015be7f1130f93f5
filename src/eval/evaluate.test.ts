// Tests for `ladder eval`'s library entry: the JSON it writes (tiny untrained models, few samples), paired
// sampling, and clear errors for bad input.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '../core/tf.js';
import { decodePng } from '../image/png.js';
import { loadFeatureNet } from '../models/feature-net.js';
import { assertBytesClose, assertDeepClose, pngPixels, testBackend } from '../test-utils/backend.js';
import { writeTinyTeacher } from '../test-utils/tiny-models.js';
import { type EvalResult, parseEvalJson } from './eval-json.js';
import { type EvaluateOptions, evaluateModel } from './evaluate.js';
import { tinyFeaturesConfig, writeTinyFeatureNet } from './fixtures/tiny-models.js';
import { reportNetFlags } from './train-features.js';

let root = '';
let base: EvaluateOptions;
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-eval-'));
  await writeTinyTeacher(root);
  await writeTinyFeatureNet(join(root, 'features'));
  base = {
    modelDir: join(root, 'teacher'),
    featuresDir: join(root, 'features'),
    samples: 12,
    seed: 5,
    outJson: join(root, 'out', 'teacher.json'),
    referenceLimit: 40,
    cacheDir: join(root, 'cache'),
    kidSubsets: 3,
    gridPerClass: 2,
  };
});
after(() => rm(root, { recursive: true, force: true }));

describe('evaluateModel', () => {
  it('writes an eval JSON of the documented shape, with one result per step count and its grid', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const returned = await evaluateModel({ ...base, steps: [1, 2] });
    assert.equal(tf.memory().numTensors, tensorsBefore, 'tensors leaked');
    const onDisk = parseEvalJson(JSON.parse(await readFile(base.outJson, 'utf8')), base.outJson);
    assert.deepEqual(onDisk, returned);
    const net = await loadFeatureNet(join(root, 'features'));
    tf.dispose(Object.values(net.params));
    assert.equal(onDisk.featureNet, net.name);
    assert.equal(onDisk.featureNetRole, 'selection');
    assert.equal(onDisk.featureNetDir, join(root, 'features'));
    assert.deepEqual(onDisk.bootstrap, { replicates: 200, blocks: 12, level: 0.95, withinClasses: true });
    assert.equal(onDisk.fidFloor?.samples, 12);
    assert.ok(onDisk.fidFloor.fid > 0 && onDisk.fidFloor.classBalanced);
    assert.equal(onDisk.dataset, 'mnist');
    assert.equal(onDisk.samples, 12);
    assert.equal(onDisk.seed, 5);
    assert.equal(typeof onDisk.backend, 'string');
    assert.deepEqual(
      onDisk.results.map((r) => [r.steps, r.cfg, r.nfe, r.sampler]),
      [
        [1, 1, 1, 'euler'],
        [2, 1, 2, 'euler'],
      ],
    );
    for (const r of onDisk.results) {
      assert.ok(r.fid >= 0 && r.msPerImage > 0);
      assert.equal(r.fidReplicates?.length, 200);
      const [low, high] = r.fidInterval ?? [Number.NaN, Number.NaN];
      assert.ok(low <= high && low >= Math.min(...r.fidReplicates) && high <= Math.max(...r.fidReplicates));
      const [accLow, accHigh] = r.classAccuracyInterval ?? [Number.NaN, Number.NaN];
      assert.ok(accLow >= 0 && accLow <= accHigh && accHigh <= 1);
      assert.equal(r.grid, `teacher-${r.steps}steps.png`);
      const png = decodePng(await readFile(join(root, 'out', r.grid!)));
      assert.ok(png.height > png.width, 'one row per class (10) and 2 columns');
    }
  });

  it('is paired: the same seed gives the same metrics, another seed others; CFG counts two NFE per step', async () => {
    const opts = { ...base, steps: [1], gridPerClass: 0 };
    const a = await evaluateModel({ ...opts, outJson: join(root, 'a.json') });
    const b = await evaluateModel({ ...opts, outJson: join(root, 'b.json') });
    const { msPerImage: _a, ...metricsA } = a.results[0]!;
    const { msPerImage: _b, ...metricsB } = b.results[0]!;
    assert.deepEqual(metricsA, metricsB);
    assert.equal(metricsA.grid, undefined);
    const guided = await evaluateModel({ ...opts, cfg: 2, outJson: join(root, 'c.json') });
    assert.equal(guided.results[0]!.nfe, 2);
    const reseeded = await evaluateModel({ ...opts, seed: 6, outJson: join(root, 'd.json') });
    assert.notEqual(reseeded.results[0]!.fid, metricsA.fid);
    const unbootstrapped = await evaluateModel({
      ...opts,
      bootstrapReplicates: 0,
      outJson: join(root, 'e.json'),
    });
    assert.equal(unbootstrapped.bootstrap, undefined);
    const { msPerImage: _e, ...metricsE } = unbootstrapped.results[0]!;
    const { fidInterval: _i, fidReplicates: _r, classAccuracyInterval: _c, ...pointMetrics } = metricsA;
    assert.deepEqual(metricsE, pointMetrics, 'the same point metrics, without intervals');
    await assert.rejects(
      evaluateModel({ ...opts, bootstrapReplicates: -1 }),
      /--bootstrap must be an integer >= 0 \(0: no intervals\), got -1/,
    );
  });

  it('samples at another latent size (9x11) and scores the images resized to the feature net input', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const out = await evaluateModel({
      ...base,
      steps: [1],
      latentSize: [9, 11],
      outJson: join(root, 'wide.json'),
    });
    assert.equal(tf.memory().numTensors, tensorsBefore, 'tensors leaked');
    assert.deepEqual((out as { latentSize?: unknown }).latentSize, [9, 11]);
    assert.equal(out.results.length, 1);
    assert.ok(Number.isFinite(out.results[0]!.fid));
  });

  it('streams in chunks: the same metrics and grids whatever the batch; a diverging model writes nothing', async () => {
    const opts = { ...base, steps: [1, 2] };
    const one = await evaluateModel({ ...opts, batchSize: 12, outJson: join(root, 'chunks', 'one.json') });
    const many = await evaluateModel({ ...opts, batchSize: 5, outJson: join(root, 'chunks', 'many.json') });
    const metrics = (r: EvalResult) => {
      const { msPerImage: _ms, timedBatches: _batches, grid: _grid, ...rest } = r;
      return rest;
    };
    assertDeepClose(many.results.map(metrics), one.results.map(metrics));
    // Timed per batch (the median of the 2 full batches of 5; the last, of 2, left out), and the folder recorded
    // for the report's card link.
    assert.deepEqual([one.results[0]!.timedBatches, many.results[0]!.timedBatches], [1, 2]);
    assert.equal(many.modelDir, opts.modelDir);
    for (const steps of [1, 2]) {
      assertBytesClose(
        pngPixels(await readFile(join(root, 'chunks', `many-${steps}steps.png`))),
        pngPixels(await readFile(join(root, 'chunks', `one-${steps}steps.png`))),
        `the ${steps}-step grid depends on the batch`,
      );
    }

    await writeTinyTeacher(join(root, 'diverging'), { jitter: 1e20 });
    await assert.rejects(
      evaluateModel({
        ...opts,
        modelDir: join(root, 'diverging', 'teacher'),
        outJson: join(root, 'nan', 'x.json'),
      }),
      /diverging\/teacher made NaN or infinite latents at 1 sampling step \(cfg 1, euler sampler\)/,
    );
    assert.deepEqual(await readdir(join(root, 'nan')), []);
  });

  it('sizes the memory check by the chunks it makes: a batch above --samples is checked as --samples', async () => {
    // 10 million images of a batch would not fit; the 12 samples, all in one chunk, do.
    const out = await evaluateModel({
      ...base,
      steps: [1],
      gridPerClass: 0,
      batchSize: 10_000_000,
      outJson: join(root, 'big-batch.json'),
    });
    assert.equal(out.results.length, 1);
  });

  it('refuses to overwrite its JSON or a grid when told to (the CLI without --force)', async () => {
    const opts = { ...base, steps: [1], outJson: join(root, 'kept', 'run.json') };
    await evaluateModel(opts);
    await assert.rejects(
      evaluateModel({ ...opts, overwrite: false }),
      /run\.json, .*run-1steps\.png already exist: pass --force to overwrite the eval JSON and its grids/,
    );
    await rm(opts.outJson);
    await assert.rejects(evaluateModel({ ...opts, overwrite: false }), /run-1steps\.png already exists/);
    assert.ok(!existsSync(opts.outJson));
    await evaluateModel({ ...opts, overwrite: false, gridPerClass: 0 }); // writes no grid: nothing to refuse
  });

  it('says when the model folder is missing or is not a model', async () => {
    await assert.rejects(
      evaluateModel({ ...base, modelDir: join(root, 'gone') }),
      /model folder .*gone does not exist: pass --model the folder of a trained teacher or student/,
    );
    await mkdir(join(root, 'empty'));
    await assert.rejects(
      evaluateModel({ ...base, modelDir: join(root, 'empty') }),
      /empty has no config\.json/,
    );
  });

  it('refuses a feature net trained on another dataset, and says how to get one', async () => {
    await writeTinyFeatureNet(join(root, 'fashion-features'), tinyFeaturesConfig('fashion-mnist'));
    await assert.rejects(
      evaluateModel({ ...base, featuresDir: join(root, 'fashion-features') }),
      /was trained on fashion-mnist, but model .*teacher generates mnist images: pass --features with a feature net trained on mnist/,
    );
    await assert.rejects(
      evaluateModel({ ...base, featuresDir: join(root, 'no-features') }),
      /feature net folder .*no-features does not exist: train one with `ladder train-features/,
    );
    assert.ok(!existsSync(join(root, 'out', 'never.json')));
  });

  it('records the report role and the folder given, and says how to make a missing report net', async () => {
    const out = await evaluateModel({
      ...base,
      steps: [1],
      gridPerClass: 0,
      featureNetRole: 'report',
      outJson: join(root, 'report-role.json'),
    });
    assert.equal(out.featureNetRole, 'report');
    assert.equal(out.featureNetDir, join(root, 'features'));
    const make = (dir: string) =>
      `ladder train-features --data mnist --out ${dir} --channels 32,64,128 --kernel 3 --feature-dim 128 --seed 7`;
    const missing = join(root, 'no-report-net');
    await assert.rejects(
      evaluateModel({ ...base, featureNetRole: 'report', featuresDir: missing }),
      (err: Error) =>
        err.message.includes(
          `report net folder ${missing} does not exist: make it with \`${make(missing)}\``,
        ),
    );
    const training = join(root, 'report-net-training');
    await mkdir(join(training, 'checkpoints'), { recursive: true });
    await assert.rejects(
      evaluateModel({ ...base, featureNetRole: 'report', featuresDir: training }),
      (err: Error) =>
        err.message.includes('holds no finished feature net') &&
        err.message.includes(`${make(training)} --resume`),
    );
  });

  it("keeps the README's report net command in step with the settings the error message gives", async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    assert.ok(
      readme.includes(`train-features --data mnist --out runs/features-report ${reportNetFlags().join(' ')}`),
    );
  });

  it('rejects too few samples for precision/recall', async () => {
    await assert.rejects(evaluateModel({ ...base, samples: 3 }), /--samples must be an integer above 3/);
  });
});
