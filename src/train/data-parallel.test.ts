import * as assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { checkLaunchable, parseMaster, rankEnv } from '../cli/launch.js';
import { addonPath } from '../engine/torch/addon.js';
import { loadTensors } from '../io/safetensors.js';
import { testBackend } from '../test-utils/backend.js';
import { writeTinyTeacher } from '../test-utils/tiny-models.js';
import { isRankZero, launchEnv } from './data-parallel.js';

const main = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const run = promisify(execFile);

describe('data parallelism: the launch environment', () => {
  it('reads the variables of torchrun and ladder launch, and is a single process without them', () => {
    assert.equal(launchEnv({}), undefined);
    assert.equal(launchEnv({ WORLD_SIZE: '1', RANK: '0' }), undefined);
    assert.deepEqual(
      launchEnv({ WORLD_SIZE: '4', RANK: '3', LOCAL_RANK: '1', MASTER_ADDR: 'h0', MASTER_PORT: '29500' }),
      { rank: 3, worldSize: 4, localRank: 1, masterAddr: 'h0', masterPort: 29500 },
    );
    assert.equal(isRankZero({ WORLD_SIZE: '2', RANK: '1', MASTER_ADDR: 'h', MASTER_PORT: '1' }), false);
    assert.equal(isRankZero({}), true);
  });

  it('names what is missing or out of range', () => {
    assert.throws(() => launchEnv({ WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }), /RANK=\(unset\)/);
    assert.throws(
      () => launchEnv({ WORLD_SIZE: '2', RANK: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }),
      /RANK=2.*0 <= RANK < WORLD_SIZE/,
    );
    assert.throws(() => launchEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_PORT: '1' }), /MASTER_ADDR is unset/);
    assert.throws(() => launchEnv({ WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: 'h' }), /MASTER_PORT/);
  });

  it('gives each process of each machine its global rank', () => {
    const master = { host: '10.0.0.1', port: 29500 };
    assert.deepEqual(rankEnv({ nproc: 2, nnodes: 3, nodeRank: 1 }, master, 1), {
      RANK: '3',
      WORLD_SIZE: '6',
      LOCAL_RANK: '1',
      LOCAL_WORLD_SIZE: '2',
      GROUP_RANK: '1',
      MASTER_ADDR: '10.0.0.1',
      MASTER_PORT: '29500',
    });
    assert.deepEqual(parseMaster('[::1]:80'), { host: '[::1]', port: 80 });
    assert.throws(() => checkLaunchable('eval', 2), /eval runs in one process \(WORLD_SIZE=2/);
    checkLaunchable('eval', undefined);
    checkLaunchable('distill', 4);
    checkLaunchable('synth', 2);
    assert.throws(() => parseMaster('host'), /ADDRESS:PORT/);
  });
});

// The processes run on libtorch; the torch pass of the suite runs them (the wasm pass has no other backend here).
const onTorch = process.env.LADDER_BACKEND === 'torch' && existsSync(addonPath());

