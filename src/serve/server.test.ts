// The serve server over real HTTP: model index, bad model folders, static files, the browser loader, port errors,
// and the attacks it refuses (files outside its models, leaks in errors, DNS rebinding, forged log reports).
import * as assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import { disposeModel, fetchDiffusionModel } from '../models/fetch.js';
import { loadDiffusionModel, saveModelFolder } from '../models/folder.js';
import { initUNet } from '../nn/unet.js';
import { expectNoLeak, maxAbsDiff, testBackend } from '../test-utils/backend.js';
import { TINY_TEACHER, writeTinyModels } from '../test-utils/serve-models.js';
import { ModelIndexer, RESCAN_INTERVAL_MS } from './model-index.js';
import { type BrokenModel, isBroken, type ModelIndex, type ModelInfo } from './protocol.js';
import { isAllowedHost, type LadderServer, startServer } from './server.js';

let root = '';
let modelsDir = '';
let webDir = '';
let server: LadderServer;
const logs: string[] = [];

const get = (path: string) => fetch(new URL(path, server.url));
const index = async () => ((await (await get('/api/models')).json()) as ModelIndex).models;

/** A request over node:http, which (unlike fetch) sends Host, Origin and Sec-Fetch-Site as given. */
function raw(
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = request(
      new URL(path, server.url),
      { method: o.method ?? 'GET', headers: o.headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', fail);
    req.end(o.body);
  });
}

/** The status line of `requestLine` sent as is over a socket with a valid Host header (node:http rewrites it). */
function rawLine(requestLine: string): Promise<string> {
  return new Promise((done, fail) => {
    const socket = connect(server.port, '127.0.0.1', () =>
      socket.write(`${requestLine}\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n`),
    );
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('end', () => done(text));
    socket.on('error', fail);
  });
}

