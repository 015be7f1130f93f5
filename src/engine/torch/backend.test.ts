// Torch backend bookkeeping: storage, reads, disposal, memory, errors, and leaks in a training loop.
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as tf from '../../core/tf.js';
import { loadAddonFrom } from './addon.js';
import type { TorchBackend } from './backend.js';
import { registerTorchBackend } from './register.js';
import { torchSkip } from './test-helpers.js';

function nativeStats(): { tensors: number; bytes: number } {
  const m = tf.memory() as tf.MemoryInfo & { numNativeTensors: number; numNativeBytes: number };
  return { tensors: m.numNativeTensors, bytes: m.numNativeBytes };
}

describe('torch addon loading errors', () => {
  it('a missing addon file names the build command and libtorch', () => {
    assert.throws(
      () => loadAddonFrom('/nonexistent/ladder_torch.node'),
      /not built.*npm run build:native.*libtorch-dev.*LIBTORCH=/,
    );
  });

  it('a file that is not an addon says loading failed and how to rebuild', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ladder-torch-'));
    try {
      const path = join(dir, 'broken.node');
      writeFileSync(path, 'not a shared object');
      assert.throws(() => loadAddonFrom(path), /loading .*broken\.node failed.*npm run build:native/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('torch backend storage', { skip: torchSkip }, () => {
  it('registers once, runs on the configured thread count, and reports the device', async () => {
    await registerTorchBackend({ threads: 2 }); // second call: a no-op
    await tf.setBackend('torch');
    const backend = tf.backend() as TorchBackend;
    assert.equal(backend.info.device, process.env.LADDER_TORCH_DEVICE || 'cpu');
    assert.equal(backend.info.threads, 1);
    assert.equal(backend.floatPrecision(), 32);
    assert.equal(backend.epsilon(), 1e-7);
  });

  it('write/readSync/read round-trip float32, int32 and bool values', async () => {
    await tf.setBackend('torch');
    const f = tf.tensor([1.5, -2, 3.25, 0], [2, 2]);
    const i = tf.tensor([1, -2, 2147483647], [3], 'int32');
    const b = tf.tensor([true, false, true], [3], 'bool');
    assert.deepEqual(Array.from(f.dataSync()), [1.5, -2, 3.25, 0]);
    assert.deepEqual(Array.from(await i.data()), [1, -2, 2147483647]);
    assert.ok(i.dataSync() instanceof Int32Array);
    assert.deepEqual(Array.from(b.dataSync()), [1, 0, 1]);
    assert.ok(b.dataSync() instanceof Uint8Array);
    assert.deepEqual(await f.array(), [
      [1.5, -2],
      [3.25, 0],
    ]);
    tf.dispose([f, i, b]);
  });

  it('dispose frees tfjs data ids and native tensors; clones share data until both are gone', async () => {
    await tf.setBackend('torch');
    const ids = tf.engine().backend.numDataIds();
    const native = nativeStats().tensors;
    const x = tf.tensor([1, 2, 3]);
    const y = tf.clone(x);
    assert.equal(tf.engine().backend.numDataIds(), ids + 1);
    x.dispose();
    assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3]);
    y.dispose();
    assert.equal(tf.engine().backend.numDataIds(), ids);
    assert.equal(nativeStats().tensors, native);
  });

  it('memory() reports native tensor count and bytes', async () => {
    await tf.setBackend('torch');
    const before = nativeStats();
    const x = tf.zeros([256, 256]);
    const after = nativeStats();
    assert.equal(after.tensors, before.tensors + 1);
    assert.ok(after.bytes >= before.bytes + 256 * 256 * 4);
    x.dispose();
  });

  it('moves tensors created on the cpu backend when torch kernels use them', async () => {
    await tf.setBackend('cpu');
    const onCpu = tf.tensor([1, 2, 3, 4], [2, 2]);
    const reshaped = onCpu.reshape([4]); // cpu shares the data id between both shapes
    await tf.setBackend('torch');
    assert.deepEqual(Array.from(tf.add(onCpu, 1).dataSync()), [2, 3, 4, 5]);
    assert.deepEqual(Array.from(tf.mul(reshaped, 2).dataSync()), [2, 4, 6, 8]);
    tf.dispose([onCpu, reshaped]);
  });

  it('variables assign and update in place under tidy', async () => {
    await tf.setBackend('torch');
    const v = tf.variable(tf.tensor([1, 2]));
    tf.tidy(() => v.assign(v.add(1)));
    assert.deepEqual(Array.from(v.dataSync()), [2, 3]);
    v.dispose();
  });

  it('keeps string tensors in JS and rejects complex64 with a clear message', async () => {
    await tf.setBackend('torch');
    const s = tf.tensor(['a', 'bc']);
    assert.deepEqual(s.arraySync(), ['a', 'bc']);
    s.dispose();
    assert.throws(() => tf.complex([1], [2]), /complex64|Complex/);
  });

  it('a kernel the backend lacks fails naming the kernel, with no fallback to another backend', async () => {
    await tf.setBackend('torch');
    const x = tf.tensor([3, 1, 3]);
    assert.throws(() => tf.unique(x), /Kernel 'Unique' not registered for backend 'torch'/);
    assert.equal(tf.getBackend(), 'torch');
    x.dispose();
  });

  it('native errors become JS errors naming the op', async () => {
    await tf.setBackend('torch');
    const a = tf.zeros([2, 3]);
    const b = tf.zeros([4, 5]);
    assert.throws(() => tf.gather(a, tf.tensor([7], [1], 'int32')), /ladder_torch op 'gather'/);
    assert.throws(
      () => tf.engine().runKernel('BatchMatMul', { a, b }, { transposeA: false, transposeB: false }),
      /ladder_torch op 'matmul'/,
    );
    tf.dispose([a, b]);
  });

  it('a small conv + GroupNorm + Adam training loop leaks no tensors, data ids, native tensors or memory', async () => {
    await tf.setBackend('torch');
    const w1 = tf.variable(tf.randomNormal<tf.Rank.R4>([3, 3, 2, 8], 0, 0.2, 'float32', 1));
    const w2 = tf.variable(tf.randomNormal<tf.Rank.R4>([3, 3, 8, 2], 0, 0.2, 'float32', 2));
    const gamma = tf.variable(tf.ones([8]));
    const x = tf.randomNormal<tf.Rank.R4>([4, 8, 8, 2], 0, 1, 'float32', 3);
    const opt = tf.train.adam(1e-3);
    const step = () => {
      const cost = opt.minimize(() => {
        const h = tf.conv2d(x, w1, 2, 'same');
        const { mean, variance } = tf.moments(h.reshape([4, 4, 4, 2, 4]), [1, 2, 4], true);
        const n = h.reshape([4, 4, 4, 2, 4]).sub(mean).mul(variance.add(1e-5).rsqrt()).reshape([4, 4, 4, 8]);
        const a = tf.relu(n.mul(gamma)) as tf.Tensor4D;
        const up = tf.image.resizeNearestNeighbor(a, [8, 8]);
        return tf.mean(tf.square(tf.conv2d(up, w2, 1, 'same').sub(x)));
      }, true);
      cost?.dispose();
    };
    for (let i = 0; i < 5; i++) step(); // Adam creates its slots on the first step
    const tensors = tf.memory().numTensors;
    const ids = tf.engine().backend.numDataIds();
    const native = nativeStats();
    const rss = process.memoryUsage().rss;
    for (let i = 0; i < 60; i++) step();
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(tf.engine().backend.numDataIds(), ids);
    assert.equal(nativeStats().tensors, native.tensors);
    assert.equal(nativeStats().bytes, native.bytes);
    const growthMiB = (process.memoryUsage().rss - rss) / 2 ** 20;
    assert.ok(growthMiB < 32, `RSS grew by ${growthMiB.toFixed(1)} MiB over 60 steps`);
    opt.dispose();
    tf.dispose([w1, w2, gamma, x]);
  });
});
