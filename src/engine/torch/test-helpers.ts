// Test support for the torch backend: availability gate and cpu-vs-torch comparison of tfjs programs.
import * as assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import { Rng } from '../../core/rng.js';
import * as tf from '../../core/tf.js';
import { registerTorchBackend } from './register.js';

/** Why the torch tests are skipped (false when the backend is usable). */
export const torchSkip: string | false = await registerTorchBackend({ threads: 1 }).then(
  () => false,
  (err: unknown) => (err instanceof Error ? err.message : String(err)),
);

/** A tensor's recipe: same values on every backend. */
export interface Input {
  readonly shape: number[];
  readonly dtype: 'float32' | 'int32' | 'bool';
  readonly values: Float32Array | Int32Array | Uint8Array;
}

/** Standard-normal float32 input. */
export function normal(rng: Rng, shape: number[], scale = 1): Input {
  const values = rng.fillNormal(new Float32Array(tf.util.sizeFromShape(shape)));
  if (scale !== 1) for (let i = 0; i < values.length; i++) values[i] = (values[i] ?? 0) * scale;
  return { shape, dtype: 'float32', values };
}

/** Uniform float32 input in [lo, hi). */
export function uniform(rng: Rng, shape: number[], lo: number, hi: number): Input {
  const values = rng.fillUniform(new Float32Array(tf.util.sizeFromShape(shape)));
  for (let i = 0; i < values.length; i++) values[i] = lo + (hi - lo) * (values[i] ?? 0);
  return { shape, dtype: 'float32', values };
}

/** Integers in [lo, hi). */
export function ints(rng: Rng, shape: number[], lo: number, hi: number): Input {
  const values = Int32Array.from({ length: tf.util.sizeFromShape(shape) }, () => lo + rng.int(hi - lo));
  return { shape, dtype: 'int32', values };
}

/** Random booleans. */
export function bools(rng: Rng, shape: number[]): Input {
  const values = Uint8Array.from({ length: tf.util.sizeFromShape(shape) }, () =>
    rng.uniform() < 0.5 ? 1 : 0,
  );
  return { shape, dtype: 'bool', values };
}

/** Fixed values. */
export function fixed(values: number[], shape: number[], dtype: Input['dtype'] = 'float32'): Input {
  const typed =
    dtype === 'int32'
      ? Int32Array.from(values)
      : dtype === 'bool'
        ? Uint8Array.from(values)
        : Float32Array.from(values);
  return { shape, dtype, values: typed };
}

interface Output {
  readonly shape: number[];
  readonly dtype: tf.DataType;
  readonly values: number[];
}

type Program = (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/** Runs `program` on one backend and reads every output back; asserts no tensor leaked. */
export async function runOn(
  backendName: string,
  inputs: readonly Input[],
  program: Program,
): Promise<Output[]> {
  assert.ok(await tf.setBackend(backendName), `backend ${backendName} failed to initialise`);
  assert.equal(tf.getBackend(), backendName);
  const before = tf.memory().numTensors;
  const dataIdsBefore = tf.engine().backend.numDataIds();
  const outs = tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.values, i.shape, i.dtype));
    const result = program(...xs);
    return (Array.isArray(result) ? result : [result]).map((t) => ({
      shape: t.shape.slice(),
      dtype: t.dtype,
      values: Array.from(t.dataSync() as ArrayLike<number>),
    }));
  });
  assert.equal(tf.memory().numTensors, before, `${backendName}: tensors leaked`);
  assert.equal(tf.engine().backend.numDataIds(), dataIdsBefore, `${backendName}: data ids leaked`);
  return outs;
}

/** Asserts torch matches cpu: same shapes, dtypes, and values within atol + rtol * |cpu|. */
export async function expectSameAsCpu(
  inputs: readonly Input[],
  program: Program,
  tol: { atol?: number; rtol?: number } = {},
): Promise<void> {
  const atol = tol.atol ?? 1e-5;
  const rtol = tol.rtol ?? 1e-4;
  const want = await runOn('cpu', inputs, program);
  const got = await runOn('torch', inputs, program);
  assert.equal(got.length, want.length, 'number of outputs');
  want.forEach((w, k) => {
    const g = got[k];
    assert.ok(g !== undefined);
    assert.deepEqual(g.shape, w.shape, `output ${k} shape`);
    assert.equal(g.dtype, w.dtype, `output ${k} dtype`);
    for (let i = 0; i < w.values.length; i++) {
      const a: number = g.values[i] ?? Number.NaN;
      const b: number = w.values[i] ?? Number.NaN;
      if (Number.isNaN(b) && Number.isNaN(a)) continue;
      if (a === b) continue;
      const ok = Math.abs(a - b) <= atol + rtol * Math.abs(b);
      if (!ok) assert.fail(`output ${k}[${i}]: torch ${a} vs cpu ${b} (atol ${atol}, rtol ${rtol})`);
    }
  });
}

/** A fresh deterministic generator per test. */
export function rngFor(seed: number): Rng {
  return new Rng(seed);
}
