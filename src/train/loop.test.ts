import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, realpath, truncate, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { availableBackends } from '../engine/backend.js';
import { decodeSafetensors } from '../io/safetensors.js';
import { disposeParams } from '../nn/params.js';
import { initUNet, unetForward } from '../nn/unet.js';
import { testBackend } from '../test-utils/backend.js';
import { readRunLog } from '../test-utils/run-log.js';
import { latestCheckpointStep } from './checkpoint.js';
import { TINY_UNET } from './fixtures/tiny.js';
import {
  describeSettingsChanges,
  type StepContext,
  type StepMetrics,
  type TrainOptions,
  type TrainStep,
  train,
} from './loop.js';
import { ADAM_DEFAULTS, AdamW } from './optim.js';
import { LOCK_FILE } from './run-lock.js';

const fixture = fileURLToPath(new URL('./fixtures/tiny-run.ts', import.meta.url));
const tsx = ['--import', 'tsx', fixture];
const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'ladder-loop-'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

before(testBackend);
const backends: readonly string[] = await availableBackends();

/**
 * A tiny U-Net regression step for player `net`, recording the steps it runs; with `poisonAt`, that step's loss is
 * NaN the first time it runs.
 */
function tinyNetStep(poisonAt?: number): { step: TrainStep; seen: number[] } {
  const seen: number[] = [];
  let poisoned = false;
  const step = (ctx: StepContext): StepMetrics => {
    seen.push(ctx.step);
    const x = randn(ctx.rng, [2, 4, 4, 1]) as tf.Tensor4D;
    const poison = ctx.step === poisonAt && !poisoned;
    if (poison) poisoned = true;
    const m = ctx.update('net', (p) => {
      const loss = unetForward(p, TINY_UNET, x, tf.tensor1d([1, 2]), tf.tensor1d([0, 1], 'int32'))
        .out.sub(x)
        .square()
        .mean();
      return (poison ? loss.mul(Number.NaN) : loss) as tf.Scalar;
    });
    x.dispose();
    return m;
  };
  return { step, seen };
}

