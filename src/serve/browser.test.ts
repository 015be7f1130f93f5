// End to end: `ladder serve` driven by headless Chromium (Debian's /usr/bin/chromium via playwright-core).
import * as assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { Rng } from '../core/rng.js';
import { saveModelFolder } from '../models/folder.js';
import { initUNet } from '../nn/unet.js';
import { testBackend } from '../test-utils/backend.js';
import { TINY_TEACHER, writeTinyModels } from '../test-utils/serve-models.js';
import { jittered } from '../test-utils/tiny-models.js';
import { chromiumMissing, type HeadlessBrowser, openServedPage } from './browser.js';
import { buildWeb } from './bundle.js';
import type { BenchOptions, BenchResult } from './page.js';
import { type LadderServer, startServer } from './server.js';

const skip = chromiumMissing();
if (skip !== undefined) process.stderr.write(`browser tests skipped: ${skip}\n`);

/** Where the test leaves its screenshot (kept after the run, for a person to look at). */
export const SCREENSHOT = join(tmpdir(), 'ladder-serve-e2e.png');

let root = '';
let server: LadderServer | undefined;
let browser: HeadlessBrowser | undefined;
let page: Page;
const logs: string[] = [];

/** The canvas pixels (RGBA) as the page has them. */
const pixels = (id: string) =>
  page.evaluate((canvasId) => {
    const canvas = document.getElementById(canvasId) as HTMLCanvasElement;
    return Array.from(canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data);
  }, id);
const frames = async (id: string) => Number(await page.getAttribute(id, 'data-frames'));
const waitForFrames = (id: string, count: number) =>
  page.waitForFunction(
    ([statsId, n]) => Number(document.getElementById(statsId)?.dataset.frames) >= n,
    [id, count] as const,
    { timeout: 60_000 },
  );

