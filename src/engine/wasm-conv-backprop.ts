// Conv2D backprop kernels for the TF.js wasm backend: the filter gradient it lacks, and an input gradient
// that is ~10x faster than its own. Both are compositions of wasm's fast Conv2D.
import type {
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  KernelFunc,
  TensorInfo,
} from '../core/tf.js';
import * as tf from '../core/tf.js';

type Shape4D = [number, number, number, number];

/** The kernel's input as a Tensor. Ops pass Tensors; a bare TensorInfo gets a counted reference. */
export function inputTensor(info: TensorInfo | undefined, name: string, kernelName: string): tf.Tensor {
  if (info === undefined) throw new Error(`${kernelName}: missing input '${name}'`);
  if (info instanceof tf.Tensor) return info;
  tf.engine().backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info);
}

function input4D(info: TensorInfo | undefined, name: string, kernelName: string): tf.Tensor4D {
  const t = inputTensor(info, name, kernelName);
  if (t.rank !== 4) throw new Error(`${kernelName}: input '${name}' must be rank 4, got shape [${t.shape}]`);
  return t as tf.Tensor4D;
}

function requireNHWC(dataFormat: string, kernelName: string): void {
  if (dataFormat !== 'NHWC') {
    throw new Error(`${kernelName} on wasm supports dataFormat 'NHWC' only, got '${dataFormat}'`);
  }
}

// ---
// Conv2DBackpropFilter (wasm has none). dW[kh,kw,i,o] = Σ_{b,p,q} xpad[b, p*s+kh, q*s+kw, i] dy[b,p,q,o] is
// itself a correlation: batch ↔ channel swapped, dy as the filter, dilated by the forward stride.

// Inputs are read inside the tidy so that wrappers made for bare TensorInfos are released with it.
export const conv2DBackpropFilter: KernelFunc = ({ inputs, attrs }) =>
  tf.tidy(() => {
    const name = 'Conv2DBackpropFilter';
    const x = input4D(inputs.x, 'x', name);
    const dy = input4D(inputs.dy, 'dy', name);
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } =
      attrs as unknown as Conv2DBackpropFilterAttrs;
    requireNHWC(dataFormat, name);
    const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
    const { inHeight, inWidth, outHeight, outWidth, filterHeight, filterWidth, strideHeight, strideWidth } =
      info;
    const { top, left } = info.padInfo;
    // Padding below/right that the correlation reads; negative means trailing rows/cols it never reads.
    const bottom = (outHeight - 1) * strideHeight + filterHeight - inHeight - top;
    const right = (outWidth - 1) * strideWidth + filterWidth - inWidth - left;
    const [b, h, w, c] = x.shape;
    const xUsed =
      bottom < 0 || right < 0
        ? tf.slice(x, [0, 0, 0, 0], [b, h + Math.min(bottom, 0), w + Math.min(right, 0), c])
        : x;
    const xT = tf.transpose(xUsed, [3, 1, 2, 0]); // [Ci, H, W, B]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]); // [OH, OW, B, Co]
    const pads: tf.backend_util.ExplicitPadding = [
      [0, 0],
      [top, Math.max(bottom, 0)],
      [left, Math.max(right, 0)],
      [0, 0],
    ];
    const dWT = tf.conv2d(xT, dyT, 1, pads, 'NHWC', [strideHeight, strideWidth]); // [Ci, fh, fw, Co]
    return tf.transpose(dWT, [1, 2, 0, 3]); // [fh, fw, Ci, Co]
  });

// ---
// Conv2DBackpropInput (wasm's own is ~10x slower than its Conv2D). With stride s, the input rows of
// phase r = i mod s receive contributions only from filter taps kh ≡ r + padTop (mod s). Each phase is
// a stride-1 correlation of dy with a flipped sub-filter; all phases share one conv by stacking their
// sub-filters along output channels in a common window, and a reshape + transpose interleaves them.
// For stride 1 this is the usual flipped, in/out-swapped filter.

interface AxisPlan {
  /** Per phase r: first tap, number of taps, offset e with dy row = q + e - m for tap c + s*m. */
  readonly phases: readonly { readonly firstTap: number; readonly taps: number; readonly offset: number }[];
  /** Window of dy rows (relative to q) that covers every phase: [lo, lo + size). */
  readonly lo: number;
  readonly size: number;
}

