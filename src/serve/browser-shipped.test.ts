// End to end with the shipped models: the page, in headless Chromium, generates digits of the chosen class with
// a 1-step student; the project's classifier reads them back off the canvas.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import * as tf from '../core/tf.js';
import { loadFeatureNet } from '../models/feature-net.js';
import { featureNetForward } from '../nn/feature-net.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { chromiumMissing, type HeadlessBrowser, openServedPage } from './browser.js';
import { buildWeb } from './bundle.js';
import { type LadderServer, startServer } from './server.js';

const MODELS = fileURLToPath(new URL('../../models', import.meta.url));
/** The screenshot a person can look at: digits of CLASS from the shipped 1-step student. */
export const SHIPPED_SCREENSHOT = join(tmpdir(), 'ladder-serve-shipped.png');
/** The page with every class, one labelled row each, and the model's card numbers. */
export const ROWS_SCREENSHOT = join(tmpdir(), 'ladder-serve-rows.png');
const STUDENT = 'mnist/ladd';
const CLASS = 3;
const TILE = 28;

const skip =
  chromiumMissing() ??
  (existsSync(join(MODELS, STUDENT, 'weights.safetensors')) ? undefined : `no shipped ${STUDENT}`);

describe('ladder serve with the shipped models in Chromium', { skip }, () => {
  let root = '';
  let server: LadderServer | undefined;
  let browser: HeadlessBrowser | undefined;
  let page: Page;

  before(async () => {
    await testBackend();
    root = await mkdtemp(join(tmpdir(), 'ladder-e2e-shipped-'));
    const web = await buildWeb(join(root, 'web'));
    server = await startServer({ modelsDir: MODELS, webDir: web.outDir, port: 0, log: () => {} });
    ({ browser, page } = await openServedPage(server));
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await rm(root, { recursive: true, force: true });
  });

  it(`draws digits of the chosen class (${CLASS}) with the 1-step student`, async () => {
    await page.selectOption('#model', STUDENT);
    await page.selectOption('#steps', '1');
    await page.selectOption('#class', String(CLASS));
    await page.click('#run');
    // A frame started before the class took effect may still be on the canvas: wait for later ones.
    await page.waitForFunction(() => Number(document.getElementById('stats')?.dataset.frames) >= 3, null, {
      timeout: 120_000,
    });
    const { width, height, data } = await page.evaluate(() => {
      const canvas = document.getElementById('grid') as HTMLCanvasElement;
      const image = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
      return { width: image.width, height: image.height, data: Array.from(image.data) };
    });
    await page.screenshot({ path: SHIPPED_SCREENSHOT, fullPage: true });
    await page.click('#run'); // stop

    // Cut the grid into 28x28 tiles (the red channel of the grey images), in [-1, 1] as the classifier takes them.
    const cols = width / TILE;
    const rows = height / TILE;
    assert.ok(Number.isInteger(cols) && Number.isInteger(rows), `grid ${width}x${height} is not 28px tiles`);
    const n = cols * rows;
    const tiles = new Float32Array(n * TILE * TILE);
    for (let k = 0; k < n; k++) {
      for (let y = 0; y < TILE; y++) {
        for (let x = 0; x < TILE; x++) {
          const px = ((Math.floor(k / cols) * TILE + y) * width + (k % cols) * TILE + x) * 4;
          tiles[(k * TILE + y) * TILE + x] = data[px]! / 127.5 - 1;
        }
      }
    }
    const classifier = await loadFeatureNet(join(MODELS, 'mnist', 'features'));
    const predicted = tf.tidy(() =>
      Array.from(
        featureNetForward(
          classifier.params,
          classifier.config.featureNet,
          tf.tensor4d(tiles, [n, TILE, TILE, 1]),
        )
          .logits.argMax(1)
          .dataSync(),
      ),
    );
    disposeParams(classifier.params);
    const hits = predicted.filter((c) => c === CLASS).length;
    // The student's class accuracy is about 97%: allow a few misses, not a wrong class.
    assert.ok(hits >= Math.ceil(0.75 * n), `${hits} of ${n} tiles read as ${CLASS}: ${predicted.join(',')}`);
  });

  it("shows the picked model's card numbers, labels rows by class, and compares with the best 1-step student", async () => {
    await page.selectOption('#model', 'mnist/ladd-1step');
    const info = (await page.textContent('#model-info')) ?? '';
    assert.match(
      info,
      /^LADD student · 1 step · 1 network pass per image · FID \d+\.\d\d, class accuracy \d+\.\d% \(report net, 2000 samples, from its card\)$/,
    );
    await page.selectOption('#model', 'mnist/teacher');
    assert.match(
      (await page.textContent('#model-info')) ?? '',
      /teacher · 32 steps · 64 network passes per image · FID/,
    );
    await page.fill('#guidance', '3');
    await page.dispatchEvent('#guidance', 'change');
    assert.match((await page.textContent('#model-info')) ?? '', /at guidance 1\.25/);

    await page.selectOption('#model', STUDENT);
    await page.selectOption('#steps', '1');
    await page.selectOption('#class', 'all');
    await page.selectOption('#rows', '1');
    await page.click('#run');
    // The frame count left by the previous test stays until this run's first frame resets it: wait for a grid
    // of this run's shape instead (a wrong layout times out here).
    await page.waitForFunction(
      () => (document.getElementById('grid') as HTMLCanvasElement).height === 280,
      null,
      { timeout: 120_000 },
    );
    await page.click('#run'); // stop
    await page.screenshot({ path: ROWS_SCREENSHOT, fullPage: true });
    const labels = await page.$$eval('#row-labels li', (items) => items.map((li) => li.textContent));
    assert.deepEqual(labels, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const size = await page.evaluate(() => {
      const canvas = document.getElementById('grid') as HTMLCanvasElement;
      return [canvas.width, canvas.height];
    });
    assert.deepEqual(size, [8 * TILE, 10 * TILE], 'one row of 8 per class');

    const index = (await (await fetch(new URL('api/models', server!.url))).json()) as {
      models: {
        path: string;
        kind?: string;
        dataset?: unknown;
        steps?: number[];
        quality?: { role: string; results: { steps: number; fid: number }[] };
      }[];
    };
    // Among the students of the compared teacher's dataset (the shipped families are scored by different nets).
    const teacherPath = await page.inputValue('#compare-teacher');
    const teacher = index.models.find((m) => m.path === teacherPath);
    const sameData = (m: { dataset?: unknown }) =>
      JSON.stringify(m.dataset) === JSON.stringify(teacher?.dataset);
    const oneStep = index.models
      .filter(
        (m) => m.kind === 'student' && sameData(m) && m.steps?.includes(1) && m.quality?.role === 'report',
      )
      .map((m) => ({
        path: m.path,
        fid: m.quality!.results.find((r) => r.steps === 1)?.fid ?? Number.POSITIVE_INFINITY,
      }))
      .sort((a, b) => a.fid - b.fid);
    assert.ok(oneStep.length >= 2, 'shipped students with report-net cards');
    assert.equal(await page.inputValue('#compare-student'), oneStep[0]!.path);
  });
});