describe('ladder serve in Chromium', { skip }, () => {
  before(async () => {
    await testBackend();
    root = await mkdtemp(join(tmpdir(), 'ladder-e2e-'));
    const mnist = await writeTinyModels(join(root, 'models'));
    await mkdir(join(mnist, 'corrupt'));
    await copyFile(join(mnist, 'ladd', 'config.json'), join(mnist, 'corrupt', 'config.json'));
    await writeFile(join(mnist, 'corrupt', 'weights.safetensors'), 'not a safetensors file');
    // Weights of another architecture: only loading them (in the browser) finds the mismatch.
    const wider = { ...TINY_TEACHER.unet, channels: [16, 16] };
    await saveModelFolder(join(mnist, 'mismatch'), TINY_TEACHER, initUNet(wider, new Rng(0)), {});
    // A prompt-conditional teacher (digit strings): the page offers a prompt box instead of classes.
    const promptedUnet = {
      ...TINY_TEACHER.unet,
      numClasses: 0,
      attentionLevels: [1],
      midAttention: true,
      text: { maxTokens: 8, width: 8, layers: 1, heads: 1 },
    };
    const prompted = {
      ...TINY_TEACHER,
      classNames: [],
      unet: promptedUnet,
      prompts: { source: 'digit-strings' as const, lengths: [1, 2, 3, 4] },
    };
    await saveModelFolder(
      join(mnist, 'prompted'),
      prompted,
      jittered(initUNet(promptedUnet, new Rng(0)), new Rng(4), 0.2),
      {},
    );
    const web = await buildWeb(join(root, 'web'));
    server = await startServer({
      modelsDir: join(root, 'models'),
      webDir: web.outDir,
      port: 0,
      log: (line) => logs.push(line),
    });
    ({ browser, page } = await openServedPage(server));
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('picks a backend and shows it', async () => {
    assert.equal(await page.getAttribute('body', 'data-ready'), 'true');
    assert.match((await page.textContent('#backend')) ?? '', /^backend: (WebGPU|WebGL|wasm)/);
  });

  it('generates continuously with a 1-step student: new, non-blank images every frame', async () => {
    await page.selectOption('#model', 'mnist/ladd');
    await page.selectOption('#steps', '1');
    await page.click('#run');
    await waitForFrames('stats', 2);
    const first = await pixels('grid');
    const tensors = await page.getAttribute('#grid', 'data-tensors');
    await waitForFrames('stats', (await frames('#stats')) + 2);
    const later = await pixels('grid');
    assert.equal(await page.getAttribute('#grid', 'data-tensors'), tensors, 'the worker leaks tensors');
    assert.ok(new Set(first).size > 10, `the canvas is blank (${new Set(first).size} distinct values)`);
    assert.equal(first.length, later.length);
    assert.notDeepEqual(first, later, 'the canvas did not change between frames');
    const ips = Number(await page.getAttribute('#stats', 'data-ips'));
    assert.ok(ips > 0, `images/s is ${ips}`);
    assert.match((await page.textContent('#stats')) ?? '', /^\d+(\.\d)? images\/s · \d+(\.\d)? ms\/image/);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok((await readFile(SCREENSHOT)).length > 1000);
    await page.click('#run'); // stop
  });

  it('runs the teacher at 32 steps beside the 1-step student', async () => {
    assert.equal(await page.inputValue('#compare-teacher'), 'mnist/teacher'); // the one ladd names
    assert.equal(await page.inputValue('#compare-student'), 'mnist/ladd');
    await page.click('#compare-run');
    await waitForFrames('teacher-stats', 2);
    await waitForFrames('student-stats', 2);
    assert.ok(Number(await page.getAttribute('#teacher-stats', 'data-ips')) > 0);
    assert.ok(Number(await page.getAttribute('#student-stats', 'data-ips')) > 0);
    assert.ok(new Set(await pixels('teacher-canvas')).size > 10);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    await page.click('#compare-run'); // stop
  });

  it('offers the teacher at 1 step, named as such, when no student fits', async () => {
    const fallback = await page.textContent('#compare-student option[value="teacher:mnist/teacher"]');
    assert.match(fallback ?? '', /mnist\/teacher at 1 step \(not a student\)/);
  });

  it('shows a corrupt model on the page and in the server log', async () => {
    const errors = await page.locator('#errors li').allTextContents();
    assert.ok(
      errors.some((e) => /mnist\/corrupt: .*corrupt safetensors file/.test(e)),
      errors.join('\n'),
    );
    assert.ok(logs.some((l) => /^model mnist\/corrupt: .*corrupt safetensors file/.test(l)));
    assert.ok(
      !(await page.$$eval('#model option', (os) => os.map((o) => o.getAttribute('value')))).includes(
        'mnist/corrupt',
      ),
    );
  });

  it('shows weights that do not fit their config on the page and in the server log, and carries on', async () => {
    await page.selectOption('#model', 'mnist/mismatch');
    await page.click('#run');
    const error = page.locator('#errors li', { hasText: 'mnist/mismatch' });
    await error.waitFor({ timeout: 60_000 });
    assert.match((await error.textContent()) ?? '', /weights\.safetensors does not match the model config/);
    await page.waitForFunction(() => document.getElementById('run')?.textContent === 'Start');
    assert.ok(
      logs.some((l) => /^page: generation stopped: .*mnist\/mismatch.*does not match/.test(l)),
      logs.join('\n'),
    );
    await page.selectOption('#model', 'mnist/ladd');
    await page.click('#run');
    await waitForFrames('stats', 2);
    await page.click('#run');
  });

  it("draws a prompt-conditional model at the prompt's aspect ratio, from a prompt box", async () => {
    assert.ok(await page.isHidden('#prompt'), 'no model on the page takes a prompt yet');
    await page.selectOption('#model', 'mnist/prompted');
    assert.ok(await page.isVisible('#prompt'));
    await page.fill('#prompt', '4071');
    await page.selectOption('#steps', '1');
    await page.click('#run');
    await waitForFrames('stats', 2);
    const size = await page.$eval('#grid', (c) => [
      (c as HTMLCanvasElement).width,
      (c as HTMLCanvasElement).height,
    ]);
    // One row of 8 images 112 px wide and 28 px high (plus the grid's gaps).
    assert.ok(size[0]! > 20 * size[1]!, `canvas ${size.join('x')}`);
    assert.deepEqual(await page.locator('#row-labels li').allTextContents(), ['4071']);
    assert.ok(new Set(await pixels('grid')).size > 10);
    await page.click('#run');
    await page.selectOption('#model', 'mnist/ladd');
    assert.ok(await page.isVisible('#class-label'));
    assert.ok(await page.isHidden('#prompt'));
  });

  it('measures throughput for the benchmark', async () => {
    const options: BenchOptions = { path: 'mnist/ladd', steps: 1, batch: 4, seconds: 0.1 };
    const result = await page.evaluate(
      (o) =>
        (window as unknown as { ladder: { bench(o: BenchOptions): Promise<BenchResult> } }).ladder.bench(o),
      options,
    );
    assert.ok(result.frames >= 2);
    assert.ok(result.imagesPerSecond > 0 && result.msPerImage > 0);
  });

  it('fetches nothing from the internet', () => {
    assert.deepEqual(browser?.offsiteRequests, []);
  });
});
