// Behaviour particular to PADD: its ladder, trajectory steps, discriminator and runner. What every method must do
// (finite losses, frozen teacher, gradient routing, no leaks, exact resume) is checked in methods.test.ts.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { loadDiffusionModel } from '../models/folder.js';
import { configDenoiser, defaultSampler, generateImages } from '../models/pipeline.js';
import { disposeParams, paramsUnder } from '../nn/params.js';
import { encoderParams, unetForward } from '../nn/unet.js';
import { ddimStepAt } from '../samplers/common.js';
import { gaussianDenoiser } from '../samplers/gaussian.js';
import { expectNoLeak, maxAbsDiff, testBackend } from '../test-utils/backend.js';
import { FLOW, TINY_UNET, tinyUNetParams } from '../test-utils/tiny-models.js';
import { makeTinyTeacher } from './fixtures/tiny-teacher.js';
import {
  discriminatorEncoder,
  initPaddDiscriminator,
  paddHeadConfig,
  paddLogits,
  teacherSteps,
} from './padd.js';
import {
  PADD_DEFAULTS,
  type PaddConfig,
  parsePaddSchedule,
  resolvePaddConfig,
  stagePhases,
} from './padd-config.js';
import { type DistillPaddOptions, distillPadd } from './padd-train.js';
import { synthesize } from './shared/synth.js';

before(testBackend);

describe('PADD schedule and phases', () => {
  it('reads the ladder: the first stage MSE, later ones adversarial, tags override', () => {
    assert.deepEqual(parsePaddSchedule('32:mse,8,4,2,1'), [
      { teacherSteps: 32, studentSteps: 8, loss: 'mse' },
      { teacherSteps: 8, studentSteps: 4, loss: 'adversarial' },
      { teacherSteps: 4, studentSteps: 2, loss: 'adversarial' },
      { teacherSteps: 2, studentSteps: 1, loss: 'adversarial' },
    ]);
    assert.deepEqual(parsePaddSchedule('2:mse,1'), [{ teacherSteps: 2, studentSteps: 1, loss: 'mse' }]);
    assert.deepEqual(parsePaddSchedule('8:adv,4'), [
      { teacherSteps: 8, studentSteps: 4, loss: 'adversarial' },
    ]);
  });

  it('rejects ladders that do not step down by divisors, or misplace tags', () => {
    assert.throws(() => parsePaddSchedule('32'), /at least one student/);
    assert.throws(() => parsePaddSchedule('32,6'), /6 must be smaller than 32 and divide it/);
    assert.throws(() => parsePaddSchedule('4,8'), /8 must be smaller than 4/);
    assert.throws(() => parsePaddSchedule('8,4:mse'), /last count/);
    assert.throws(() => parsePaddSchedule('8:gan,4'), /:mse or :adv/);
    assert.throws(() => parsePaddSchedule('8,x'), /"x" is not a positive step count/);
    assert.throws(() => resolvePaddConfig({ relaxFraction: 0.6, x0WarmupFraction: 0.5 }), /relaxFraction/);
  });

  it('splits an adversarial stage into conditional then relax, with an MSE warm-up for a re-parameterised student', () => {
    const c = { iterations: 100, relaxFraction: 0.3, x0WarmupFraction: 0.2 };
    const mse = { teacherSteps: 32, studentSteps: 8, loss: 'mse' as const };
    const adv = { teacherSteps: 2, studentSteps: 1, loss: 'adversarial' as const };
    assert.deepEqual(stagePhases(mse, c, true), [{ phase: 'mse', iterations: 100 }]);
    assert.deepEqual(stagePhases(adv, c, false), [
      { phase: 'conditional', iterations: 70 },
      { phase: 'relax', iterations: 30 },
    ]);
    assert.deepEqual(stagePhases(adv, c, true), [
      { phase: 'mse', iterations: 20 },
      { phase: 'conditional', iterations: 50 },
      { phase: 'relax', iterations: 30 },
    ]);
    assert.deepEqual(stagePhases(adv, { ...c, relaxFraction: 0 }, false), [
      { phase: 'conditional', iterations: 100 },
    ]);
  });
});

