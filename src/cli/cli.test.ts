// Bad inputs through the real command line: each must exit non-zero with a message a user can act on.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../core/rng.js';
import { saveModelFolder, WEIGHTS_FILE } from '../models/folder.js';
import { initUNet } from '../nn/unet.js';
import { testBackend } from '../test-utils/backend.js';
import { tinyTeacherConfig, writeTinyTeacher } from '../test-utils/tiny-models.js';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));
const ladder = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    encoding: 'utf8',
    env: { ...process.env },
  });

const teacherConfig = tinyTeacherConfig();

let root = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-cli-'));
  await writeTinyTeacher(root);
});

describe('ladder CLI', () => {
  it('lists its commands', () => {
    const r = ladder('--help');
    assert.equal(r.status, 0);
    for (const verb of [
      'train-ae',
      'train-teacher',
      'sample',
      'card',
      'bench',
      'train-features',
      'eval',
      'report',
      'distill',
      'synth',
      'serve',
    ])
      assert.match(r.stdout, new RegExp(verb));
  });

  it('names the available backends when asked for an unknown one', () => {
    const r = ladder('--backend', 'tpu', 'bench');
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /Unknown backend 'tpu'.*Known backends: wasm, cpu, torch, webgpu; available on this machine: wasm, cpu/,
    );
  });

  it('says how to install a missing dataset', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', main, 'train-ae', '--data', 'fashion-mnist', '--out', join(root, 'x')],
      {
        encoding: 'utf8',
        env: { ...process.env, LADDER_FASHION_MNIST_DIR: join(root, 'nowhere') },
      },
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Fashion-MNIST not found: .* run `apt-get install dataset-fashion-mnist`/);
  });

  it('samples a model folder into a grid (tiny untrained model)', () => {
    const r = ladder(
      'sample',
      '--model',
      join(root, 'teacher'),
      '--n',
      '2',
      '--classes',
      '0-2',
      '--out',
      join(root, 'grid.png'),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /6 images/);
  });

  it('rejects a corrupt weights file', async () => {
    const dir = join(root, 'corrupt');
    await saveModelFolder(dir, teacherConfig, initUNet(teacherConfig.unet, new Rng(0)), {});
    const bytes = await readFile(join(dir, WEIGHTS_FILE));
    await writeFile(join(dir, WEIGHTS_FILE), bytes.subarray(0, bytes.length - 100));
    const r = ladder('sample', '--model', dir, '--out', join(root, 'c.png'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /corrupt safetensors file/);
  });

  it('rejects weights whose shapes do not match the config, naming the tensor', async () => {
    const dir = join(root, 'mismatch');
    const wider = { ...teacherConfig.unet, channels: [8, 16] };
    await saveModelFolder(dir, teacherConfig, initUNet(wider, new Rng(0)), {});
    const r = ladder('sample', '--model', dir, '--out', join(root, 'm.png'));
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /does not match the model config: .*down\.1\.res\.0\.conv1\.w has shape \[3,3,8,16\], expected \[3,3,8,8\]/,
    );
  });

  it('says which autoencoder is missing', async () => {
    const dir = join(root, 'orphan');
    await saveModelFolder(
      dir,
      { ...teacherConfig, autoencoder: '../gone' },
      initUNet(teacherConfig.unet, new Rng(0)),
      {},
    );
    const r = ladder('sample', '--model', dir, '--out', join(root, 'o.png'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /names autoencoder "\.\.\/gone" .* which is missing/);
  });

  it('refuses an output folder it cannot write', () => {
    const r = ladder('train-ae', '--out', '/etc/hostname/run', '--limit', '10', '--steps', '1');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot write to folder \/etc\/hostname\/run/);
  });

  it('rejects an invalid config with the key path', async () => {
    const dir = join(root, 'badconfig');
    await saveModelFolder(dir, teacherConfig, initUNet(teacherConfig.unet, new Rng(0)), {});
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ ...teacherConfig, unet: { ...teacherConfig.unet, channels: 'wide' } }),
    );
    const r = ladder('sample', '--model', dir, '--out', join(root, 'b.png'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /config\.json is not a valid config: unet\.channels: Expected array/);
  });
});