describe('data parallelism on c10d (2 processes, Gloo on loopback)', { skip: !onTorch }, () => {
  let root = '';
  let teacher = '';
  const env = { ...process.env, LADDER_TORCH_THREADS: '1', LADDER_DIST_TIMEOUT: '30' };
  const ladder = (args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    run(process.execPath, ['--import', 'tsx', main, '--backend', 'torch', ...args], {
      env: { ...env, ...extraEnv },
      maxBuffer: 1 << 24,
    });
  before(async () => {
    await testBackend();
    root = await mkdtemp(join(tmpdir(), 'ladder-dp-'));
    teacher = await writeTinyTeacher(root);
    // ADD's frozen feature net (its quality does not matter here).
    await ladder([
      'train-features',
      ...[
        '--data',
        'fashion-mnist',
        '--limit',
        '64',
        '--test-limit',
        '64',
        '--iterations',
        '2',
        '--batch',
        '8',
      ],
      ...['--channels', '8,16', '--feature-dim', '16', '--out', join(root, 'features')],
    ]);
  });
  after(() => rm(root, { recursive: true, force: true }));

  /** Largest difference over every tensor of two checkpoints (weights, EMA, optimiser moments). */
  async function maxCheckpointDiff(a: string, b: string, step: number): Promise<number> {
    const file = (dir: string) =>
      join(dir, 'checkpoints', `step-${String(step).padStart(8, '0')}`, 'state.safetensors');
    const [x, y] = await Promise.all([loadTensors(file(a)), loadTensors(file(b))]);
    assert.deepEqual(Object.keys(x.tensors).sort(), Object.keys(y.tensors).sort());
    let max = 0;
    for (const [name, t] of Object.entries(x.tensors)) {
      const u = t.dataSync();
      const v = y.tensors[name]!.dataSync();
      for (let i = 0; i < u.length; i++) max = Math.max(max, Math.abs(u[i]! - v[i]!));
    }
    return max;
  }

  // Adam divides by the gradients' RMS, so a difference in the last bits of a near-zero gradient grows with every
  // update: a few updates compare the sums, not the chaos after many.
  const heads = ['--head-channels', '8', '--head-groups', '4', '--head-embed', '8', '--d-updates', '2'];
  for (const [name, verb, steps] of [
    ['autoencoder', ['train-ae', '--data', 'mnist', '--channels', '8,8,8', '--limit', '32'], 3],
    ['teacher', ['train-teacher', '--ae', 'AE', '--channels', '8,16', '--limit', '32'], 3],
    [
      'LADD (backward simulation, two discriminator updates)',
      ['distill', '--method', 'ladd', '--teacher', 'TEACHER', '--data', 'real', '--limit', '32', ...heads],
      2,
    ],
    [
      'ADD (R1, distillation term)',
      [
        'distill',
        '--method',
        'add',
        '--teacher',
        'TEACHER',
        '--feature-net',
        'FEATURES',
        '--limit',
        '32',
        ...heads,
      ],
      2,
    ],
  ] as const) {
    it(`${name}: 2 processes at global batch 8 reach 1 process's weights at batch 8`, async () => {
      const args = (out: string) => [
        ...verb.map(
          (a: string) =>
            ({ AE: join(root, 'ae'), TEACHER: teacher, FEATURES: join(root, 'features') })[a] ?? a,
        ),
        ...((verb as readonly string[]).includes('ladd') ? ['--warmup', '1', '--backward-sim'] : []),
        '--batch',
        '8',
        '--iterations',
        String(steps),
        '--out',
        out,
      ];
      const one = join(root, `${name.split(' ')[0]}-1`);
      const two = join(root, `${name.split(' ')[0]}-2`);
      await ladder(args(one));
      const { stderr } = await ladder(['launch', '--nproc', '2', '--', ...args(two)]);
      assert.match(stderr, /launch: 2 of 2 processes/);
      const diff = await maxCheckpointDiff(one, two, steps);
      assert.ok(diff < 1e-5, `max difference ${diff}`);
      assert.ok(existsSync(join(two, 'config.json')), 'rank 0 writes the model folder');
    });
  }

  it('resumes a 1-process run in 2 processes on the same trajectory', async () => {
    const args = (iterations: number, out: string) => [
      ...['train-teacher', '--ae', join(root, 'ae'), '--channels', '8,16', '--limit', '32', '--batch', '8'],
      ...['--iterations', String(iterations), '--out', out],
    ];
    const straight = join(root, 'straight');
    const switched = join(root, 'switched');
    await ladder(args(3, straight));
    await ladder(args(2, switched));
    await ladder(['launch', '--nproc', '2', '--', ...args(3, switched), '--resume']);
    assert.ok((await maxCheckpointDiff(straight, switched, 3)) < 1e-5);
  });

  it('synth in 2 processes writes the same file as in 1, and reuses it', async () => {
    const args = (out: string) => [
      'synth',
      '--teacher',
      teacher,
      '--n',
      '30',
      '--steps',
      '2',
      '--batch',
      '4',
      '--out',
      out,
    ];
    const one = join(root, 'synth-1.safetensors');
    const two = join(root, 'synth-2.safetensors');
    await ladder(args(one));
    await ladder(['launch', '--nproc', '2', '--', ...args(two)]);
    assert.deepEqual(await readFile(two), await readFile(one));
    const before = (await stat(two)).mtimeMs;
    await ladder(['launch', '--nproc', '2', '--', ...args(two)]);
    assert.equal((await stat(two)).mtimeMs, before, 'the set is reused, not made again');
  });

  it('a rank 0 that fails before the rendezvous does not leave the others waiting', async () => {
    const began = Date.now();
    await assert.rejects(
      ladder(['launch', '--nproc', '2', '--', 'train-teacher', '--ae', join(root, 'ae'), '--out', teacher]),
      (err: Error & { stderr: string }) =>
        /already holds a finished model/.test(err.stderr) && /stopping the others/.test(err.stderr),
    );
    assert.ok(Date.now() - began < 60_000, `took ${Date.now() - began} ms`);
  });

  it('refuses a launch of a trainer that does not split its batches', async () => {
    await assert.rejects(
      ladder(
        [
          'distill',
          '--method',
          'padd',
          '--teacher',
          teacher,
          '--iterations',
          '1',
          '--out',
          join(root, 'padd'),
        ],
        {
          WORLD_SIZE: '2',
          RANK: '0',
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: '1',
        },
      ),
      /does not split its batches over processes yet/,
    );
  });

  it('a killed rank stops the other with a clear message; --resume continues from the last checkpoint', async () => {
    const out = join(root, 'killed');
    const args = [
      'launch',
      '--nproc',
      '2',
      '--',
      'train-teacher',
      '--ae',
      join(root, 'ae'),
      '--channels',
      '8,16',
      '--limit',
      '32',
      '--batch',
      '8',
      '--iterations',
      '60',
      '--checkpoint-every',
      '5',
      '--out',
      out,
    ];
    const launch = spawn(process.execPath, ['--import', 'tsx', main, '--backend', 'torch', ...args], {
      env: { ...env, LADDER_DIST_TIMEOUT: '20' },
    });
    let stderr = '';
    launch.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => launch.once('exit', resolve));
    // Kill rank 1 once rank 0 has checkpointed past step 0.
    const checkpoint = join(out, 'checkpoints', 'step-00000005');
    while (!existsSync(checkpoint)) {
      assert.equal(launch.exitCode, null, `the launch ended before its first checkpoint: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const ranks = (await run('pgrep', ['-P', String(launch.pid)])).stdout.trim().split('\n').map(Number);
    assert.equal(ranks.length, 2, `children of the launch: ${ranks.join(', ')}`);
    process.kill(ranks[1]!, 'SIGKILL');
    const began = Date.now();
    const code = await exited;
    assert.notEqual(code, 0);
    assert.ok(Date.now() - began < 60_000, 'the surviving rank stopped within the timeout');
    assert.match(stderr, /failed on rank 0 of 2 \(a rank stopped or timed out\)/);
    assert.match(stderr, /exited with/);

    const resumed = await ladder([...args, '--resume']);
    assert.match(resumed.stderr, /teacher written to/);
    assert.ok(existsSync(join(out, 'config.json')));
  });
});
