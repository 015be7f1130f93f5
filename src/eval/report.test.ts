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

  it('renders an empty report without charts', async () => {
    const html = await renderReport([]);
    assert.equal(count(html, '<svg'), 0);
    assert.match(html, /No results to plot/);
  });
});
