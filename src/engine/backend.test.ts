// Backend selection: default, LADDER_BACKEND, explicit names, errors for unknown/unavailable backends.
import * as assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import * as tf from '../core/tf.js';
import { availableBackends, BACKEND_NAMES, currentBackend, initBackend } from './backend.js';
import { LADDER_WASM_KERNELS } from './wasm-kernels.js';

const savedEnv = process.env.LADDER_BACKEND;

function setEnv(value: string | undefined): void {
  if (value === undefined) delete process.env.LADDER_BACKEND;
  else process.env.LADDER_BACKEND = value;
}

describe('initBackend', () => {
  afterEach(() => setEnv(savedEnv));

  it('currentBackend throws before any backend is initialised', () => {
    assert.throws(() => currentBackend(), /call initBackend\(\) first/);
  });

  it('defaults to wasm, with ladder kernels registered', async () => {
    setEnv(undefined);
    assert.equal(await initBackend(), 'wasm');
    assert.equal(currentBackend(), 'wasm');
    assert.equal(tf.getBackend(), 'wasm');
    for (const name of LADDER_WASM_KERNELS) assert.ok(tf.getKernel(name, 'wasm'), `${name} not registered`);
    assert.equal(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'), true, 'wasm runs without SIMD');
  });

  it('is cheap and idempotent for the active backend', async () => {
    await initBackend('wasm');
    const instance = tf.engine().registry.wasm;
    assert.equal(await initBackend('wasm'), 'wasm');
    assert.equal(tf.engine().registry.wasm, instance);
  });

  it('follows LADDER_BACKEND, and an explicit name wins over it', async () => {
    setEnv(' CPU ');
    assert.equal(await initBackend(), 'cpu');
    assert.equal(currentBackend(), 'cpu');
    assert.equal(await initBackend('wasm'), 'wasm');
    assert.equal(currentBackend(), 'wasm');
  });

  it('puts tensors created after a switch on the new backend', async () => {
    await initBackend('cpu');
    const onCpu = tf.ones([2]);
    await initBackend('wasm');
    const onWasm = tf.ones([2]);
    const backendOf = (t: tf.Tensor): unknown => tf.engine().state.tensorInfo.get(t.dataId)?.backend;
    assert.equal(backendOf(onCpu), tf.engine().registry.cpu);
    assert.equal(backendOf(onWasm), tf.engine().registry.wasm);
    tf.dispose([onCpu, onWasm]);
  });

  it('rejects an unknown name, listing the known and the available backends', async () => {
    await assert.rejects(initBackend('tpu'), (e: Error) => {
      assert.match(e.message, /Unknown backend 'tpu'/);
      assert.match(e.message, new RegExp(`Known backends: ${BACKEND_NAMES.join(', ')}`));
      assert.match(e.message, /available on this machine: wasm, cpu/);
      return true;
    });
  });

  it('names LADDER_BACKEND when the bad name came from it', async () => {
    setEnv('gpu');
    await assert.rejects(initBackend(), /Unknown backend 'gpu' \(from LADDER_BACKEND\)/);
  });

  it('explains how to install webgpu support', async () => {
    await assert.rejects(initBackend('webgpu'), (e: Error) => {
      assert.match(e.message, /The 'webgpu' backend is unavailable/);
      assert.match(e.message, /npm install webgpu @tensorflow\/tfjs-backend-webgpu@4\.22\.0/);
      return true;
    });
    assert.equal(currentBackend(), 'wasm', 'a failed switch leaves the active backend alone');
  });

  it('either starts torch or says why it is unavailable', async () => {
    try {
      assert.equal(await initBackend('torch'), 'torch');
    } catch (e) {
      assert.match((e as Error).message, /^The 'torch' backend is unavailable: .+/);
    } finally {
      await initBackend('wasm');
    }
  });

  it('lists wasm and cpu as available, webgpu not', async () => {
    const available = await availableBackends();
    assert.ok(available.includes('wasm') && available.includes('cpu'));
    assert.ok(!available.includes('webgpu'));
  });
});
