// ladder's wasm kernels against the cpu backend on random inputs and against finite differences.
import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import type { NamedAttrMap } from '../core/tf.js';
import * as tf from '../core/tf.js';
import { type BackendName, initBackend } from './backend.js';
import { centralDifferences, maxMixedError } from './gradient-check.js';
import { LADDER_WASM_KERNELS, registerWasmKernels } from './wasm-kernels.js';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | tf.backend_util.ExplicitPadding;

interface ConvCase {
  readonly x: Shape4;
  readonly filter: Shape4;
  readonly strides: number | [number, number];
  readonly pad: Pad;
}

// Odd and even sizes, 1x1 to 5x5 filters, strides 1-3, 'same'/'valid'/explicit, channels 1..8, batch 1..3.
const CONV_CASES: readonly ConvCase[] = [
  { x: [1, 7, 7, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [2, 7, 7, 2], filter: [3, 3, 2, 5], strides: 2, pad: 'same' },
  { x: [3, 8, 8, 4], filter: [3, 3, 4, 3], strides: 2, pad: 'same' },
  { x: [2, 7, 7, 1], filter: [3, 3, 1, 2], strides: 2, pad: 'valid' },
  { x: [1, 6, 5, 8], filter: [1, 1, 8, 8], strides: 1, pad: 'valid' },
  { x: [2, 7, 7, 3], filter: [1, 1, 3, 2], strides: 2, pad: 'same' },
  { x: [1, 9, 9, 2], filter: [3, 3, 2, 3], strides: 1, pad: 'valid' },
  {
    x: [2, 7, 6, 3],
    filter: [3, 3, 3, 4],
    strides: 1,
    pad: [
      [0, 0],
      [2, 1],
      [0, 2],
      [0, 0],
    ],
  },
  { x: [1, 8, 8, 2], filter: [2, 2, 2, 2], strides: 2, pad: 'same' },
  { x: [1, 7, 7, 1], filter: [5, 5, 1, 1], strides: 2, pad: 'same' },
  { x: [1, 7, 9, 2], filter: [3, 3, 2, 3], strides: [1, 2], pad: 'same' },
  {
    x: [3, 5, 5, 8],
    filter: [3, 3, 8, 1],
    strides: 2,
    pad: [
      [0, 0],
      [1, 0],
      [0, 1],
      [0, 0],
    ],
  },
  { x: [2, 10, 10, 3], filter: [3, 3, 3, 2], strides: 3, pad: 'same' },
];

const label = (c: ConvCase): string =>
  `x ${c.x.join('x')}, filter ${c.filter.join('x')}, stride ${String(c.strides)}, pad ${JSON.stringify(c.pad)}`;

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function dyShape(c: ConvCase): Shape4 {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, 1, c.pad).outShape;
}

/** Deterministic x, filter and dy values for one case. */
function convData(c: ConvCase, seed: number): { x: Float32Array; filter: Float32Array; dy: Float32Array } {
  const rng = new Rng(seed);
  return {
    x: rng.fillNormal(new Float32Array(size(c.x))),
    filter: rng.fillNormal(new Float32Array(size(c.filter))),
    dy: rng.fillNormal(new Float32Array(size(dyShape(c)))),
  };
}

function convAttrs(c: ConvCase): NamedAttrMap {
  return { strides: c.strides, pad: c.pad, dataFormat: 'NHWC' } as unknown as NamedAttrMap;
}

function backpropFilter(c: ConvCase, seed: number): Float32Array {
  const d = convData(c, seed);
  return tf.tidy(() => {
    const inputs = { x: tf.tensor(d.x, c.x), dy: tf.tensor(d.dy, dyShape(c)) };
    const attrs = { ...convAttrs(c), filterShape: c.filter };
    return (
      tf.engine().runKernel('Conv2DBackpropFilter', inputs, attrs) as tf.Tensor
    ).dataSync() as Float32Array;
  });
}

function backpropInput(c: ConvCase, seed: number): Float32Array {
  const d = convData(c, seed);
  return tf.tidy(() => {
    const inputs = { dy: tf.tensor(d.dy, dyShape(c)), filter: tf.tensor(d.filter, c.filter) };
    const attrs = { ...convAttrs(c), inputShape: c.x };
    return (
      tf.engine().runKernel('Conv2DBackpropInput', inputs, attrs) as tf.Tensor
    ).dataSync() as Float32Array;
  });
}