/** A log report as the page sends it: a string body (text/plain) from the server's own origin. */
const report = (message: unknown, headers: Record<string, string> = {}) =>
  raw('/api/log', {
    method: 'POST',
    headers: { Origin: server.url.slice(0, -1), 'Content-Type': 'text/plain;charset=UTF-8', ...headers },
    body: JSON.stringify({ message }),
  });

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
      /weights\.safetensors: corrupt safetensors file \(the server log says how\); replace the file/,
    );
    assert.match(byPath.get('mnist/no-weights') ?? '', /weights\.safetensors is missing/);
    await index();
    assert.equal(logs.filter((l) => l.startsWith('model mnist/truncated:')).length, 1);
    assert.ok(
      logs.some((l) => /^model mnist\/truncated: .*corrupt safetensors file: .*; replace the file$/.test(l)),
    );
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
    assert.match(orphan.error, /its autoencoder mnist\/gone is missing: restore that folder/);
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

  it('lists and serves a finished model moved aside when its run was continued (`teacher.replaced-step-3`)', async () => {
    const moved = join(modelsDir, 'mnist', 'teacher.replaced-step-3');
    await mkdir(moved);
    for (const file of ['config.json', 'weights.safetensors'])
      await copyFile(join(modelsDir, 'mnist', 'teacher', file), join(moved, file));
    try {
      const entry = (await index()).find((m) => m.path === 'mnist/teacher.replaced-step-3');
      assert.ok(entry !== undefined && !isBroken(entry), JSON.stringify(entry));
      assert.equal(entry.url, '/models/mnist/teacher.replaced-step-3/');
      for (const file of ['config.json', 'weights.safetensors'])
        assert.equal((await get(`${entry.url}${file}`)).status, 200, file);
    } finally {
      await rm(moved, { recursive: true });
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
    assert.equal((await report('loading mnist/mismatch failed')).status, 204);
    assert.ok(logs.includes('page: loading mnist/mismatch failed'));
    const bad = await raw('/api/log', {
      method: 'POST',
      headers: { Origin: server.url.slice(0, -1), 'Content-Type': 'text/plain' },
      body: 'not json',
    });
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

describe('ladder serve under attack', () => {
  it('serves no file outside the indexed model folders: no links out, dot-folders or non-models', async () => {
    const secret = join(root, 'secret.txt');
    await writeFile(secret, 'SECRET outside the models folder');
    // An indexed model whose card.json is a link to a file outside the models folder.
    const linked = join(modelsDir, 'mnist', 'linked');
    await mkdir(linked);
    for (const file of ['config.json', 'weights.safetensors'])
      await copyFile(join(modelsDir, 'mnist', 'teacher', file), join(linked, file));
    await symlink(secret, join(linked, 'card.json'));
    // A credentials file in a dot-folder, a config.json that is no model's, and a linked folder outside.
    await mkdir(join(modelsDir, '.docker'));
    await writeFile(join(modelsDir, '.docker', 'config.json'), '{"auths": {"SECRET": {}}}');
    await mkdir(join(modelsDir, 'notes'));
    await writeFile(join(modelsDir, 'notes', 'config.json'), '{"token": "SECRET"}');
    const elsewhere = join(root, 'elsewhere');
    await mkdir(elsewhere);
    await copyFile(join(modelsDir, 'mnist', 'teacher', 'config.json'), join(elsewhere, 'config.json'));
    await symlink(elsewhere, join(modelsDir, 'mnist', 'elsewhere'));
    // Listed first, as the page does: a request for an unknown folder lists again only once a second.
    await index();
    try {
      assert.equal((await get('/models/mnist/linked/config.json')).status, 200);
      assert.equal((await get('/models/mnist/autoencoder/weights.safetensors')).status, 200);
      for (const path of [
        '/models/mnist/linked/card.json',
        '/models/.docker/config.json',
        '/models/%2edocker/config.json',
        '/models/notes/config.json',
        '/models/mnist/elsewhere/config.json',
        '/models/mnist/teacher/../linked/card.json',
        '/models/mnist/teacher/.hidden/config.json',
      ]) {
        const response = await raw(path);
        assert.equal(response.status, 404, path);
        assert.equal(response.body, 'not found\n', path);
      }
    } finally {
      for (const path of [linked, join(modelsDir, '.docker'), join(modelsDir, 'notes'), elsewhere, secret])
        await rm(path, { recursive: true });
      await rm(join(modelsDir, 'mnist', 'elsewhere'));
    }
  });

  it('keeps absolute paths and file contents out of the index, logging them instead', async () => {
    const passwd = join(root, 'passwd');
    await writeFile(passwd, 'root:x:0:0:SECRET');
    const leak = join(modelsDir, 'mnist', 'leak');
    await mkdir(leak);
    await symlink(passwd, join(leak, 'config.json'));
    // An autoencoder outside the models folder, and weights whose header quotes itself when parsed.
    const far = join(modelsDir, 'mnist', 'far');
    await saveModelFolder(
      far,
      { ...TINY_TEACHER, autoencoder: '../../../far-ae' },
      initUNet(TINY_TEACHER.unet, new Rng(0)),
      {},
    );
    const garbled = join(modelsDir, 'mnist', 'garbled');
    await mkdir(garbled);
    await copyFile(join(modelsDir, 'mnist', 'teacher', 'config.json'), join(garbled, 'config.json'));
    const header = Buffer.from('SECRET-WEIGHTS');
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    await writeFile(join(garbled, 'weights.safetensors'), Buffer.concat([length, header]));
    try {
      const text = await (await get('/api/models')).text();
      assert.ok(!text.includes(root), text);
      assert.ok(!text.includes('SECRET') && !text.includes('root:x'), text);
      const byPath = new Map(
        ((JSON.parse(text) as ModelIndex).models.filter(isBroken) as BrokenModel[]).map((m) => [
          m.path,
          m.error,
        ]),
      );
      assert.match(
        byPath.get('mnist/leak') ?? '',
        /config\.json is a link to outside the served models folder/,
      );
      assert.match(byPath.get('mnist/far') ?? '', /autoencoder lies outside the served models folder/);
      assert.match(byPath.get('mnist/garbled') ?? '', /corrupt safetensors file \(the server log says how\)/);
      // The terminal gets the details.
      assert.ok(logs.some((l) => l.startsWith('model mnist/leak:') && l.includes(passwd)));
      assert.ok(logs.some((l) => l.startsWith('model mnist/far:') && l.includes(modelsDir)));
      assert.ok(logs.some((l) => l.startsWith('model mnist/garbled:') && l.includes('SECRET-WEIGHTS')));
    } finally {
      for (const path of [leak, far, garbled, passwd]) await rm(path, { recursive: true });
    }
  });

  it('answers only requests addressed to it by name and port (DNS rebinding)', async () => {
    const port = server.port;
    for (const host of [
      'attacker.example',
      `attacker.example:${port}`,
      `127.0.0.1:${port + 1}`,
      'x@127.0.0.1',
    ]) {
      for (const path of ['/', '/api/models', '/models/mnist/teacher/config.json']) {
        const response = await raw(path, { headers: { Host: host } });
        assert.equal(response.status, 421, `${host} ${path}`);
        assert.ok(!response.body.includes('mnist'), response.body);
      }
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LocalHost:${port}`, `[::1]:${port}`])
      assert.equal((await raw('/', { headers: { Host: host } })).status, 200, host);
  });

  it('refuses a request target that is not a path: an absolute URL would override the checked Host', async () => {
    for (const target of [
      'http://evil.example/models/mnist/teacher/config.json',
      'http://evil.example/',
      '//evil.example/models/mnist/teacher/config.json',
      '/\\evil.example/models/mnist/teacher/config.json',
      '*',
    ]) {
      const response = await rawLine(`GET ${target} HTTP/1.1`);
      assert.match(response, /^HTTP\/1\.1 400 /, target);
      assert.ok(!response.includes('teacher'), response);
    }
    const ok = await rawLine('GET /models/mnist/teacher/config.json HTTP/1.1');
    assert.match(ok, /^HTTP\/1\.1 200 /);
    assert.match(ok, /\r\ncross-origin-resource-policy: same-origin\r\n/i);
  });

  it('lists the models folder again for unknown folders at most once a second, however many are asked for', async () => {
    let now = 0;
    const indexer = new ModelIndexer(
      modelsDir,
      () => {},
      () => now,
    );
    const burst = () =>
      Promise.all(
        Array.from({ length: 50 }, (_, i) => indexer.servedFile(`mnist/unknown-${i}`, 'config.json')),
      );
    assert.deepEqual(new Set(await burst()), new Set([undefined]));
    assert.equal(indexer.scans, 1);
    now += RESCAN_INTERVAL_MS - 1;
    await burst();
    assert.equal(indexer.scans, 1);
    // A model added since is served once the interval has passed.
    const added = join(modelsDir, 'mnist', 'added');
    await mkdir(added);
    for (const file of ['config.json', 'weights.safetensors'])
      await copyFile(join(modelsDir, 'mnist', 'teacher', file), join(added, file));
    try {
      assert.equal(await indexer.servedFile('mnist/added', 'config.json'), undefined);
      now += 1;
      assert.ok(await indexer.servedFile('mnist/added', 'config.json'));
      await burst();
      assert.equal(indexer.scans, 2);
    } finally {
      await rm(added, { recursive: true });
    }
  });

  it('serves a model asked for while the first listing is still running', async () => {
    const indexer = new ModelIndexer(
      modelsDir,
      () => {},
      () => 0,
    );
    const listing = indexer.list();
    assert.ok(await indexer.servedFile('mnist/teacher', 'config.json'));
    await listing;
    assert.equal(indexer.scans, 1);
  });

  it("accepts, when bound to every address, only the machine's own addresses and the allowed names", () => {
    const wildcard = { host: '0.0.0.0', port: 8080, allowedHosts: ['Box.LAN'] };
    for (const a of Object.values(networkInterfaces()).flatMap((list) => list ?? [])) {
      const name = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      assert.ok(isAllowedHost(`${name}:8080`, wildcard), name);
    }
    assert.ok(isAllowedHost('box.lan:8080', wildcard));
    assert.ok(isAllowedHost('localhost:8080', { ...wildcard, host: '::' }));
    assert.ok(!isAllowedHost('box.lan:8081', wildcard));
    assert.ok(!isAllowedHost('attacker.example:8080', wildcard));
    assert.ok(!isAllowedHost(undefined, wildcard));
    const lan = { host: '192.0.2.7', port: 80 };
    assert.ok(isAllowedHost('192.0.2.7', lan));
    assert.ok(!isAllowedHost('localhost', lan));
  });

  it('takes log reports only from its own page, and prints them as one plain line', async () => {
    const origin = server.url.slice(0, -1);
    for (const headers of [
      { Origin: 'http://attacker.example' },
      { Origin: 'null' },
      { Origin: `http://localhost:${server.port}` },
      { Origin: '', 'Sec-Fetch-Site': 'cross-site' },
    ]) {
      const { Origin, ...rest } = headers as Record<string, string>;
      const response = await raw('/api/log', {
        method: 'POST',
        headers: { ...(Origin === '' ? {} : { Origin }), 'Content-Type': 'text/plain', ...rest },
        body: JSON.stringify({ message: 'FORGED' }),
      });
      assert.equal(response.status, 403, JSON.stringify(headers));
    }
    for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      assert.equal((await report('FORGED', { 'Content-Type': type })).status, 415, type);
    }
    assert.ok(!logs.some((l) => l.includes('FORGED')));
    const sent = await raw('/api/log', {
      method: 'POST',
      headers: { 'Sec-Fetch-Site': 'same-origin', 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: 'same-origin without Origin' }),
    });
    assert.equal(sent.status, 204);
    assert.equal(
      (await report('red \x1b[31mALERT\x1b[0m\nladder serve: forged\r\n\x9b2J\x07\x7f')).status,
      204,
    );
    assert.equal(logs.at(-1), 'page: red [31mALERT[0m ladder serve: forged 2J');
    assert.ok(logs.includes('page: same-origin without Origin'));
    assert.ok(origin.startsWith('http://127.0.0.1:'));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for them is the point
    assert.ok(!logs.some((l) => /[\u0000-\u001f\u007f-\u009f]/.test(l)));
  });
});