function planAxis(filterSize: number, stride: number, padBefore: number): AxisPlan {
  const phases = [];
  for (let r = 0; r < stride; r++) {
    const firstTap = (r + padBefore) % stride;
    const taps = firstTap < filterSize ? Math.ceil((filterSize - firstTap) / stride) : 0;
    phases.push({ firstTap, taps, offset: Math.floor((r + padBefore) / stride) });
  }
  const used = phases.filter((p) => p.taps > 0);
  const lo = Math.min(...used.map((p) => p.offset - p.taps + 1));
  const hi = Math.max(...used.map((p) => p.offset));
  return { phases, lo, size: hi - lo + 1 };
}

/** Filter [kh', kw', Co, sH*sW*Ci] whose output channel block (rh*sW + rw) computes phase (rh, rw). */
function phaseFilter(w: Float32Array, filterShape: Shape4D, ph: AxisPlan, pw: AxisPlan): tf.Tensor4D {
  const [, fw, ci, co] = filterShape;
  const sh = ph.phases.length;
  const sw = pw.phases.length;
  const outC = sh * sw * ci;
  const out = new Float32Array(ph.size * pw.size * co * outC);
  ph.phases.forEach((p, rh) => {
    for (let mh = 0; mh < p.taps; mh++) {
      const kh = p.firstTap + sh * mh;
      const jh = p.offset - mh - ph.lo;
      pw.phases.forEach((q, rw) => {
        for (let mw = 0; mw < q.taps; mw++) {
          const kw = q.firstTap + sw * mw;
          const jw = q.offset - mw - pw.lo;
          const channelBase = (rh * sw + rw) * ci;
          for (let i = 0; i < ci; i++) {
            const src = ((kh * fw + kw) * ci + i) * co;
            const dst = (jh * pw.size + jw) * co * outC + channelBase + i;
            for (let o = 0; o < co; o++) out[dst + o * outC] = w[src + o] ?? 0;
          }
        }
      });
    }
  });
  return tf.tensor4d(out, [ph.size, pw.size, co, outC]);
}

export const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs }) =>
  tf.tidy(() => {
    const name = 'Conv2DBackpropInput';
    const dy = input4D(inputs.dy, 'dy', name);
    const filter = input4D(inputs.filter, 'filter', name);
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } =
      attrs as unknown as Conv2DBackpropInputAttrs;
    requireNHWC(dataFormat, name);
    const info = tf.backend_util.computeConv2DInfo(
      inputShape,
      filter.shape,
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    const { strideHeight: sh, strideWidth: sw } = info;
    const ph = planAxis(info.filterHeight, sh, info.padInfo.top);
    const pw = planAxis(info.filterWidth, sw, info.padInfo.left);
    // Filters are small; a synchronous read of wasm memory is a plain copy, not a device sync. It goes to the
    // backend directly, as a kernel's read of its own memory (the engine's reads are what profiles count).
    const w = (backend as tf.KernelBackend).readSync(filter.dataId) as Float32Array;
    const [b, h, wIn, ci] = inputShape;
    const [, oh, ow] = dy.shape;
    const qh = Math.ceil(h / sh);
    const qw = Math.ceil(wIn / sw);
    // Rows of dy the window reads: [lo, q_max + hi]; pad with zeros or crop to exactly that range.
    const padTop = -ph.lo;
    const padBottom = qh - 1 + ph.lo + ph.size - oh;
    const padLeft = -pw.lo;
    const padRight = qw - 1 + pw.lo + pw.size - ow;
    const cropped = tf.slice(
      dy,
      [0, Math.max(-padTop, 0), Math.max(-padLeft, 0), 0],
      [
        b,
        oh - Math.max(-padTop, 0) - Math.max(-padBottom, 0),
        ow - Math.max(-padLeft, 0) - Math.max(-padRight, 0),
        -1,
      ],
    );
    const pads: tf.backend_util.ExplicitPadding = [
      [0, 0],
      [Math.max(padTop, 0), Math.max(padBottom, 0)],
      [Math.max(padLeft, 0), Math.max(padRight, 0)],
      [0, 0],
    ];
    const phases = tf.conv2d(cropped, phaseFilter(w, filter.shape, ph, pw), 1, pads); // [B, qh, qw, sh*sw*Ci]
    if (sh === 1 && sw === 1) return phases;
    const interleaved = tf.reshape(
      tf.transpose(tf.reshape(phases, [b, qh, qw, sh, sw, ci]), [0, 1, 3, 2, 4, 5]),
      [b, qh * sh, qw * sw, ci],
    );
    return qh * sh === h && qw * sw === wIn
      ? interleaved
      : tf.slice(interleaved, [0, 0, 0, 0], [b, h, wIn, ci]);
  });
