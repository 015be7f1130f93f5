// The same tiny training run on wasm and on torch follows the same loss curve (float tolerance).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { availableBackends, initBackend } from '../engine/backend.js';
import { initUNet, unetForward } from '../nn/unet.js';
import { readRunLog } from '../test-utils/run-log.js';
import { TINY_UNET } from './fixtures/tiny.js';
import { ADAM_DEFAULTS, AdamW } from './optim.js';

const fixture = fileURLToPath(new URL('./fixtures/tiny-run.ts', import.meta.url));

async function lossCurve(backend: string): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), `ladder-curve-${backend}-`));
  const run = spawnSync(process.execPath, ['--import', 'tsx', fixture, dir, '15'], {
    encoding: 'utf8',
    env: { ...process.env, LADDER_BACKEND: backend, LADDER_TORCH_THREADS: '1' },
  });
  assert.equal(run.status, 0, run.stderr);
  return (await readRunLog(dir)).map((l) => l.netLoss as number);
}

describe('backends agree on training', async () => {
  const torch = (await availableBackends()).includes('torch');
  it('a tiny U-Net run gives the same loss curve on torch as on wasm', {
    skip: !torch && 'torch addon not built',
  }, async () => {
    const [wasm, native] = [await lossCurve('wasm'), await lossCurve('torch')];
    assert.equal(wasm.length, 15);
    assert.equal(native.length, 15);
    for (const [i, l] of wasm.entries()) {
      assert.ok(
        Math.abs(l - native[i]!) <= 1e-3 * Math.max(1, Math.abs(l)),
        `step ${i + 1}: wasm ${l} vs torch ${native[i]}`,
      );
    }
    assert.ok(wasm[14]! < wasm[0]!, 'the run should learn');
  });
});

describe('torch backend memory over a long run', async () => {
  const torch = (await availableBackends()).includes('torch');
  it('keeps tensor counts, native bytes and RSS stable over 1000 training updates', {
    skip: !torch && 'torch addon not built',
  }, async () => {
    await initBackend('torch');
    const rng = new Rng(0);
    let params = initUNet(TINY_UNET, rng);
    const optimizer = new AdamW(ADAM_DEFAULTS);
    const names = Object.keys(params);
    // Exact counts (tfjs tensors, libtorch tensors and bytes) catch a leak; RSS is read after a full GC and with the
    // backend's reuse cache emptied, so what is left of it is the process's real footprint.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const snapshot = () => {
      gc();
      (tf.backend() as unknown as { emptyCache(): void }).emptyCache();
      const m = tf.memory() as tf.MemoryInfo & { numNativeTensors: number; numNativeBytes: number };
      return { counts: [m.numTensors, m.numNativeTensors, m.numNativeBytes], rss: process.memoryUsage().rss };
    };
    let early = snapshot();
    for (let step = 0; step < 1000; step++) {
      const x = randn(rng, [4, 6, 6, 1]) as tf.Tensor4D;
      const t = tf.tensor1d([100, 300, 600, 900]);
      const labels = tf.tensor1d([0, 1, 2, 1], 'int32');
      const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
        const p = Object.fromEntries(names.map((n, i) => [n, xs[i]!]));
        return unetForward(p, TINY_UNET, x, t, labels).out.sub(x).square().mean() as tf.Scalar;
      })(names.map((n) => params[n]!));
      value.dataSync();
      const update = optimizer.apply(params, Object.fromEntries(names.map((n, i) => [n, grads[i]!])));
      params = update.params;
      update.gradNorm.dispose();
      tf.dispose([value, ...grads, x, t, labels]);
      if (step === 199) early = snapshot();
    }
    const late = snapshot();
    assert.deepEqual(
      late.counts,
      early.counts,
      'tensor counts or native bytes grew ([tfjs, libtorch, bytes])',
    );
    const growthMiB = (late.rss - early.rss) / 2 ** 20;
    assert.ok(growthMiB < 64, `RSS grew by ${growthMiB.toFixed(1)} MiB over 800 updates`);
    tf.dispose(Object.values(params));
    optimizer.dispose();
  });
});
