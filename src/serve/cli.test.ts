// `ladder serve` and `bench-browser` as commands: flags, the port-in-use message, start and stop, allowed hosts.
import * as assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { registerServeCommands } from '../cli/serve.js';
import { benchPlan } from './browser.js';
import type { ModelEntry } from './protocol.js';

let root = '';
let models = '';
let web = '';

/** The serve commands on a fresh program that throws instead of exiting. */
function ladder(): Command {
  const program = new Command('ladder')
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerServeCommands(program);
  return program;
}

const run = (...args: string[]) => ladder().parseAsync(args, { from: 'user' });

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((ready) => probe.listen(0, '127.0.0.1', ready));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((done) => probe.close(() => done()));
  return port;
}

/** Runs `ladder serve <args>` on a free port, calls `during` while it serves; returns what it said. */
async function whileServing(args: string[], during: (port: number) => Promise<void>): Promise<string[]> {
  const port = await freePort();
  const stderr = process.stderr.write.bind(process.stderr);
  const said: string[] = [];
  process.stderr.write = ((chunk: string) => said.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    const serving = run('serve', '--models', models, '--web-dir', web, '--port', String(port), ...args);
    // The "open" line comes right before the command starts waiting for Ctrl-C.
    for (let i = 0; i < 200 && !said.some((l) => l.includes('open http')); i++) {
      await new Promise((wait) => setTimeout(wait, 25));
    }
    await during(port);
    process.emit('SIGINT');
    await serving;
  } finally {
    process.stderr.write = stderr;
  }
  return said;
}

/** The status of GET / on 127.0.0.1:`port` sent with Host: `host` (fetch would not send it as given). */
const statusFor = (port: number, host: string) =>
  new Promise<number>((done, fail) => {
    get({ host: '127.0.0.1', port, path: '/', headers: { Host: host } }, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    }).on('error', fail);
  });

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ladder-serve-cli-'));
  models = join(root, 'models');
  web = join(root, 'web');
  await mkdir(models);
  await mkdir(web);
  await writeFile(join(web, 'index.html'), '<!doctype html><title>ladder</title>');
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('ladder serve command', () => {
  it('rejects a bad port or browser backend with the flag named', async () => {
    await assert.rejects(
      run('serve', '--port', '70000'),
      /--port must be an integer from 0 to 65535, got "70000"/,
    );
    await assert.rejects(run('bench-browser', '--web-backend', 'metal'), /unknown browser backend "metal"/);
  });

  it('serves until interrupted', async () => {
    let port = 0;
    const said = await whileServing([], async (p) => {
      port = p;
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
    });
    assert.ok(said.some((l) => l.includes(`open http://127.0.0.1:${port}/`)));
    assert.ok(said.some((l) => l.includes('0 model(s)')));
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
  });

  it('answers requests addressed by an --allowed-host name, and by no other name', async () => {
    const args = ['--allowed-host', 'box.lan, other.lan', '--allowed-host', 'Third.lan'];
    await whileServing(args, async (port) => {
      for (const name of ['box.lan', 'other.lan', 'third.lan', 'localhost', '127.0.0.1'])
        assert.equal(await statusFor(port, `${name}:${port}`), 200, name);
      for (const host of [`attacker.example:${port}`, 'box.lan', `box.lan:${port + 1}`])
        assert.equal(await statusFor(port, host), 421, host);
    });
    await assert.rejects(
      run('serve', '--allowed-host', 'box.lan:8080'),
      /--allowed-host takes host names without a port, got "box\.lan:8080"/,
    );
  });

  it('says when the port is taken', async () => {
    const busy = createServer();
    await new Promise<void>((ready) => busy.listen(0, '127.0.0.1', ready));
    const { port } = busy.address() as { port: number };
    try {
      await assert.rejects(
        run('serve', '--models', models, '--web-dir', web, '--port', String(port)),
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use: .*another with --port`),
      );
    } finally {
      busy.close();
    }
  });
});

describe('browser benchmark plan', () => {
  const info = (path: string, kind: 'teacher' | 'student', steps: readonly number[] = [1]) =>
    ({
      path,
      name: path,
      dataset: 'mnist',
      kind,
      url: `/models/${path}/`,
      steps,
      cfg: 1,
      classNames: [],
    }) as const;

  it('times each teacher at 32 steps and each student made for 1 step at 1', () => {
    const models: ModelEntry[] = [
      info('mnist/teacher', 'teacher'),
      info('mnist/ladd', 'student'),
      info('mnist/padd/stage-4', 'student', [4]),
      { path: 'mnist/bad', name: 'bad', error: 'corrupt' },
    ];
    assert.deepEqual(benchPlan(models), [
      { path: 'mnist/teacher', steps: 32 },
      { path: 'mnist/ladd', steps: 1 },
    ]);
  });

  it('falls back to the teacher at 1 step when there is no student', () => {
    assert.deepEqual(benchPlan([info('mnist/teacher', 'teacher')]), [
      { path: 'mnist/teacher', steps: 32 },
      { path: 'mnist/teacher', steps: 1 },
    ]);
  });
});
