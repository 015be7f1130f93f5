import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parseEvalJson } from '../eval/eval-json.js';
import { writeTinyFeatureNet } from '../eval/fixtures/tiny-models.js';
import { testBackend } from '../test-utils/backend.js';
import { writeTinyTeacher } from '../test-utils/tiny-models.js';
import { demoCommand } from './demo.js';

let models = '';
before(async () => {
  await testBackend();
  models = join(await mkdtemp(join(tmpdir(), 'ladder-demo-')), 'models');
  await writeTinyTeacher(join(models, 'mnist'));
  await writeTinyFeatureNet(join(models, 'mnist', 'features'));
});

describe('ladder demo', () => {
  it('evaluates the teacher at 1, 2, 4 and 32 steps and writes the eval JSON and the report', async () => {
    const out = join(models, '..', 'demo');
    await demoCommand({ dataset: 'mnist', models, out, samples: 10, seed: 0 });
    const run = parseEvalJson(JSON.parse(await readFile(join(out, 'teacher.json'), 'utf8')), 'teacher.json');
    assert.deepEqual(
      run.results.map((r) => r.steps),
      [1, 2, 4, 32],
    );
    assert.ok(existsSync(join(out, 'report.html')));
    assert.ok(
      !existsSync(join(out, 'ae.json')) && !existsSync(join(out, 'features.json')),
      'only diffusion models are evaluated',
    );
  });

  it('says where models are missing', async () => {
    await assert.rejects(
      demoCommand({ dataset: 'emoji', models, out: join(models, '..', 'x'), samples: 10, seed: 0 }),
      /no models folder .*emoji/,
    );
  });
});
