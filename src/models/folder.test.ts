import * as assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import {
  tinyTeacherConfig,
  tinyUNetParams,
  writeFolders,
  writeTinyTeacher,
} from '../test-utils/tiny-models.js';
import { loadDiffusionModel, WEIGHTS_FILE } from './folder.js';

before(testBackend);

describe('model folders', () => {
  it('refuses weights of another kind of model, even when every shape matches', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ladder-folder-'));
    const teacherDir = await writeTinyTeacher(root);
    const student = tinyTeacherConfig({
      kind: 'student',
      distill: { method: 'ladd', teacher: '../teacher' },
    });
    await writeFolders(root, [['student', student, tinyUNetParams(new Rng(3))]]);
    const loaded = await loadDiffusionModel(join(root, 'student')); // its own weights load
    disposeParams(loaded.params);
    disposeParams(loaded.autoencoder.params);

    await copyFile(join(teacherDir, WEIGHTS_FILE), join(root, 'student', WEIGHTS_FILE));
    await assert.rejects(
      loadDiffusionModel(join(root, 'student')),
      /student\/weights\.safetensors holds teacher weights but .*student\/config\.json describes a student/,
    );
  });

  it('refuses a model whose autoencoder makes latents of another size (another image size or channel count)', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ladder-folder-'));
    const teacherDir = await writeTinyTeacher(root);
    const configFile = join(teacherDir, 'config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    const [h, w, c] = config.latentShape;
    await writeFile(configFile, JSON.stringify({ ...config, latentShape: [h + 1, w, c] }));
    await assert.rejects(
      loadDiffusionModel(teacherDir),
      new RegExp(`trained on ${h + 1}x${w}x${c} latents, but its autoencoder .* makes ${h}x${w}x${c}`),
    );
  });
});
