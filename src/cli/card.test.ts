// `ladder card`: an eval recorded as compact metrics per feature-net role, without touching grids or timings.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EvalJson } from '../eval/eval-json.js';
import { testBackend } from '../test-utils/backend.js';
import { writeTinyTeacher } from '../test-utils/tiny-models.js';
import { cardCommand } from './card.js';

let root = '';
let teacher = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-card-'));
  teacher = await writeTinyTeacher(root);
});
after(() => rm(root, { recursive: true, force: true }));

const evalJson = (role: 'selection' | 'report', fid: number): EvalJson => ({
  model: 'teacher',
  dataset: 'mnist',
  samples: 2000,
  seed: 1234,
  featureNet: `mnist-features@${role}`,
  featureNetRole: role,
  fidFloor: { fid: 1.5, samples: 2000, classBalanced: true },
  results: [
    {
      steps: 4,
      cfg: 1,
      nfe: 4,
      fid,
      fidInterval: [fid - 1, fid + 1],
      fidReplicates: Array.from({ length: 200 }, () => fid),
      kid: 0.01,
      kidStd: 0.001,
      precision: 0.8,
      recall: 0.7,
      classAccuracy: 0.97,
      msPerImage: 2,
    },
  ],
});

interface Card {
  readonly metrics: Record<
    string,
    { readonly samples: number; readonly results: { readonly fid: number }[] }
  >;
  readonly samples?: { readonly grids: Record<string, string> };
  readonly throughput?: { readonly steps: number };
}
const readCard = async () => JSON.parse(await readFile(join(teacher, 'card.json'), 'utf8')) as Card;

describe('ladder card --eval', () => {
  it('leaves the whole eval files older cards copied (their history) as they are', async () => {
    const { featureNetRole: _role, ...beforeRoles } = evalJson('selection', 9);
    await writeFile(
      join(teacher, 'card.json'),
      JSON.stringify({ command: 'ladder train-teacher', eval: [beforeRoles] }),
    );
    const report = join(root, 'first-report.json');
    await writeFile(report, JSON.stringify(evalJson('report', 5)));
    await cardCommand({ model: teacher, seed: 0, eval: [report] });
    const card = (await readCard()) as Card & { eval?: unknown; command?: string };
    assert.deepEqual(card.eval, [beforeRoles]);
    assert.equal(card.command, 'ladder train-teacher');
    assert.deepEqual(Object.keys(card.metrics), ['reportNet']);
    assert.equal(card.metrics.reportNet!.results[0]!.fid, 5);
  });

  it('keeps each role’s FID, interval and accuracy, not the replicates, and draws nothing', async () => {
    const report = join(root, 'report.json');
    const selection = join(root, 'selection.json');
    await writeFile(report, JSON.stringify(evalJson('report', 4.2)));
    await writeFile(selection, JSON.stringify(evalJson('selection', 7.4)));
    await cardCommand({ model: teacher, seed: 0, eval: [report] });
    await cardCommand({ model: teacher, seed: 0, eval: [selection] });
    const card = await readCard();
    assert.deepEqual(Object.keys(card.metrics).sort(), ['reportNet', 'selectionNet']);
    assert.deepEqual(card.metrics.reportNet!.results, [
      { steps: 4, cfg: 1, nfe: 4, fid: 4.2, fidInterval: [3.2, 5.2], classAccuracy: 0.97, msPerImage: 2 },
    ]);
    assert.equal(card.metrics.reportNet!.samples, 2000);
    assert.equal(card.metrics.selectionNet!.results[0]!.fid, 7.4);
    assert.ok(!JSON.stringify(card.metrics).includes('fidReplicates'));
    // Another setting scored the same way joins the role's entry; a setting scored again takes the new numbers.
    const more = evalJson('selection', 12);
    const oneStep = join(root, 'selection-1step.json');
    await writeFile(
      oneStep,
      JSON.stringify({ ...more, results: [{ ...more.results[0]!, steps: 1, nfe: 1 }] }),
    );
    const again = join(root, 'selection-again.json');
    await writeFile(again, JSON.stringify(evalJson('selection', 7)));
    await cardCommand({ model: teacher, seed: 0, eval: [oneStep, again] });
    const merged = (await readCard()).metrics.selectionNet! as Card['metrics'][string] & {
      evalFiles: string[];
    };
    assert.deepEqual(
      merged.results.map((r) => r.fid),
      [12, 7],
    );
    assert.deepEqual(merged.evalFiles, [
      '../selection.json',
      '../selection-1step.json',
      '../selection-again.json',
    ]);
    assert.equal(card.samples, undefined, 'no grids drawn');
    assert.ok(!existsSync(join(teacher, 'grid-32step-cfg1.png')));
  });

  it('refuses an eval of another dataset', async () => {
    const other = join(root, 'other.json');
    await writeFile(other, JSON.stringify({ ...evalJson('report', 3), dataset: 'emoji' }));
    await assert.rejects(
      cardCommand({ model: teacher, seed: 0, eval: [other] }),
      /scores a emoji model, but .* is a mnist model/,
    );
  });

  it('draws grids and times sampling when given step counts, keeping the metrics', async () => {
    await cardCommand({ model: teacher, seed: 0, eval: [], steps: [1] });
    const card = await readCard();
    assert.ok(existsSync(join(teacher, card.samples!.grids['1']!)));
    assert.equal(card.throughput!.steps, 1);
    assert.ok(card.metrics.reportNet !== undefined);
  });
});