/** Runs `f` with `name` active, then returns to wasm; tensors must be created inside `f`. */
async function on<T>(name: BackendName, f: () => T): Promise<T> {
  await initBackend(name);
  try {
    return f();
  } finally {
    await initBackend('wasm');
  }
}

/** Flat indices spread over an array of length n (first, last and a few between). */
const probes = (n: number): number[] => [...new Set([0, Math.floor(n / 3), Math.floor((2 * n) / 3), n - 1])];

describe('wasm kernels', () => {
  before(async () => {
    await initBackend('wasm');
  });

  it('registers each kernel on wasm, idempotently', () => {
    registerWasmKernels();
    registerWasmKernels();
    for (const name of LADDER_WASM_KERNELS) assert.ok(tf.getKernel(name, 'wasm'), `${name} missing on wasm`);
  });

  it('accepts bare TensorInfo inputs (as other kernels pass them) without leaking', () => {
    const c = CONV_CASES[1];
    assert.ok(c);
    const expected = backpropFilter(c, 1);
    const d = convData(c, 1);
    const x = tf.tensor(d.x, c.x);
    const dy = tf.tensor(d.dy, dyShape(c));
    const before = tf.memory().numTensors;
    const info = (t: tf.Tensor): tf.TensorInfo => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
    const out = tf.getKernel('Conv2DBackpropFilter', 'wasm').kernelFunc({
      inputs: { x: info(x), dy: info(dy) },
      attrs: { ...convAttrs(c), filterShape: c.filter },
      backend: tf.backend(),
    }) as tf.Tensor;
    assert.ok(maxMixedError(out.dataSync(), expected) < 1e-6);
    out.dispose();
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    assert.equal(Array.from(x.dataSync()).length, d.x.length, 'input still readable');
    tf.dispose([x, dy]);
  });

  CONV_CASES.forEach((c, k) => {
    it(`Conv2DBackpropFilter matches cpu and finite differences: ${label(c)}`, async () => {
      const before = tf.memory().numTensors;
      const wasm = backpropFilter(c, k);
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      const cpu = await on('cpu', () => backpropFilter(c, k));
      assert.ok(maxMixedError(wasm, cpu) < 1e-4, `wasm vs cpu error ${maxMixedError(wasm, cpu)}`);
      // L(W) = Σ conv2d(x, W) ⊙ dy is linear in W, so a large step keeps float32 rounding small.
      const d = convData(c, k);
      const loss = (w: tf.Tensor): tf.Scalar =>
        tf.sum(
          tf.mul(
            tf.conv2d(tf.tensor4d(d.x, c.x), w as tf.Tensor4D, c.strides, c.pad),
            tf.tensor(d.dy, dyShape(c)),
          ),
        );
      const indices = probes(wasm.length);
      const numeric = tf.tidy(() => centralDifferences(loss, tf.tensor(d.filter, c.filter), indices, 0.5));
      const err = maxMixedError(
        indices.map((i) => wasm[i] ?? Number.NaN),
        numeric,
      );
      assert.ok(err < 1e-3, `kernel vs finite differences error ${err}`);
    });

    it(`Conv2DBackpropInput matches cpu and finite differences: ${label(c)}`, async () => {
      const before = tf.memory().numTensors;
      const wasm = backpropInput(c, k);
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
      const cpu = await on('cpu', () => backpropInput(c, k));
      assert.ok(maxMixedError(wasm, cpu) < 1e-4, `wasm vs cpu error ${maxMixedError(wasm, cpu)}`);
      const d = convData(c, k);
      const loss = (x: tf.Tensor): tf.Scalar =>
        tf.sum(
          tf.mul(
            tf.conv2d(x as tf.Tensor4D, tf.tensor4d(d.filter, c.filter), c.strides, c.pad),
            tf.tensor(d.dy, dyShape(c)),
          ),
        );
      const indices = probes(wasm.length);
      const numeric = tf.tidy(() => centralDifferences(loss, tf.tensor(d.x, c.x), indices, 0.5));
      const err = maxMixedError(
        indices.map((i) => wasm[i] ?? Number.NaN),
        numeric,
      );
      assert.ok(err < 1e-3, `kernel vs finite differences error ${err}`);
    });
  });

  it('UnsortedSegmentSum sums rows per segment and drops out-of-range ids, like cpu', async () => {
    const ids = [2, 0, 2, -1, 5, 1];
    const x = new Rng(3).fillNormal(new Float32Array(6 * 3 * 2));
    const run = (): Float32Array =>
      tf.tidy(
        () =>
          tf
            .unsortedSegmentSum(tf.tensor(x, [6, 3, 2]), tf.tensor1d(ids, 'int32'), 4)
            .dataSync() as Float32Array,
      );
    const before = tf.memory().numTensors;
    const wasm = run();
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    assert.ok(maxMixedError(wasm, await on('cpu', run)) < 1e-6);
    // Segment 3 receives nothing; segment 1 is exactly row 5.
    assert.deepEqual(Array.from(wasm.slice(18, 24)), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(wasm.slice(6, 12)), Array.from(x.slice(30, 36)));
  });

  // [a's shape, b's shape] before transposes; batch 1, shared weights (b without batch), and full batches.
  const MATMUL_SHAPES: readonly [number[], number[]][] = [
    [
      [5, 6],
      [6, 4],
    ],
    [
      [3, 5, 6],
      [6, 4],
    ],
    [
      [2, 3, 5, 6],
      [1, 6, 4],
    ],
    [
      [3, 5, 6],
      [3, 6, 4],
    ],
    [
      [1, 5, 6],
      [3, 6, 4],
    ],
  ];
  for (const [aShape, bShape] of MATMUL_SHAPES) {
    it(`BatchMatMul matches cpu for [${aShape}] x [${bShape}], every transpose combination`, async () => {
      const swap = (shape: number[]): number[] => [
        ...shape.slice(0, -2),
        shape.at(-1) ?? 0,
        shape.at(-2) ?? 0,
      ];
      const a = new Rng(7).fillNormal(new Float32Array(size(aShape)));
      const b = new Rng(8).fillNormal(new Float32Array(size(bShape)));
      for (const [tA, tB] of [
        [false, false],
        [false, true],
        [true, false],
        [true, true],
      ] as const) {
        // Same numbers, stored transposed when the flag says so; only the math layout matters here.
        const run = (): Float32Array =>
          tf.tidy(() => {
            const at = tf.tensor(a, tA ? swap(aShape) : aShape);
            const bt = tf.tensor(b, tB ? swap(bShape) : bShape);
            return tf.matMul(at, bt, tA, tB).dataSync() as Float32Array;
          });
        const before = tf.memory().numTensors;
        const wasm = run();
        assert.equal(tf.memory().numTensors, before, 'tensors leaked');
        const cpu = await on('cpu', run);
        assert.ok(
          maxMixedError(wasm, cpu) < 1e-5,
          `transposeA=${tA} transposeB=${tB}: wasm differs from cpu`,
        );
      }
    });
  }

  for (const pad of ['valid', 'same'] as const) {
    it(`MaxPoolGrad routes dy to each window's maximum, also when all values are negative (${pad})`, async () => {
      const values = new Rng(5).fillNormal(new Float32Array(2 * 7 * 7 * 3)).map((v) => -Math.abs(v) - 0.1);
      const dyValues = new Rng(6).fillNormal(new Float32Array(2 * 4 * 4 * 3));
      const pool = (x: tf.Tensor): tf.Tensor4D => tf.maxPool(x as tf.Tensor4D, 3, 2, pad);
      const run = (): Float32Array =>
        tf.tidy(() => {
          const x = tf.tensor(values, [2, 7, 7, 3]);
          const y = pool(x);
          const dy = tf.tensor(dyValues.slice(0, y.size), y.shape);
          const attrs = { filterSize: 3, strides: 2, pad } as unknown as NamedAttrMap;
          return (
            tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, attrs) as tf.Tensor
          ).dataSync() as Float32Array;
        });
      const wasm = run();
      assert.ok(maxMixedError(wasm, await on('cpu', run)) < 1e-6, 'wasm vs cpu');
      const numeric = tf.tidy(() => {
        const x = tf.tensor(values, [2, 7, 7, 3]);
        const outShape = pool(x).shape;
        const dy = tf.tensor(dyValues.slice(0, size(outShape)), outShape);
        return centralDifferences(
          (v) => tf.sum(tf.mul(pool(v), dy)),
          x,
          probes(values.length).concat([10, 50, 100]),
          1e-3,
        );
      });
      const indices = probes(values.length).concat([10, 50, 100]);
      assert.ok(
        maxMixedError(
          indices.map((i) => wasm[i] ?? Number.NaN),
          numeric,
        ) < 1e-2,
        'vs finite differences',
      );
      assert.ok(
        wasm.some((v) => v !== 0),
        'gradient must not vanish for negative inputs',
      );
    });
  }
});