describe('training loop', () => {
  // Every backend ladder trains on, with gradient clipping active at every step: the clipping factor sums squared
  // gradients over all parameters, so a resume that reorders the parameters changes the last bits.
  for (const backend of ['wasm', 'cpu', 'torch'] as const) {
    it(`a run killed with SIGKILL and resumed ends with the same weights as an uninterrupted run (${backend})`, {
      skip: !backends.includes(backend) && `${backend} backend not available`,
    }, async () => {
      const env = { ...process.env, LADDER_BACKEND: backend, LADDER_TORCH_THREADS: '1' };
      const args = (dir: string, ...more: string[]): string[] => [
        ...tsx,
        dir,
        '24',
        '--clip-norm',
        '0.05',
        ...more,
      ];
      const whole = await tmp();
      const run = spawnSync(process.execPath, args(whole), { encoding: 'utf8', env });
      assert.equal(run.status, 0, run.stderr);

      const killed = await tmp();
      const child = spawn(process.execPath, args(killed, '--step-delay-ms', '150'), { stdio: 'ignore', env });
      while (((await latestCheckpointStep(killed).catch(() => undefined)) ?? 0) < 9) await sleep(20);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const stoppedAt = await latestCheckpointStep(killed);
      assert.ok(
        stoppedAt !== undefined && stoppedAt < 24,
        `the run was not interrupted (latest ${stoppedAt})`,
      );
      assert.ok(!existsSync(join(killed, 'final.safetensors')));

      const resumed = spawnSync(process.execPath, args(killed, '--resume'), { encoding: 'utf8', env });
      assert.equal(resumed.status, 0, resumed.stderr);
      const resumeEvent = (await readRunLog(killed)).find((l) => l.event === 'resume');
      assert.equal(resumeEvent?.step, stoppedAt);
      const a = await readFile(join(whole, 'final.safetensors'));
      const b = await readFile(join(killed, 'final.safetensors'));
      const tensorsA = decodeSafetensors(a).tensors;
      const tensorsB = decodeSafetensors(b).tensors;
      const differing = Object.keys(tensorsA).filter(
        (name) => !Buffer.from(tensorsA[name]!.data.buffer).equals(Buffer.from(tensorsB[name]!.data.buffer)),
      );
      assert.deepEqual(differing, [], 'tensors that differ after the resume');
      assert.ok(a.equals(b), 'the weights files should be identical byte for byte');
    });
  }

  it('resumes from the checkpoint before a truncated newest one, and past a damaged latest.json, naming both', async () => {
    const whole = await tmp();
    assert.equal(spawnSync(process.execPath, [...tsx, whole, '12']).status, 0);
    const dir = await tmp();
    assert.equal(spawnSync(process.execPath, [...tsx, dir, '9']).status, 0); // keeps steps 6 and 9
    const newest = join(dir, 'checkpoints', 'step-00000009', 'state.safetensors');
    await truncate(newest, 100);
    await writeFile(join(dir, 'checkpoints', 'latest.json'), '{"step": 9,');
    const resumed = spawnSync(process.execPath, [...tsx, dir, '12', '--resume'], { encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /latest\.json is damaged/);
    assert.match(resumed.stderr, /cannot read checkpoint .*step-00000009.*falling back to step 6/);
    assert.equal((await readRunLog(dir)).find((l) => l.event === 'resume')?.step, 6);
    assert.ok(
      existsSync(join(dir, 'checkpoints', 'damaged-step-00000009')),
      'the damaged checkpoint is kept aside',
    );
    const a = await readFile(join(whole, 'final.safetensors'));
    assert.ok(a.equals(await readFile(join(dir, 'final.safetensors'))), 'the fallback resume is not exact');
  });

  it('refuses a second process on a run folder, naming the holder', async () => {
    const dir = await tmp();
    const child = spawn(process.execPath, [...tsx, dir, '1000', '--step-delay-ms', '100'], {
      stdio: 'ignore',
    });
    while (((await latestCheckpointStep(dir).catch(() => undefined)) ?? 0) < 3) await sleep(20);
    const second = spawnSync(process.execPath, [...tsx, dir, '1000', '--resume'], { encoding: 'utf8' });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.notEqual(second.status, 0);
    assert.match(second.stderr, new RegExp(`in use by another ladder process \\(PID ${child.pid}\\)`));
  });

  it('takes over a lock copied with its folder, and one left by a dead process; keeps a live one', async () => {
    const lockOf = (pid: number, dir: string): string =>
      `${JSON.stringify({ pid, host: hostname(), dir })}\n`;
    const dir = await realpath(await tmp());
    // A live process (this test) holding another folder, whose lock file was copied here with the folder.
    await writeFile(join(dir, LOCK_FILE), lockOf(process.pid, '/elsewhere/run'));
    assert.equal(spawnSync(process.execPath, [...tsx, dir, '3']).status, 0);
    // A dead process's lock on this folder.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    await writeFile(join(dir, LOCK_FILE), lockOf(dead, dir));
    assert.equal(spawnSync(process.execPath, [...tsx, dir, '4', '--resume']).status, 0);
    // A live process holding this folder.
    await writeFile(join(dir, LOCK_FILE), lockOf(process.pid, dir));
    const refused = spawnSync(process.execPath, [...tsx, dir, '5', '--resume'], { encoding: 'utf8' });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, new RegExp(`in use by another ladder process \\(PID ${process.pid}\\)`));
  });

  it('names a setting that an older checkpoint did not record, rather than printing undefined', () => {
    const text = describeSettingsChanges({
      lr: { from: 0.01, to: 0.005 },
      trainingSet: { from: undefined, to: { kind: 'real', dataset: 'mnist' } },
    });
    assert.equal(text, 'lr 0.01 -> 0.005, trainingSet (not recorded) -> {"kind":"real","dataset":"mnist"}');
  });

  it('records each segment of a run resumed with changed settings, and what changed, in the log and the result', async () => {
    const dir = await tmp();
    assert.equal(spawnSync(process.execPath, [...tsx, dir, '6']).status, 0);
    const resumed = spawnSync(process.execPath, [...tsx, dir, '12', '--resume', '--lr', '0.005'], {
      encoding: 'utf8',
    });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming at step 6 with changed settings: lr 0\.01 -> 0\.005/);
    const changed = { lr: { from: 0.01, to: 0.005 } };
    const resumeEvent = (await readRunLog(dir)).find((l) => l.event === 'resume');
    assert.deepEqual(resumeEvent?.changed, changed);
    const segments = JSON.parse(await readFile(join(dir, 'segments.json'), 'utf8'));
    assert.deepEqual(
      segments.map((s: { fromStep: number; toStep: number; changed?: unknown }) => [
        s.fromStep,
        s.toStep,
        s.changed,
      ]),
      [
        [0, 6, undefined],
        [6, 12, changed],
      ],
    );
    assert.match(segments[1].command, /--lr 0\.005$/);
    assert.ok(!segments[1].command.includes('--resume'), 'a segment names the command without --resume');

    // Resuming the finished run again (to redo its outputs) trains nothing and adds no segment.
    assert.equal(spawnSync(process.execPath, [...tsx, dir, '12', '--resume', '--lr', '0.005']).status, 0);
    assert.equal(JSON.parse(await readFile(join(dir, 'segments.json'), 'utf8')).length, 2);
  });

  it('compares a segment with the last process that trained, not with one stopped before its first step', async () => {
    const dir = await tmp();
    const player = { params: initUNet(TINY_UNET, new Rng(1)), optimizer: new AdamW({ ...ADAM_DEFAULTS }) };
    const { step } = tinyNetStep();
    const run = (totalSteps: number, lr: number, more: Partial<TrainOptions> = {}) =>
      train({ net: player }, step, {
        outDir: dir,
        totalSteps,
        seed: 0,
        checkpointEvery: 3,
        logEvery: 1,
        resume: totalSteps > 5,
        settings: { lr },
        ...more,
      });
    await run(5, 1);
    // Stopped before its first step, this process still checkpoints (step 5 is off the cadence) with its segment.
    await run(8, 2, { stopAfter: 0 });
    const result = await run(8, 2);
    assert.deepEqual(
      result.segments?.map((s) => [s.fromStep, s.toStep, s.changed]),
      [
        [0, 5, undefined],
        [5, 8, { lr: { from: 1, to: 2 } }],
      ],
    );
    player.optimizer.dispose();
  });

  it('refuses to start over an existing run unless asked to resume', async () => {
    const dir = await tmp();
    assert.equal(spawnSync(process.execPath, [...tsx, dir, '3']).status, 0);
    const again = spawnSync(process.execPath, [...tsx, dir, '6'], { encoding: 'utf8' });
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /already holds a run .*pass --resume/);
  });

  it('reads the step values back once per log line and never in between', async () => {
    const net = (): { params: ReturnType<typeof initUNet>; optimizer: AdamW } => ({
      params: initUNet(TINY_UNET, new Rng(1)),
      optimizer: new AdamW({ ...ADAM_DEFAULTS }),
    });
    const { step } = tinyNetStep();
    const readsWith = async (logEvery: number): Promise<number> => {
      const player = net();
      const result = await train({ net: player }, step, {
        outDir: await tmp(),
        totalSteps: 20,
        seed: 0,
        checkpointEvery: 100,
        logEvery,
        resume: false,
        profile: 4, // steps 1..4, after the warm-up step 0
      });
      disposeParams(player.params);
      player.optimizer.dispose();
      return Math.round((result.profile?.reads ?? Number.NaN) * 4);
    };
    assert.equal(await readsWith(100), 0);
    assert.equal(await readsWith(2), 2); // the log lines after steps 2 and 4, one read each
  });

  it('catches a NaN at the next log line and rolls back past it, to the checkpoint before it', async () => {
    const dir = await tmp();
    const player = {
      params: initUNet(TINY_UNET, new Rng(1)),
      optimizer: new AdamW({ ...ADAM_DEFAULTS, lr: 1e-2 }),
    };
    const { step, seen } = tinyNetStep(6);
    const result = await train({ net: player }, step, {
      outDir: dir,
      totalSteps: 10,
      seed: 0,
      checkpointEvery: 5,
      logEvery: 4,
      resume: false,
    });
    assert.equal(result.completedSteps, 10);
    // The NaN of step 6 is read with the log line after step 7; the checkpoint at step 5 came before it.
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9]);
    const log = await readRunLog(dir);
    assert.deepEqual(
      log.find((l) => l.event === 'rollback'),
      { event: 'rollback', step: 5, lrScale: 0.5 },
    );
    const nan = tf.tidy(
      () => tf.addN(Object.values(player.params).map((t) => t.isNaN().sum())).dataSync()[0],
    );
    assert.equal(nan, 0);
    disposeParams(player.params);
    player.optimizer.dispose();
  });

  it('rolls back to the last good checkpoint and halves the learning rate on a NaN loss', async () => {
    const dir = await tmp();
    const params = initUNet(TINY_UNET, new Rng(1));
    const player = { params, optimizer: new AdamW({ ...ADAM_DEFAULTS, lr: 1e-2 }) };
    const { step, seen } = tinyNetStep(7);
    const result = await train({ net: player }, step, {
      outDir: dir,
      totalSteps: 10,
      seed: 0,
      checkpointEvery: 3,
      logEvery: 1,
      resume: false,
    });
    assert.equal(result.completedSteps, 10);
    // Steps 0..7, then back to the checkpoint at step 6: 6, 7, 8, 9 again.
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9]);
    const log = await readRunLog(dir);
    assert.deepEqual(
      log.find((l) => l.event === 'rollback'),
      { event: 'rollback', step: 6, lrScale: 0.5 },
    );
    assert.equal(log.at(-1)?.lrScale, 0.5);
    assert.ok(Object.values(player.params).every((t) => !t.isDisposed));
    const finite = tf.tidy(
      () => tf.addN(Object.values(player.params).map((t) => t.isNaN().sum())).dataSync()[0],
    );
    assert.equal(finite, 0);
  });
});
