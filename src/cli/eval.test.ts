// The evaluation verbs through commander (train-features, eval, report), parsed in-process on a fresh program,
// with tiny untrained models and few samples.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { parseEvalJson } from '../eval/eval-json.js';
import { loadFeatureNet } from '../eval/features.js';
import { writeTinyFeatureNet } from '../eval/fixtures/tiny-models.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { writeTinyTeacher } from '../test-utils/tiny-models.js';
import { registerEvalCommands } from './eval.js';

/** Runs `ladder <args>` with only the evaluation verbs; commander's errors throw instead of exiting. */
async function ladder(...args: string[]): Promise<void> {
  const program = new Command('ladder')
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerEvalCommands(program);
  await program.parseAsync(args, { from: 'user' });
}

let root = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-eval-cli-'));
  await writeTinyTeacher(root);
  await writeTinyFeatureNet(join(root, 'features'));
});
after(() => rm(root, { recursive: true, force: true }));

const evalArgs = (json: string, ...extra: string[]): string[] => [
  'eval',
  '--model',
  join(root, 'teacher'),
  '--features',
  join(root, 'features'),
  '--samples',
  '10',
  '--ref-limit',
  '30',
  '--kid-subsets',
  '2',
  '--grid-per-class',
  '1',
  '--cache-dir',
  join(root, 'cache'),
  '--json',
  json,
  ...extra,
];

describe('ladder train-features / eval / report', () => {
  it('trains a feature net folder whose card holds the test accuracy and the FID anchors', async () => {
    const out = join(root, 'trained');
    const common = ['--out', out, '--steps', '3', '--batch', '8', '--limit', '32', '--test-limit', '24'];
    await ladder(
      'train-features',
      ...common,
      '--channels',
      '2,4',
      '--feature-dim',
      '8',
      '--cache-dir',
      join(root, 'cache'),
    );
    const card = JSON.parse(await readFile(join(out, 'card.json'), 'utf8'));
    const net = await loadFeatureNet(out);
    disposeParams(net.params);
    assert.equal(card.featureNet, net.name);
    assert.equal(card.steps, 3);
    assert.ok(card.metrics.testAccuracy >= 0 && card.metrics.testAccuracy <= 1);
    assert.equal(card.metrics.testImages, 24);
    for (const key of ['testHalves', 'train', 'blurred', 'noise'])
      assert.ok(Number.isFinite(card.anchors.fid[key]), key);
    assert.deepEqual(net.config.featureNet.channels, [2, 4]);
    await assert.rejects(
      ladder('train-features', ...common),
      /already holds a finished model: choose another --out/,
    );
  });

  it('writes an eval JSON of the documented shape, and a report that embeds its grids', async () => {
    const json = join(root, 'run', 'teacher.json');
    await ladder(...evalArgs(json, '--steps', '1,2', '--name', 'tiny teacher'));
    const parsed = parseEvalJson(JSON.parse(await readFile(json, 'utf8')), json);
    assert.equal(parsed.model, 'tiny teacher');
    assert.deepEqual(
      parsed.results.map((r) => r.steps),
      [1, 2],
    );
    for (const r of parsed.results) assert.ok(existsSync(join(root, 'run', r.grid!)));

    const html = join(root, 'report.html');
    await ladder('report', json, '--out', html, '--title', 'tiny <report>');
    const page = await readFile(html, 'utf8');
    assert.match(page, /<title>tiny &#60;report&#62;<\/title>/);
    assert.match(page, /tiny teacher/);
    assert.equal(page.match(/<img src="data:image\/png;base64,/g)?.length, 2);
    assert.doesNotMatch(page, /grid not embedded/);
  });

  it('fails clearly on bad input', async () => {
    await assert.rejects(
      ladder(...evalArgs(join(root, 'x.json'), '--steps', '1', '--model', join(root, 'missing'))),
      /model folder .*missing does not exist/,
    );
    await assert.rejects(
      ladder(...evalArgs(join(root, 'x.json'), '--steps', '0')),
      /--steps must be an integer >= 1, got "0"/,
    );
    await assert.rejects(
      ladder(...evalArgs(join(root, 'x.json'), '--sampler', 'ddim')),
      /unknown sampler "ddim"/,
    );
    await assert.rejects(
      ladder('report', join(root, 'nope.json'), '--out', join(root, 'r.html')),
      /eval file not found: .*nope\.json/,
    );
  });
});
