// The serve server over real HTTP: model index, bad model folders, static files, the browser loader, port errors.
import * as assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import { loadDiffusionModel, saveModelFolder } from '../models/folder.js';
import { initUNet } from '../nn/unet.js';
import { expectNoLeak, maxAbsDiff, testBackend } from '../test-utils/backend.js';
import { TINY_TEACHER, writeTinyModels } from './fixtures.js';
import { disposeModel, fetchDiffusionModel } from './load.js';
import { type BrokenModel, isBroken, type ModelIndex, type ModelInfo } from './protocol.js';
import { type LadderServer, startServer } from './server.js';

let root = '';
let modelsDir = '';
let webDir = '';
let server: LadderServer;
const logs: string[] = [];

const get = (path: string) => fetch(new URL(path, server.url));
const index = async () => ((await (await get('/api/models')).json()) as ModelIndex).models;

before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-serve-'));
  modelsDir = join(root, 'models');
  const mnist = await writeTinyModels(modelsDir);
  // A truncated weights file, a folder without weights, and weights of another architecture.
  await mkdir(join(mnist, 'truncated'));
  await copyFile(join(mnist, 'teacher', 'config.json'), join(mnist, 'truncated', 'config.json'));
  const weights = await readFile(join(mnist, 'teacher', 'weights.safetensors'));
  await writeFile(join(mnist, 'truncated', 'weights.safetensors'), weights.subarray(0, weights.length - 100));
  await mkdir(join(mnist, 'no-weights'));
  await copyFile(join(mnist, 'teacher', 'config.json'), join(mnist, 'no-weights', 'config.json'));
  const wider = { ...TINY_TEACHER.unet, channels: [16, 16] };
  await saveModelFolder(join(mnist, 'mismatch'), TINY_TEACHER, initUNet(wider, new Rng(0)), {});
  await mkdir(join(mnist, 'teacher', 'checkpoints'));
  await writeFile(join(mnist, 'teacher', 'checkpoints', 'latest.json'), '{}');
  webDir = join(root, 'web');
  await mkdir(webDir);
  await writeFile(join(webDir, 'index.html'), '<!doctype html><title>ladder</title>');
  server = await startServer({ modelsDir, webDir, port: 0, log: (line) => logs.push(line) });
});

