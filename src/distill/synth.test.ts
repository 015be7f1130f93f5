import * as assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '../core/tf.js';
import { saveTensors } from '../io/safetensors.js';
import { type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { makeTinyTeacher } from './fixtures/tiny-teacher.js';
import { defaultSynthSettings, loadSynthetic, synthesize, synthesizeLatents } from './synth.js';

let root = '';
let teacherDir = '';
let teacher: LoadedDiffusionModel;
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-synth-'));
  teacherDir = await makeTinyTeacher(root);
  teacher = await loadDiffusionModel(teacherDir);
});
after(() => {
  disposeParams(teacher.params);
  disposeParams(teacher.autoencoder.params);
});

describe('synthetic latents', () => {
  it("default to the teacher's own sampling steps, CFG and sampler", () => {
    assert.deepEqual(defaultSynthSettings(teacher, { count: 30 }), {
      count: 30,
      steps: 4,
      cfg: 2,
      sampler: 'euler',
      seed: 0,
    });
  });

  it('are class-balanced, seeded, and cached: a second call with the same settings reuses the file', async () => {
    const settings = defaultSynthSettings(teacher, { count: 20, steps: 2, seed: 3 });
    const file = join(root, 'synth.safetensors');
    const made = await synthesize({ teacher, teacherDir, outFile: file, settings, batchSize: 8 });
    assert.deepEqual(made.shape, [7, 7, 4]);
    assert.equal(made.data.length, 20 * 7 * 7 * 4);
    assert.ok(made.data.every(Number.isFinite));
    const counts = Array.from({ length: 10 }, (_, c) => made.labels.filter((l) => l === c).length);
    assert.deepEqual(counts, Array(10).fill(2));

    const written = statSync(file).mtimeMs;
    const again = await synthesize({ teacher, teacherDir, outFile: file, settings });
    assert.equal(statSync(file).mtimeMs, written, 'the cached file was rewritten');
    assert.deepEqual(again.data, made.data);
    assert.deepEqual(again.labels, made.labels);
    assert.deepEqual(again.settings, settings);

    // Same seed, same latents; another seed, others.
    const same = synthesizeLatents(teacher, settings, teacherDir, 8);
    assert.deepEqual(same.data, made.data);
    const other = synthesizeLatents(teacher, { ...settings, seed: 4 }, teacherDir, 8);
    assert.notDeepEqual(other.data, made.data);

    await assert.rejects(
      synthesize({ teacher, teacherDir, outFile: file, settings: { ...settings, cfg: 5 } }),
      /was made with .*"cfg":2.*delete it or choose another file/,
    );
  });

  it('refuses a file that is not a synthetic set', async () => {
    const file = join(root, 'other.safetensors');
    const t = tf.zeros([2, 2]);
    await saveTensors(file, { x: t });
    t.dispose();
    await assert.rejects(loadSynthetic(file), /not a synthetic latent set: make one with `ladder synth`/);
  });
});
