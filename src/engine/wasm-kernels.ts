// Kernels ladder's training needs on the TF.js wasm backend: ones it lacks, faster replacements for slow
// ones, and fixes for wrong ones. Conv2D backprop lives in wasm-conv-backprop.ts.
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type {
  BatchMatMulAttrs,
  KernelConfig,
  KernelFunc,
  MaxPoolGradAttrs,
  TensorInfo,
  UnsortedSegmentSumAttrs,
} from '../core/tf.js';
import * as tf from '../core/tf.js';
import { conv2DBackpropFilter, conv2DBackpropInput, inputTensor } from './wasm-conv-backprop.js';

type Shape4D = [number, number, number, number];

// ---
// UnsortedSegmentSum (wasm has none; gather's gradient needs it): direct loop over wasm memory.

const unsortedSegmentSum: KernelFunc = ({ inputs, attrs, backend }) => {
  const name = 'UnsortedSegmentSum';
  const x = inputs.x;
  const ids = inputs.segmentIds;
  if (x === undefined || ids === undefined) throw new Error(`${name}: needs inputs 'x' and 'segmentIds'`);
  const { numSegments } = attrs as unknown as UnsortedSegmentSumAttrs;
  const wasm = backend as BackendWasm;
  const idCount = tf.util.sizeFromShape(ids.shape);
  const inner = idCount === 0 ? 0 : tf.util.sizeFromShape(x.shape) / idCount;
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(ids.shape.length)], x.dtype);
  // Views are taken after makeOutput: its malloc may grow wasm memory and detach older views.
  const xs = wasm.typedArrayFromHeap(x);
  const segment = wasm.typedArrayFromHeap(ids);
  const sums = wasm.typedArrayFromHeap(out);
  sums.fill(0);
  for (let i = 0; i < idCount; i++) {
    const s = segment[i] ?? -1;
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) sums[dst + j] = (sums[dst + j] ?? 0) + (xs[src + j] ?? 0);
  }
  return out;
};

// ---
// MaxPoolGrad: wasm's own returns zero gradient for windows whose values are all negative. Route dy to
// the first maximum of each window, as the cpu backend does.

const maxPoolGrad: KernelFunc = ({ inputs, attrs, backend }) => {
  const name = 'MaxPoolGrad';
  const dy = inputs.dy;
  const x = inputs.input;
  if (dy === undefined || x === undefined) throw new Error(`${name}: needs inputs 'dy' and 'input'`);
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    x.shape as Shape4D,
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const {
    batchSize,
    inHeight,
    inWidth,
    inChannels: c,
    outHeight,
    outWidth,
    strideHeight,
    strideWidth,
  } = info;
  const { filterHeight, filterWidth } = info;
  const wasm = backend as BackendWasm;
  const out = wasm.makeOutput(x.shape, 'float32');
  const xs = wasm.typedArrayFromHeap(x);
  const grads = wasm.typedArrayFromHeap(dy);
  const dx = wasm.typedArrayFromHeap(out);
  dx.fill(0);
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      const h0 = oh * strideHeight - info.padInfo.top;
      for (let ow = 0; ow < outWidth; ow++) {
        const w0 = ow * strideWidth - info.padInfo.left;
        const dyBase = ((b * outHeight + oh) * outWidth + ow) * c;
        for (let ch = 0; ch < c; ch++) {
          let best = Number.NEGATIVE_INFINITY;
          let bestAt = -1;
          for (let h = Math.max(h0, 0); h < Math.min(h0 + filterHeight, inHeight); h++) {
            for (let w = Math.max(w0, 0); w < Math.min(w0 + filterWidth, inWidth); w++) {
              const at = ((b * inHeight + h) * inWidth + w) * c + ch;
              const v = xs[at] ?? Number.NEGATIVE_INFINITY;
              if (v > best || bestAt < 0) {
                best = v;
                bestAt = at;
              }
            }
          }
          if (bestAt >= 0) dx[bestAt] = (dx[bestAt] ?? 0) + (grads[dyBase + ch] ?? 0);
        }
      }
    }
  }
  return out;
};

