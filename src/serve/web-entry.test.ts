// The library's browser entry (dist/web/ladder.js) in headless Chromium: the example page and the API, loading a
// shipped student from a URL, hosted by a plain static file server as a web developer's own site would be.
import * as assert from 'node:assert/strict';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { chromiumMissing, type HeadlessBrowser, launchChromium } from './browser.js';
import { buildWeb } from './bundle.js';

const skip = chromiumMissing();
const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
};

/** Files under each URL prefix's folder, nothing else (longest prefixes first). */
function staticServer(roots: Readonly<Record<string, string>>): Server {
  return createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const prefix = Object.keys(roots).find((p) => path.startsWith(p))!;
    const file = normalize(join(roots[prefix]!, path.slice(prefix.length)));
    if (!file.startsWith(roots[prefix]!) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
}
const MODELS = fileURLToPath(new URL('../../models/', import.meta.url));

let root = '';
let server: Server | undefined;
let origin = '';
let browser: HeadlessBrowser | undefined;
const errors: string[] = [];

async function open(path: string): Promise<Page> {
  const page = await browser!.context.newPage();
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${origin}/${path}`);
  return page;
}

describe('the browser entry in Chromium', { skip }, () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ladder-web-entry-'));
    const web = await buildWeb(join(root, 'web'));
    server = staticServer({ '/models/': MODELS, '/': web.outDir });
    await new Promise<void>((ready) => server!.listen(0, '127.0.0.1', ready));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium(origin);
  });
  after(async () => {
    await browser?.close();
    server?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('draws eight generated 7s in the example page (three lines of script)', async () => {
    const page = await open('example.html');
    // Ink in every one of the eight 28-pixel cells: each holds a digit, not a blank or a copy of a failure.
    await page.waitForFunction(
      () => {
        const canvas = document.getElementById('out') as HTMLCanvasElement;
        const { data } = canvas.getContext('2d')!.getImageData(0, 0, 224, 28);
        const ink = Array<number>(8).fill(0);
        for (let i = 0; i < data.length; i += 4) ink[Math.floor(((i / 4) % 224) / 28)]! += data[i]!;
        return ink.every((v) => v > 28 * 28 * 10);
      },
      undefined,
      { timeout: 120_000 },
    );
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('loads a student from a URL through the API, with its card and the model defaults', async () => {
    const page = await open('example.html');
    const result = (await page.evaluate(`(async () => {
      const { loadPipeline } = await import('./ladder.js');
      const pipe = await loadPipeline('models/mnist/ladd-dmd-4step');
      const images = await pipe.generate({ classes: ['3', 8], n: 2, seed: 4 });
      let png;
      try { images[0].toPNG(); png = 'encoded'; } catch (err) { png = err.message; }
      const data = images[0].toImageData();
      const out = {
        method: pipe.info.method,
        steps: pipe.info.steps,
        hasCard: typeof pipe.info.card?.command === 'string',
        labels: images.map((im) => im.label),
        size: [data.width, data.height, images[0].pixels.length],
        differ: images[0].pixels.some((v, i) => v !== images[2].pixels[i]),
        png,
      };
      pipe.dispose();
      try { await pipe.generate(); } catch (err) { out.afterDispose = err.message; }
      return out;
    })()`)) as Record<string, unknown>;
    assert.deepEqual(result, {
      method: 'ladd-dmd',
      steps: [4, 2, 1],
      hasCard: true,
      labels: [3, 3, 8, 8],
      size: [28, 28, 784],
      differ: true,
      png: 'toPNG() is part of the Node entry: in the browser use toImageData() on a canvas',
      afterDispose: `the pipeline of ${origin}/models/mnist/ladd-dmd-4step was disposed: load it again`,
    });
    assert.deepEqual(errors, []);
    await page.close();
  });
});
