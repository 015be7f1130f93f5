// `distill` and `synth` through commander, on a tiny random teacher (the backend is set up by testBackend).
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Command } from 'commander';
import { makeTinyTeacher } from '../distill/fixtures/tiny-teacher.js';
import { loadSynthetic } from '../distill/shared/synth.js';
import { loadDiffusionModel } from '../models/folder.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { registerDistillCommands } from './distill.js';

let root = '';
let teacher = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-cli-distill-'));
  teacher = await makeTinyTeacher(root);
});

/** Runs `ladder <args>` in-process; resolves to the error text ('' on success). */
async function ladder(...args: string[]): Promise<string> {
  let errors = '';
  const program = new Command('ladder')
    .exitOverride()
    .configureOutput({ writeErr: (s) => (errors += s), writeOut: () => {} });
  registerDistillCommands(program);
  try {
    await program.parseAsync(args, { from: 'user' });
    return errors;
  } catch (err) {
    return errors || (err as Error).message;
  }
}

describe('ladder synth / distill', () => {
  it('synth caches class-balanced teacher latents; distill trains a 2-step student on them', async () => {
    const file = join(root, 'synth.safetensors');
    assert.equal(
      await ladder('synth', '--teacher', teacher, '--n', '10', '--steps', '2', '--cfg', '1.5', '--out', file),
      '',
    );
    const set = await loadSynthetic(file);
    assert.deepEqual(Array.from(set.labels), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual({ steps: set.settings.steps, cfg: set.settings.cfg }, { steps: 2, cfg: 1.5 });

    const out = join(root, 'student');
    const args = [
      'distill',
      ...'--method ladd --steps 2'.split(' '),
      '--teacher',
      teacher,
      '--out',
      out,
      '--synthetic',
      file,
    ];
    const tiny = '--iterations 2 --batch 2 --head-channels 8 --head-groups 4 --head-embed 8 --warmup 1'.split(
      ' ',
    );
    assert.equal(
      await ladder(...args, ...tiny, '--probs', '.6,.4', '--features', 'down.1,mid', '--r1', '0.1'),
      '',
    );
    const student = await loadDiffusionModel(out);
    assert.deepEqual(student.config.sampling, { steps: [2, 1], cfg: 1 });
    const distill = student.config.distill as Record<string, unknown>;
    assert.deepEqual(distill.probs, [0.6, 0.4]);
    assert.deepEqual(distill.features, ['down.1', 'mid']);
    assert.equal(distill.r1Weight, 0.1);
    assert.equal(distill.iterations, 2);
    assert.equal(distill.headEmbedDim, 8);
    assert.ok(!existsSync(join(out, 'synthetic.safetensors')), 'the given synthetic file was not used');
    assert.equal(distill.generatorLr, 1e-4, 'an unset flag keeps the library default');
    disposeParams(student.params);
    disposeParams(student.autoencoder.params);
  });

  it('rejects bad flags with a message that says what to do', async () => {
    const base = ['distill', '--teacher', teacher, '--out', join(root, 'never')];
    assert.match(await ladder(...base, '--method', 'sdxl'), /--method.*Allowed choices are ladd/);
    assert.match(
      await ladder(...base, '--method', 'ladd', '--batch', '1'),
      /--batch must be an integer >= 2/,
    );
    assert.match(
      await ladder(...base, '--method', 'ladd', '--steps', '2', '--probs', '1,0,0'),
      /probs has 3 entries but the student has 2 times/,
    );
    assert.match(
      await ladder(...base, '--method', 'ladd', '--features', 'up.0'),
      /no U-Net feature named "up.0"/,
    );
    assert.match(
      await ladder('synth', '--teacher', teacher, '--out', join(root, 'x.safetensors'), '--sampler', 'ddim'),
      /unknown sampler "ddim"/,
    );
    assert.ok(!existsSync(join(root, 'never', 'config.json')));
  });
});