// ---
// BatchMatMul: wasm's fast (XNNPACK) path covers only untransposed products with a single batch. Transposed
// operands (every dense layer's backward pass) and a batch of inputs times shared weights fall back to a
// loop about 7x slower, so transpose explicitly / fold the batch into rows and take the fast path.

/** wasm's own BatchMatMul, kept to run the fast cases and everything this wrapper does not reshape. */
let wasmBatchMatMul: KernelConfig | undefined;

const batchMatMul: KernelFunc = (args) => {
  const native = wasmBatchMatMul;
  if (native === undefined) throw new Error('BatchMatMul: wasm kernel missing; call registerWasmKernels()');
  const { a, b } = args.inputs;
  if (a === undefined || b === undefined) throw new Error("BatchMatMul: needs inputs 'a' and 'b'");
  const { transposeA, transposeB } = args.attrs as unknown as BatchMatMulAttrs;
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const alreadyFast = batchA === 1 && !transposeA && !transposeB;
  const helps = batchB === 1 && (batchA === 1 || !transposeA) && !alreadyFast;
  if (!helps || a.dtype !== 'float32' || b.dtype !== 'float32') return native.kernelFunc(args);
  const [m, k] = transposeA
    ? [a.shape.at(-1) ?? 0, a.shape.at(-2) ?? 0]
    : [a.shape.at(-2) ?? 0, a.shape.at(-1) ?? 0];
  const n = (transposeB ? b.shape.at(-2) : b.shape.at(-1)) ?? 0;
  const [a2, b2] = tf.tidy(() => {
    const aT = inputTensor(a, 'a', 'BatchMatMul');
    const bT = inputTensor(b, 'b', 'BatchMatMul');
    const rows = transposeA ? tf.transpose(tf.reshape(aT, [k, m])) : aT; // [batchA * m, k] once reshaped
    const cols = transposeB ? tf.transpose(tf.reshape(bT, [n, k])) : bT; // [k, n] once reshaped
    return [tf.reshape(rows, [1, batchA * m, k]), tf.reshape(cols, [1, k, n])];
  });
  const attrs = { transposeA: false, transposeB: false };
  const out = native.kernelFunc({ ...args, inputs: { a: a2, b: b2 }, attrs }) as TensorInfo;
  tf.dispose([a2, b2]);
  const outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return { dataId: out.dataId, dtype: out.dtype, shape: [...outer, m, n] };
};

// ---

const WASM_KERNELS: readonly KernelConfig[] = [
  { kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter },
  { kernelName: 'Conv2DBackpropInput', backendName: 'wasm', kernelFunc: conv2DBackpropInput },
  { kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum },
  { kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: maxPoolGrad },
  {
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    kernelFunc: batchMatMul,
    // The wrapped kernel binds its wasm function in its own setup, which no longer runs once replaced.
    setupFunc: (backend) => wasmBatchMatMul?.setupFunc?.(backend),
  },
];

/** Names of the wasm kernels ladder adds or replaces. */
export const LADDER_WASM_KERNELS: readonly string[] = WASM_KERNELS.map((k) => k.kernelName);

/**
 * Registers ladder's wasm kernels, replacing wasm's own where one exists (slow Conv2DBackpropInput and
 * BatchMatMul, incorrect MaxPoolGrad). Import '@tensorflow/tfjs-backend-wasm' first. Idempotent; safe
 * before or after the wasm backend is initialised.
 */
export function registerWasmKernels(): void {
  for (const config of WASM_KERNELS) {
    const existing = tf.getKernel(config.kernelName, 'wasm');
    if (existing?.kernelFunc === config.kernelFunc) continue;
    if (config.kernelName === 'BatchMatMul') {
      if (existing == null)
        throw new Error("registerWasmKernels: import '@tensorflow/tfjs-backend-wasm' first");
      wasmBatchMatMul = existing;
    }
    if (existing != null) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
    // Already-initialised backends ran setup before this kernel was registered.
    const active = tf.engine().registry.wasm;
    if (active !== undefined) config.setupFunc?.(active);
  }
}
