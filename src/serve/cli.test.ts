// `ladder serve` and `bench-browser` as commands: flags, the port-in-use message, start and stop.
import * as assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
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
    const port = await freePort();
    const stderr = process.stderr.write.bind(process.stderr);
    const said: string[] = [];
    process.stderr.write = ((chunk: string) => said.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      const serving = run('serve', '--models', models, '--web-dir', web, '--port', String(port));
      // The "open" line comes right before the command starts waiting for Ctrl-C.
      for (let i = 0; i < 200 && !said.some((l) => l.includes('open http')); i++) {
        await new Promise((wait) => setTimeout(wait, 25));
      }
      const page = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(page.status, 200);
      process.emit('SIGINT');
      await serving;
    } finally {
      process.stderr.write = stderr;
    }
    assert.ok(said.some((l) => l.includes(`open http://127.0.0.1:${port}/`)));
    assert.ok(said.some((l) => l.includes('0 model(s)')));
    await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
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
