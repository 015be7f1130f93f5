import * as assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { checkLaunchable, parseMaster, rankEnv } from '../cli/launch.js';
import { addonPath } from '../engine/torch/addon.js';
import { writeTinyFeatureNet } from '../eval/fixtures/tiny-models.js';
import { loadTensors } from '../io/safetensors.js';
import { testBackend } from '../test-utils/backend.js';
import { writeTinyTeacher } from '../test-utils/tiny-models.js';
import { isRankZero, launchEnv } from './data-parallel.js';
import { train } from './loop.js';

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

  it('refuses a launch of a trainer that does not say it splits its batches, before touching its folder', async () => {
    const launched = { WORLD_SIZE: '2', RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '1' };
    const saved = Object.fromEntries(Object.keys(launched).map((k) => [k, process.env[k]]));
    Object.assign(process.env, launched);
    const out = join(tmpdir(), 'ladder-dp-refused-never-made');
    try {
      await assert.rejects(
        train({}, () => ({}), {
          outDir: out,
          totalSteps: 1,
          seed: 0,
          checkpointEvery: 1,
          logEvery: 1,
          resume: false,
          label: 'my trainer',
        }),
        /my trainer does not split its batches over processes yet/,
      );
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    assert.equal(existsSync(out), false);
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
    assert.throws(() => checkLaunchable('sample', 2), /sample runs in one process \(WORLD_SIZE=2/);
    checkLaunchable('sample', undefined);
    checkLaunchable('eval', 2);
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
    await writeTinyFeatureNet(join(root, 'mnist-features'));
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
    return maxTensorDiff(file(a), file(b));
  }

  async function maxTensorDiff(a: string, b: string): Promise<number> {
    const [x, y] = await Promise.all([loadTensors(a), loadTensors(b)]);
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
      'LADD-DMD (fake score, distribution matching, backward simulation)',
      ['distill', '--method', 'ladd-dmd', '--teacher', 'TEACHER', '--limit', '32', '--warmup', '1', ...heads],
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

  // PADD's ladder: an MSE stage, then an adversarial stage (x0 warm-up, conditional and relax phases), each phase a
  // run of the loop; every phase's last checkpoint is compared.
  const padd = (schedule: string, out: string, ...extra: string[]) => [
    ...['distill', '--method', 'padd', '--teacher', teacher, '--schedule', schedule, '--data', 'real'],
    ...['--limit', '32', '--head-channels', '8', '--head-groups', '4', '--d-updates', '2', '--batch', '8'],
    ...['--iterations', '4', '--out', out, ...extra],
  ];
  async function maxPaddDiff(a: string, b: string, stages: readonly string[]): Promise<number> {
    let max = 0;
    let phases = 0;
    for (const stage of stages) {
      for (const phase of await readdir(join(a, stage), { withFileTypes: true })) {
        if (!phase.isDirectory()) continue;
        const latest = JSON.parse(
          await readFile(join(a, stage, phase.name, 'checkpoints', 'latest.json'), 'utf8'),
        ) as { step: number };
        const diff = await maxCheckpointDiff(
          join(a, stage, phase.name),
          join(b, stage, phase.name),
          latest.step,
        );
        max = Math.max(max, diff);
        phases += 1;
      }
      max = Math.max(
        max,
        await maxTensorDiff(join(a, stage, 'weights.safetensors'), join(b, stage, 'weights.safetensors')),
      );
    }
    assert.ok(phases > stages.length, `compared ${phases} phases`);
    return max;
  }

  it("PADD: 2 processes at global batch 8 reach 1 process's weights in every phase of every stage", async () => {
    const one = join(root, 'padd-1');
    const two = join(root, 'padd-2');
    await ladder(padd('4:mse,2,1', one));
    const { stderr } = await ladder(['launch', '--nproc', '2', '--', ...padd('4:mse,2,1', two)]);
    assert.match(stderr, /launch: 2 of 2 processes/);
    const diff = await maxPaddDiff(one, two, ['stage-2', 'stage-1']);
    assert.ok(diff < 1e-5, `max difference ${diff}`);
  });

  it('PADD: a launch continues a ladder from a finished stage that only rank 0 reads', async () => {
    const switched = join(root, 'padd-switched');
    await ladder(padd('4:mse,2', switched));
    // Rank 1 takes the finished stage (the next stage's teacher) and the decisions from rank 0.
    await ladder(['launch', '--nproc', '2', '--', ...padd('4:mse,2,1', switched, '--from-stage', '1')]);
    const diff = await maxPaddDiff(join(root, 'padd-1'), switched, ['stage-1']);
    assert.ok(diff < 1e-5, `max difference ${diff}`);
  });

  it('eval in 2 processes writes the numbers and grids of 1 process', async () => {
    const args = (json: string) => [
      ...['eval', '--model', teacher, '--features', join(root, 'mnist-features'), '--samples', '24'],
      ...['--batch', '4', '--steps', '2', '--bootstrap', '20', '--ref-limit', '30', '--kid-subsets', '2'],
      ...['--grid-per-class', '2', '--cache-dir', join(root, 'cache'), '--json', json],
    ];
    const one = join(root, 'eval-1', 'teacher.json');
    const two = join(root, 'eval-2', 'teacher.json');
    await ladder(args(one));
    await ladder(['launch', '--nproc', '2', '--', ...args(two)]);
    const read = async (file: string) => JSON.parse(await readFile(file, 'utf8'));
    const [a, b] = [await read(one), await read(two)];
    assert.equal(b.processes, 2);
    const scores = (json: { results: Record<string, unknown>[] }) =>
      json.results.map(({ msPerImage, timedBatches, ...rest }) => rest);
    assert.deepEqual(scores(b), scores(a));
    assert.deepEqual(
      await readFile(join(root, 'eval-2', 'teacher-2steps.png')),
      await readFile(join(root, 'eval-1', 'teacher-2steps.png')),
    );
  });

  it("two launchers (--nnodes 2, one process each, as on two machines) reach 1 process's weights", async () => {
    const args = (out: string) => [
      ...['train-teacher', '--ae', join(root, 'ae'), '--channels', '8,16', '--limit', '32', '--batch', '8'],
      ...['--iterations', '3', '--out', out],
    ];
    const one = join(root, 'nodes-1');
    const two = join(root, 'nodes-2');
    await ladder(args(one));
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
      });
    });
    const node = (rank: number) =>
      ladder([
        ...['launch', '--nproc', '1', '--nnodes', '2', '--node-rank', String(rank)],
        ...['--master', `127.0.0.1:${port}`, '--', ...args(two)],
      ]);
    const [first] = await Promise.all([node(0), node(1)]);
    assert.match(first.stderr, /launch: 1 of 2 processes/);
    assert.ok((await maxCheckpointDiff(one, two, 3)) < 1e-5);
  });

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