describe('PADD trajectory steps', () => {
  const f = makeFormulation(FLOW);

  // ddimStepAt itself (per-sample times, t = 0 clean) is checked against the grid step in samplers.test.ts.
  it('n teacher steps chain n equal per-sample DDIM steps from t to tNext', async () => {
    const denoise = gaussianDenoiser(f, 0.3, 0.8);
    const labels = tf.tensor1d([0, 0], 'int32');
    const x = randn(new Rng(1), [2, 3, 3, 1]) as tf.Tensor4D;
    await expectNoLeak(() =>
      tf.tidy(() => {
        const from = Float32Array.from([1, 0.5]);
        const to = Float32Array.from([0.5, 0]);
        const mid = Float32Array.from([0.75, 0.25]);
        const chained = ddimStepAt(denoise, f, ddimStepAt(denoise, f, x, from, mid, labels), mid, to, labels);
        assert.ok(maxAbsDiff(teacherSteps(f, denoise, x, from, to, 2, labels), chained) < 1e-5);
        const one = ddimStepAt(denoise, f, x, from, to, labels);
        assert.ok(maxAbsDiff(teacherSteps(f, denoise, x, from, to, 1, labels), one) === 0);
        assert.ok(maxAbsDiff(one, chained) > 1e-4, 'degenerate check: one step equals two');
      }),
    );
    tf.dispose([labels, x]);
  });
});

describe('PADD discriminator', () => {
  const config: PaddConfig = { ...PADD_DEFAULTS, headChannels: 8, headGroups: 4 };

  it('starts as an exact, independent copy of the teacher encoder', () => {
    const teacher = tinyUNetParams(new Rng(3));
    const head = paddHeadConfig(TINY_UNET, config, true);
    const d = initPaddDiscriminator(teacher, head, new Rng(4));
    const encoder = discriminatorEncoder(d);
    const expected = encoderParams(teacher);
    assert.deepEqual(Object.keys(encoder).sort(), Object.keys(expected).sort());
    assert.ok(Object.keys(expected).length > 0);
    for (const [name, t] of Object.entries(expected)) {
      assert.notEqual(encoder[name], t, `${name} is shared, not copied`);
      assert.deepEqual(Array.from(encoder[name]!.dataSync()), Array.from(t.dataSync()), name);
    }
    assert.ok(!Object.keys(encoder).some((k) => k.startsWith('dec')), 'decoder weights in the discriminator');
    assert.ok(Object.keys(paramsUnder(d, 'head.')).length > 0);
    disposeParams(d);
    disposeParams(teacher);
  });

  it('reads x_t next to x_{t-ns} when conditional (twice the channels) and x_{t-ns} alone when relaxed', async () => {
    const teacher = tinyUNetParams(new Rng(3));
    const b = 2;
    const [h, w] = [7, 7];
    const x = randn(new Rng(5), [b, h, w, TINY_UNET.inChannels]) as tf.Tensor4D;
    const labels = tf.tensor1d([1, 2], 'int32');
    const times = { netTimeNext: tf.tensor1d([500, 0]), netTime: tf.tensor1d([1000, 500]) };
    const width = TINY_UNET.channels.at(-1)!;
    const cond = paddHeadConfig(TINY_UNET, config, true);
    const uncond = paddHeadConfig(TINY_UNET, config, false);
    assert.equal(cond.inChannels, 2 * width);
    assert.equal(uncond.inChannels, width);
    const dc = initPaddDiscriminator(teacher, cond, new Rng(6));
    const du = initPaddDiscriminator(teacher, uncond, new Rng(6));
    await expectNoLeak(() =>
      tf.tidy(() => {
        const base = { xNext: x, netTimeNext: times.netTimeNext, condition: labels };
        const c = paddLogits(dc, TINY_UNET, cond, { ...base, xT: x, netTime: times.netTime });
        const u = paddLogits(du, TINY_UNET, uncond, base);
        assert.equal(c.length, 1);
        assert.equal(u.length, 1);
        assert.equal(c[0]!.shape[0] % b, 0);
        assert.equal(c[0]!.shape[0], u[0]!.shape[0], 'one logit per position of the encoder’s last map');
        assert.throws(() => paddLogits(dc, TINY_UNET, cond, base), /built for 16 input channels but got 8/);
        // The conditional logits depend on x_t.
        const other = paddLogits(dc, TINY_UNET, cond, { ...base, xT: x.mul(-1), netTime: times.netTime });
        assert.ok(maxAbsDiff(c[0]!, other[0]!) > 1e-6);
      }),
    );
    tf.dispose([x, labels, times.netTime, times.netTimeNext]);
    disposeParams(dc);
    disposeParams(du);
    disposeParams(teacher);
  });
});

