// The evaluation verbs through commander (train-features, eval, report), parsed in-process on a fresh program,
// with tiny untrained models and few samples; overwrite refusal and flag checks through the real command line.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { parseEvalJson } from '../eval/eval-json.js';
import { writeTinyFeatureNet } from '../eval/fixtures/tiny-models.js';
import { loadFeatureNet } from '../models/feature-net.js';
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

const main = fileURLToPath(new URL('./main.ts', import.meta.url));
/** Runs the real `ladder` command line in a child process. */
const cli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    encoding: 'utf8',
    env: { ...process.env },
  });

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
    const common = ['--out', out, '--iterations', '3', '--batch', '8', '--limit', '32', '--test-limit', '24'];
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
    await ladder(...evalArgs(json, '--steps', '1,2', '--name', 'tiny teacher', '--bootstrap', '30'));
    const parsed = parseEvalJson(JSON.parse(await readFile(json, 'utf8')), json);
    assert.equal(parsed.model, 'tiny teacher');
    assert.equal(parsed.featureNetRole, 'selection');
    assert.equal(parsed.bootstrap?.replicates, 30);
    for (const r of parsed.results) assert.equal(r.fidReplicates?.length, 30);
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
    assert.match(page, /\(selection net\)/);
    assert.equal(page.match(/<img src="data:image\/png;base64,/g)?.length, 2);
    assert.doesNotMatch(page, /grid not embedded/);
  });

  it('eval and report refuse to overwrite their outputs unless --force (real CLI)', async () => {
    const json = join(root, 'kept', 'teacher.json');
    const first = cli(...evalArgs(json, '--steps', '1'));
    assert.equal(first.status, 0, first.stderr);
    const again = cli(...evalArgs(json, '--steps', '1'));
    assert.equal(again.status, 1);
    assert.match(
      again.stderr,
      /teacher\.json, .*teacher-1steps\.png already exist: pass --force to overwrite/,
    );
    // A grid left alone is protected too.
    await rm(json);
    const gridOnly = cli(...evalArgs(json, '--steps', '1'));
    assert.equal(gridOnly.status, 1);
    assert.match(gridOnly.stderr, /teacher-1steps\.png already exists/);
    assert.ok(!existsSync(json));
    const forced = cli(...evalArgs(json, '--steps', '1', '--force'));
    assert.equal(forced.status, 0, forced.stderr);
    assert.ok(existsSync(json));

    const html = join(root, 'kept', 'report.html');
    await writeFile(html, 'precious');
    const report = cli('report', json, '--out', html);
    assert.equal(report.status, 1);
    assert.match(
      report.stderr,
      /report\.html already exists: pass --force to overwrite, or choose another --out/,
    );
    assert.equal(await readFile(html, 'utf8'), 'precious');
    const replaced = cli('report', json, '--out', html, '--force');
    assert.equal(replaced.status, 0, replaced.stderr);
    assert.match(await readFile(html, 'utf8'), /<!doctype html>/);
  });

  it('eval rejects an out-of-range --cfg or a bad --latent-size when parsing (real CLI)', () => {
    for (const [flag, value, message] of [
      ['--cfg', '1e308', /--cfg must be a number from 0 to 100, got "1e308"/],
      ['--cfg', '-1', /--cfg must be a number from 0 to 100, got "-1"/],
      ['--latent-size', '0x7', /--latent-size: height and width must be at least 1, got "0x7"/],
    ] as const) {
      const r = cli(...evalArgs(join(root, 'never.json'), flag, value));
      assert.equal(r.status, 1, `${flag} ${value} was accepted`);
      assert.match(r.stderr, message);
    }
    assert.ok(!existsSync(join(root, 'never.json')));
  });

  it('--net report records the role with the --features folder; --bootstrap 0 writes no intervals', async () => {
    const json = join(root, 'roles', 'report.json');
    await ladder(...evalArgs(json, '--steps', '1', '--net', 'report', '--bootstrap', '0'));
    const parsed = parseEvalJson(JSON.parse(await readFile(json, 'utf8')), json);
    assert.equal(parsed.featureNetRole, 'report');
    assert.equal(parsed.featureNetDir, join(root, 'features'));
    assert.equal(parsed.bootstrap, undefined);
    assert.equal(parsed.results[0]?.fidInterval, undefined);
    await assert.rejects(
      ladder(...evalArgs(join(root, 'x.json'), '--net', 'final')),
      /unknown feature net role "final"; known: selection, report/,
    );
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
