// Tests for the self-contained HTML report.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EvalJson, EvalResult } from './eval-json.js';
import { escapeHtml, renderReport } from './report.js';

const PNG_BYTES = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3);
const EVIL_NAME = '<b>"Evil" & co</b>';

function result(steps: number, fid: number, extra: Partial<EvalResult> = {}): EvalResult {
  return {
    steps,
    cfg: 2,
    nfe: 2 * steps,
    fid,
    kid: fid / 1000,
    kidStd: 0.001,
    precision: 0.8,
    recall: 0.5,
    classAccuracy: 0.9,
    msPerImage: steps * 1.5,
    ...extra,
  };
}

function run(model: string, results: EvalResult[]): EvalJson {
  return { model, dataset: 'mnist', samples: 1000, seed: 0, featureNet: 'mnist-cnn', results };
}

const evals = [
  run('teacher', [result(8, 5), result(32, 3), result(64, 2.5, { grid: 'grids/teacher-64.png' })]),
  run(EVIL_NAME, [result(1, 9, { grid: 'https://example.com/x.png' }), result(4, 6)]),
];

const count = (text: string, needle: string): number => text.split(needle).length - 1;

describe('renderReport', () => {
  it('has one table row per (model, steps) and one SVG per plot', async () => {
    const html = await renderReport(evals, { title: 'Ladder & co' });
    assert.equal(count(html, '<tr class="result">'), 5);
    assert.equal(count(html, '<svg'), 2);
    assert.match(html, /<title>Ladder &#38; co<\/title>/);
    assert.match(html, /FID against NFE/);
  });

  it('references nothing on the network besides XML namespace URIs', async () => {
    const html = await renderReport(evals, { grids: { 'grids/teacher-64.png': PNG_BYTES } });
    const urls = html.match(/https?:\/\/[^\s"'<>)]*/g) ?? [];
    assert.ok(urls.length > 0, 'the inline SVG declares its namespace');
    for (const url of urls) assert.match(url, /^http:\/\/www\.w3\.org\/(2000\/svg|1999\/xlink|1999\/xhtml)$/);
    assert.match(html, /grid not embedded \(remote\)/);
  });

  it('escapes HTML in model names, also inside the charts', async () => {
    const html = await renderReport(evals);
    assert.ok(!html.includes(EVIL_NAME), 'raw model name must not appear');
    assert.ok(!html.includes('<b>'), 'no injected element');
    assert.ok(html.includes(escapeHtml(EVIL_NAME)), 'escaped name in the table');
  });

  it('embeds grids as PNG data URIs, matched by the result grid field or shown under their key', async () => {
    const html = await renderReport(evals, {
      grids: { 'grids/teacher-64.png': PNG_BYTES, extra: PNG_BYTES },
    });
    const uri = `data:image/png;base64,${Buffer.from(PNG_BYTES).toString('base64')}`;
    assert.equal(count(html, `src="${uri}"`), 2);
    assert.match(html, /teacher: 64 steps, NFE 128<\/figcaption>/);
    assert.match(html, /<figcaption>extra<\/figcaption>/);
    const withoutBytes = await renderReport(evals);
    assert.match(withoutBytes, /grid not embedded: grids\/teacher-64\.png/);
    await assert.rejects(
      renderReport(evals, { grids: { bad: Uint8Array.of(1, 2, 3) } }),
      /grids\["bad"\] is not a PNG/,
    );
  });

  it('labels series by cfg when one model was run at several guidance scales', async () => {
    const html = await renderReport([run('student', [result(1, 4, { cfg: 1 }), result(1, 3, { cfg: 3 })])]);
    assert.match(html, /student, cfg 1/);
    assert.match(html, /student, cfg 3/);
  });

  it('shows the FID and class-accuracy intervals and the floor', async () => {
    const scored: EvalJson = {
      ...run('student', [result(4, 5, { fidInterval: [4.5, 5.6], classAccuracyInterval: [0.88, 0.92] })]),
      fidFloor: { fid: 1.25, samples: 1000, classBalanced: true },
    };
    const html = await renderReport([scored]);
    assert.match(
      html,
      /data-value="5">5\.00 \[4\.50, 5\.60\]<\/td><td class="num" data-value="1\.25">1\.25<\/td>/,
    );
    assert.match(html, /0\.900 \[0\.880, 0\.920\]/);
    assert.doesNotMatch(html, /FID \/ teacher/, 'no teacher, no ratio column');
  });

  it('divides by the teacher at full steps, pairing replicate i with replicate i', async () => {
    const teacher: EvalJson = {
      ...run('teacher', [
        result(4, 12, { fidReplicates: [11, 12, 13, 15] }),
        result(32, 4, { fidReplicates: [3, 4, 5, 6] }),
      ]),
      modelKind: 'teacher',
    };
    // Each replicate is twice the teacher's: paired ratios are all 2, unpaired ones would spread from 1 to 4.
    const student = run('student', [result(1, 8, { fidReplicates: [6, 8, 10, 12] })]);
    const otherNet = { ...run('other', [result(1, 7)]), featureNet: 'other-net' };
    const html = await renderReport([teacher, student, otherNet]);
    assert.match(html, /<th>FID \/ teacher \[95%\]<\/th>/);
    assert.match(html, /data-value="2">2\.00 \[2\.00, 2\.00\]<\/td>/);
    assert.match(html, /data-value="3">3\.00 \[2\.51, 3\.62\]<\/td>/, 'the teacher at 4 steps: 12 / 4');
    assert.match(html, /FID divided by that of teacher at 32 steps/);
    const otherRow = html.split('<tr class="result">').find((row) => row.startsWith('<td>other<'));
    assert.match(otherRow ?? '', /data-value="7">7\.00<\/td><td><\/td><td><\/td>/, 'other net: no ratio');
  });

  it('names the net and role of each eval, and warns when they differ', async () => {
    const report = { ...run('a', [result(1, 3)]), featureNetRole: 'report' as const };
    const same = await renderReport([report, { ...report, model: 'b' }]);
    assert.match(same, /<td>mnist-cnn \(report net\)<\/td>/);
    assert.doesNotMatch(same, /class="warning"/);
    const mixed = await renderReport([
      report,
      { ...report, model: 'b', featureNetRole: 'selection' },
      run('c', []),
    ]);
    assert.match(
      mixed,
      /class="warning">Warning: these evals were scored by different feature nets or roles \(mnist-cnn \(report net\); mnist-cnn \(selection net\); mnist-cnn \(role not recorded\)\)/,
    );
  });

  it('sums up each method by its best 1-step and 4-step student against the teacher, first', async () => {
    const teacher: EvalJson = { ...run('teacher', [result(32, 4)]), modelKind: 'teacher' };
    const students: EvalJson[] = [
      { ...run('ladd-a', [result(1, 9), result(4, 6)]), modelKind: 'student', method: 'ladd' },
      { ...run('ladd-b', [result(1, 7)]), modelKind: 'student', method: 'ladd' },
      { ...run('padd-a', [result(4, 5)]), modelKind: 'student', method: 'padd' },
    ];
    const html = await renderReport([...students, teacher]);
    assert.ok(html.indexOf('<h2>Summary</h2>') < html.indexOf('<h2>Runs</h2>'), 'summary first');
    const summary = html.slice(
      html.indexOf('<table id="summary">'),
      html.indexOf('</table>', html.indexOf('id="summary"')),
    );
    const ladd = summary.split('<tr>').find((r) => r.startsWith('<td>ladd<'))!;
    assert.match(
      ladd,
      /<td>ladd-b<\/td><td class="num" data-value="7">7\.00<\/td><td class="num" data-value="1\.75">1\.75</,
    );
    assert.match(
      ladd,
      /<td>ladd-a<\/td><td class="num" data-value="6">6\.00<\/td><td class="num" data-value="1\.5">1\.50</,
    );
    const padd = summary.split('<tr>').find((r) => r.startsWith('<td>padd<'))!;
    assert.match(padd, /^<td>padd<\/td><td>none<\/td>/, 'no 1-step PADD student');
    assert.match(summary, /teacher \(32 steps\)/);
    // Metrics rows: the teacher first, then the files' order, each model by NFE.
    assert.deepEqual(
      [
        ...html.matchAll(
          /<tr class="result"><td>([^<]+)<\/td><td>mnist<\/td><td><\/td><td class="num" data-value="(\d+)">/g,
        ),
      ].map((m) => `${m[1]} ${m[2]}`),
      ['teacher 32', 'ladd-a 1', 'ladd-a 4', 'ladd-b 1', 'padd-a 4'],
    );
    assert.doesNotMatch(
      await renderReport([teacher, run('plain', [result(1, 5)])]),
      /Summary/,
      'no method, no summary',
    );
  });

  it('says the sample count and why cards differ, links cards, and draws FID on a log axis', async () => {
    const withDir: EvalJson = {
      ...run('student', [result(1, 5), result(4, 3)]),
      modelDir: 'models/mnist/student',
    };
    const html = await renderReport([withDir], { reportDir: 'runs/demo' });
    assert.match(html, /Samples: 1000 generated images per setting \(seed 0\)/);
    assert.match(html, /cards and the README use 2000/);
    assert.match(
      html,
      /<td>student \(<a href="\.\.\/\.\.\/models\/mnist\/student\/card\.json">card<\/a>\)<\/td>/,
    );
    assert.match(html, /FID \(feature net, log scale\)/);
    assert.doesNotMatch(await renderReport([withDir]), /card<\/a>/, 'no report folder, no link');
  });

  it('renders an empty report without charts', async () => {
    const html = await renderReport([]);
    assert.equal(count(html, '<svg'), 0);
    assert.match(html, /No results to plot/);
  });
});
