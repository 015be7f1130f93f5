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
  await writeTinyFeatureNet(join(models, 'mnist', 'features-report'), undefined, 3);
});

describe('ladder demo', () => {
  it('evaluates the teacher at 1, 2, 4 and 32 steps with the report net, and writes the eval JSON and the report', async () => {
    const out = join(models, '..', 'demo');
    await demoCommand({ dataset: 'mnist', models, out, samples: 10, seed: 0 });
    const run = parseEvalJson(JSON.parse(await readFile(join(out, 'teacher.json'), 'utf8')), 'teacher.json');
    assert.deepEqual(
      run.results.map((r) => r.steps),
      [1, 2, 4, 32],
    );
    assert.equal(run.featureNetRole, 'report');
    assert.equal(run.featureNetDir, join(models, 'mnist', 'features-report'));
    assert.ok(existsSync(join(out, 'report.html')));
    assert.ok(
      !existsSync(join(out, 'ae.json')) && !existsSync(join(out, 'features.json')),
      'only diffusion models are evaluated',
    );
  });

  it('says how to make a missing report net', async () => {
    const bare = join(models, '..', 'bare');
    await writeTinyTeacher(join(bare, 'mnist'));
    await assert.rejects(
      demoCommand({ dataset: 'mnist', models: bare, out: join(bare, 'demo'), samples: 10, seed: 0 }),
      /report net folder .*bare\/mnist\/features-report does not exist: make it with `ladder train-features --data mnist --out .*features-report --channels 32,64,128 --kernel 3 --feature-dim 128 --seed 7`/,
    );
  });

  it('says where models are missing', async () => {
    await assert.rejects(
      demoCommand({ dataset: 'emoji', models, out: join(models, '..', 'x'), samples: 10, seed: 0 }),
      /no models folder .*emoji/,
    );
  });
});
