// Fixes to the gradients @tensorflow/tfjs registers (core/tf.ts loads them): comparison and logical kernels
// have none, so `where(x > 0, a, b)` cannot be differentiated; and AvgPool's divides padded windows by the
// full filter area, while the forward pass divides by the number of in-bounds inputs.

import type { AvgPoolAttrs, GradConfig, NamedAttrMap } from '../core/tf.js';
import * as tf from '../core/tf.js';

function savedAt(saved: readonly tf.Tensor[], i: number, kernelName: string): tf.Tensor {
  const t = saved[i];
  if (t === undefined) throw new Error(`gradient of ${kernelName}: saved tensor #${i} is missing`);
  return t;
}

// ---
// Boolean-valued kernels: their inputs get zero gradients, but a gradient must exist because the
// comparison sits on the path from x to the loss.

const BOOLEAN_BINARY = [
  'Equal',
  'NotEqual',
  'Greater',
  'GreaterEqual',
  'Less',
  'LessEqual',
  'LogicalAnd',
  'LogicalOr',
];
const BOOLEAN_UNARY = ['LogicalNot', 'IsNan', 'IsFinite', 'IsInf'];

const zeros = (t: tf.Tensor): tf.Tensor => tf.zeros(t.shape, 'float32');

const BOOLEAN_GRADIENTS: readonly GradConfig[] = [
  ...BOOLEAN_BINARY.map(
    (kernelName): GradConfig => ({
      kernelName,
      inputsToSave: ['a', 'b'],
      gradFunc: (_dy, saved) => ({
        a: () => zeros(savedAt(saved, 0, kernelName)),
        b: () => zeros(savedAt(saved, 1, kernelName)),
      }),
    }),
  ),
  ...BOOLEAN_UNARY.map(
    (kernelName): GradConfig => ({
      kernelName,
      inputsToSave: ['x'],
      gradFunc: (_dy, saved) => ({ x: () => zeros(savedAt(saved, 0, kernelName)) }),
    }),
  ),
];

// ---
// AvgPool: spread dy / count(window) back over each window. Unpadded pools (every count equal to the
// filter area) keep the AvgPoolGrad kernel; padded ones use a ones-filter transposed conv per channel.

function avgPoolInputGrad(dy: tf.Tensor, x: tf.Tensor, attrs: AvgPoolAttrs): tf.Tensor {
  const { filterSize, strides, pad, dimRoundingMode } = attrs;
  const xShape = x.shape as [number, number, number, number];
  const info = tf.backend_util.computePool2DInfo(xShape, filterSize, strides, 1, pad, dimRoundingMode);
  const { top, bottom, left, right } = info.padInfo;
  if (top + bottom + left + right === 0) {
    const kernelAttrs = { filterSize, strides, pad, ...(dimRoundingMode ? { dimRoundingMode } : {}) };
    return tf.engine().runKernel('AvgPoolGrad', { dy, input: x }, kernelAttrs as NamedAttrMap) as tf.Tensor;
  }
  const { inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info;
  const span = (start: number, size: number, limit: number): number =>
    Math.min(start + size, limit) - Math.max(start, 0);
  const counts = new Float32Array(oh * ow);
  for (let i = 0; i < oh; i++) {
    for (let j = 0; j < ow; j++) {
      counts[i * ow + j] =
        span(i * info.strideHeight - top, fh, h) * span(j * info.strideWidth - left, fw, w);
    }
  }
  const [b, , , c] = xShape;
  const scaled = tf.div(dy, tf.tensor4d(counts, [1, oh, ow, 1]));
  const perChannel = tf.reshape(tf.transpose(scaled, [0, 3, 1, 2]), [b * c, oh, ow, 1]); // [B*C, OH, OW, 1]
  const spread = tf.conv2dTranspose(
    perChannel as tf.Tensor4D,
    tf.ones([fh, fw, 1, 1]) as tf.Tensor4D,
    [b * c, h, w, 1],
    [info.strideHeight, info.strideWidth],
    pad,
    dimRoundingMode,
  );
  return tf.transpose(tf.reshape(spread, [b, c, h, w]), [0, 2, 3, 1]); // [B, H, W, C]
}

const AVG_POOL_GRADIENT: GradConfig = {
  kernelName: 'AvgPool',
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    if (Array.isArray(dy)) throw new Error('gradient of AvgPool: expected one upstream gradient');
    const x = savedAt(saved, 0, 'AvgPool');
    return { x: () => avgPoolInputGrad(dy, x, attrs as unknown as AvgPoolAttrs) };
  },
};

/** Kernels whose gradient ladder registers or replaces. */
export const LADDER_GRADIENT_KERNELS: readonly string[] = [
  ...BOOLEAN_GRADIENTS.map((g) => g.kernelName),
  AVG_POOL_GRADIENT.kernelName,
];

/**
 * Registers ladder's gradient fixes: zero gradients for boolean kernels that have none, and a correct
 * AvgPool gradient in place of tfjs's. Idempotent.
 */
export function registerGradientFixes(): void {
  for (const config of BOOLEAN_GRADIENTS) {
    if (tf.getGradient(config.kernelName) == null) tf.registerGradient(config);
  }
  if (tf.getGradient(AVG_POOL_GRADIENT.kernelName) !== AVG_POOL_GRADIENT)
    tf.registerGradient(AVG_POOL_GRADIENT);
}