after(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

describe('ladder serve', () => {
  it('listens on loopback by default', () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it('indexes teachers and students with what the page needs, not autoencoders', async () => {
    const models = await index();
    const usable = models.filter((m): m is ModelInfo => !isBroken(m));
    assert.deepEqual(usable.map((m) => m.path).sort(), ['mnist/ladd', 'mnist/mismatch', 'mnist/teacher']);
    const ladd = usable.find((m) => m.path === 'mnist/ladd')!;
    assert.equal(ladd.kind, 'student');
    assert.equal(ladd.method, 'ladd');
    assert.equal(ladd.teacher, 'mnist/teacher');
    assert.equal(ladd.url, '/models/mnist/ladd/');
    assert.deepEqual(ladd.steps, [1, 2]);
    assert.equal(ladd.classNames.length, 10);
  });

  it('reports a corrupt or missing weights file in the index and the log once, and keeps serving', async () => {
    const broken = (await index()).filter(isBroken);
    const byPath = new Map(broken.map((m: BrokenModel) => [m.path, m.error]));
    assert.match(
      byPath.get('mnist/truncated') ?? '',
      /weights\.safetensors: corrupt safetensors file: .*replace the file/,
    );
    assert.match(byPath.get('mnist/no-weights') ?? '', /weights\.safetensors is missing/);
    await index();
    assert.equal(logs.filter((l) => l.startsWith('model mnist/truncated:')).length, 1);
    assert.ok(logs.some((l) => /^model mnist\/no-weights: .*missing/.test(l)));
    assert.equal((await get('/')).status, 200);
  });

  it('names an autoencoder that is missing', async () => {
    const dir = join(modelsDir, 'mnist', 'orphan');
    await saveModelFolder(
      dir,
      { ...TINY_TEACHER, autoencoder: '../gone' },
      initUNet(TINY_TEACHER.unet, new Rng(0)),
      {},
    );
    const orphan = (await index()).find((m) => m.path === 'mnist/orphan');
    assert.ok(orphan !== undefined && isBroken(orphan));
    assert.match(orphan.error, /autoencoder "\.\.\/gone" \(mnist\/gone\) is missing/);
    await rm(dir, { recursive: true });
  });

  it("serves the page and a model's own files, nothing else", async () => {
    const page = await get('/');
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(page.headers.get('cross-origin-embedder-policy'), 'require-corp');
    const config = await get('/models/mnist/teacher/config.json');
    assert.equal(config.status, 200);
    assert.equal(((await config.json()) as { kind: string }).kind, 'teacher');
    assert.equal((await get('/models/mnist/teacher/weights.safetensors')).status, 200);
    for (const path of [
      '/models/mnist/teacher/checkpoints/latest.json',
      '/models/%2e%2e/web/index.html',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/models/mnist/nothing/config.json',
    ]) {
      assert.equal((await get(path)).status, 404, path);
    }
  });

  it('loads a model in the browser loader exactly as the Node loader does', async () => {
    const node = await loadDiffusionModel(join(modelsDir, 'mnist', 'ladd'));
    await expectNoLeak(async () => {
      const web = await fetchDiffusionModel(new URL('/models/mnist/ladd', server.url));
      assert.deepEqual(web.config, node.config);
      assert.equal(web.autoencoder.url, new URL('/models/mnist/autoencoder/', server.url).href);
      assert.deepEqual(Object.keys(web.params).sort(), Object.keys(node.params).sort());
      for (const [name, t] of Object.entries(node.params))
        assert.equal(maxAbsDiff(web.params[name]!, t), 0, name);
      for (const [name, t] of Object.entries(node.autoencoder.params)) {
        assert.equal(maxAbsDiff(web.autoencoder.params[name]!, t), 0, name);
      }
      disposeModel(web);
    });
  });

  it('makes the browser loader fail with the file and the mismatch named', async () => {
    await expectNoLeak(async () => {
      await assert.rejects(
        fetchDiffusionModel(new URL('/models/mnist/mismatch/', server.url)),
        /mnist\/mismatch\/weights\.safetensors does not match the model config: .*has shape/,
      );
      await assert.rejects(
        fetchDiffusionModel(new URL('/models/mnist/truncated/', server.url)),
        /truncated\/weights\.safetensors: corrupt safetensors file/,
      );
      await assert.rejects(
        fetchDiffusionModel(new URL('/models/mnist/none/', server.url)),
        /config .* not found/,
      );
    });
  });

  it("writes the page's error reports to the server log", async () => {
    const response = await fetch(new URL('/api/log', server.url), {
      method: 'POST',
      body: JSON.stringify({ message: 'loading mnist/mismatch failed' }),
    });
    assert.equal(response.status, 204);
    assert.ok(logs.includes('page: loading mnist/mismatch failed'));
    const bad = await fetch(new URL('/api/log', server.url), { method: 'POST', body: 'not json' });
    assert.equal(bad.status, 400);
  });

  it('says so when the port is in use', async () => {
    await assert.rejects(
      startServer({ modelsDir, webDir, port: server.port }),
      new RegExp(`port ${server.port} on 127\\.0\\.0\\.1 is already in use: .*--port`),
    );
  });

  it('says what to do when the page is not built or the models folder is missing', async () => {
    await assert.rejects(
      startServer({ modelsDir, webDir: join(root, 'nowhere'), port: 0 }),
      /npm run build:web/,
    );
    await assert.rejects(startServer({ modelsDir: join(root, 'nowhere'), webDir, port: 0 }), /--models/);
  });
});