describe('distill --method padd (tiny, end to end)', () => {
  let root = '';
  let teacherDir = '';
  let synthFile = '';
  const options = (outDir: string, extra: Partial<DistillPaddOptions> = {}): DistillPaddOptions => ({
    teacherDir,
    outDir,
    syntheticFile: synthFile,
    config: { schedule: '4:mse,2,1', iterations: 5, batchSize: 2, headChannels: 8, headGroups: 4 },
    seed: 1,
    resume: false,
    checkpointEvery: 2,
    logEvery: 1,
    ...extra,
  });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ladder-padd-'));
    teacherDir = await makeTinyTeacher(root);
    synthFile = join(root, 'synth.safetensors');
    const teacher = await loadDiffusionModel(teacherDir);
    await synthesize({
      teacher,
      teacherDir,
      outFile: synthFile,
      settings: { count: 8, steps: 2, cfg: 2, sampler: 'euler', seed: 0 },
    });
    disposeParams(teacher.params);
    disposeParams(teacher.autoencoder.params);
  });

  it('chains the stages: each stage is taught by the previous student, the 1-step student predicts x0', async () => {
    const out = join(root, 'whole');
    const result = await distillPadd(options(out));
    assert.equal(result.interrupted, false);
    assert.deepEqual(
      result.stages.map((s) => s.studentSteps),
      [2, 1],
    );

    const two = await loadDiffusionModel(join(out, 'stage-2'));
    const one = await loadDiffusionModel(join(out, 'stage-1'));
    assert.equal(two.config.distill?.teacher, '../../teacher');
    assert.equal(one.config.distill?.teacher, '../stage-2', 'stage 1 names stage 2 as its teacher');
    assert.equal(two.config.prediction, 'formulation');
    assert.equal(one.config.prediction, 'x0');
    assert.deepEqual(two.config.sampling, { steps: [2], cfg: 1, sampler: 'euler' });
    assert.equal(defaultSampler(one.config), 'euler');
    const card = JSON.parse(await readFile(join(out, 'stage-1', 'card.json'), 'utf8'));
    assert.deepEqual(
      card.phases.map((p: { phase: string; iterations: number }) => [p.phase, p.iterations]),
      [
        ['mse', 1],
        ['conditional', 2],
        ['relax', 2],
      ],
    );
    assert.ok(existsSync(join(out, 'stage-1', 'relax', 'log.jsonl')));

    // x0 parameterisation: the 1-step student's denoiser returns the raw network output.
    const x = randn(new Rng(7), [2, 7, 7, TINY_UNET.inChannels]) as tf.Tensor4D;
    const labels = tf.tensor1d([3, 4], 'int32');
    const t = tf.tensor1d([1, 1]);
    const raw = tf.tidy(() => unetForward(one.params, one.config.unet, x, t.mul(1000), labels).out);
    const viaDenoiser = configDenoiser(one.config, one.params)(x, t, labels);
    assert.ok(maxAbsDiff(raw, viaDenoiser) < 1e-6);
    // and differs from the velocity reading of the same weights, x0 = x_t - t v
    const asVelocity = configDenoiser({ ...one.config, prediction: 'formulation' }, one.params)(x, t, labels);
    assert.ok(maxAbsDiff(raw, asVelocity) > 1e-3);
    const images = generateImages(one, {
      labels: Int32Array.from([0, 5]),
      steps: 1,
      cfg: 1,
      sampler: 'euler',
      seed: 0,
    });
    assert.equal(
      tf.tidy(() => images.isNaN().sum().dataSync()[0]),
      0,
    );
    tf.dispose([x, labels, t, raw, viaDenoiser, asVelocity, images]);
    for (const m of [one, two]) {
      disposeParams(m.params);
      disposeParams(m.autoencoder.params);
    }
    await assert.rejects(distillPadd(options(out)), /already holds a PADD run/);
  });

  it('--from-stage retrains the later stages from the finished earlier one, keeping the old ones aside', async () => {
    const out = join(root, 'whole');
    await assert.rejects(distillPadd(options(out, { fromStage: 3 })), /no stage of the schedule/);
    // A student heads a ladder only at the step count it was made for (the ablations start from a stage).
    const ablation = options(join(root, 'ablation'), { teacherDir: join(out, 'stage-2') });
    await assert.rejects(
      distillPadd({ ...ablation, config: { ...ablation.config, schedule: '4,1' } }),
      /is a 2-step student, but the schedule uses it at 4 steps/,
    );
    const result = await distillPadd(
      options(out, {
        fromStage: 1,
        // Two iterations are enough to write the stage; the phases are what this test reads.
        config: { ...options(out).config, iterations: 2, relaxFraction: 0, oneStepPrediction: 'teacher' },
      }),
    );
    assert.deepEqual(
      result.stages.map((s) => s.studentSteps),
      [2, 1],
    );
    const card = JSON.parse(await readFile(join(out, 'stage-1', 'card.json'), 'utf8'));
    // No relax phase, and a 1-step student that keeps the teacher's parameterisation needs no x0 warm-up.
    assert.deepEqual(
      card.phases.map((p: { phase: string }) => p.phase),
      ['conditional'],
    );
    const config = JSON.parse(await readFile(join(out, 'stage-1', 'config.json'), 'utf8'));
    assert.equal(config.prediction, 'formulation');
    assert.ok((await readdir(out)).some((n) => n.startsWith('stage-1.replaced-')));
  });
});
