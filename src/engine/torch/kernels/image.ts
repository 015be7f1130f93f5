// Image kernels: resize (bilinear, nearest neighbour) and their gradients, FlipLeftRight. Source indices and lerp weights
// per output row/column follow tfjs' formulas; the addon applies them as separable gathers and
// scatters them back for the gradients (the exact adjoint, including halfPixelCenters).
import * as tf from '../../../core/tf.js';
import { attrsOf, defineKernel, input, type TorchKernel } from './util.js';

interface AxisPlan {
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  readonly frac: Float64Array;
  readonly nearest: Int32Array;
}

/** Maps each output index along one axis to its source index/indices. */
function planAxis(
  inSize: number,
  outSize: number,
  alignCorners: boolean,
  halfPixelCenters: boolean,
): AxisPlan {
  const aligned = alignCorners && outSize > 1;
  const ratio = (aligned ? inSize - 1 : inSize) / (aligned ? outSize - 1 : outSize);
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const frac = new Float64Array(outSize);
  const nearest = new Int32Array(outSize);
  for (let r = 0; r < outSize; r++) {
    // Bilinear: the fractional source position, clamped into the image.
    const src = halfPixelCenters ? ratio * (r + 0.5) - 0.5 : ratio * r;
    const floor = Math.max(0, Math.floor(src));
    lo[r] = floor;
    hi[r] = Math.min(inSize - 1, Math.ceil(src));
    frac[r] = src - floor;
    // Nearest: no -0.5 shift with half pixel centres; round when corners are aligned.
    const srcNearest = halfPixelCenters ? ratio * (r + 0.5) : ratio * r;
    const idx = Math.min(inSize - 1, alignCorners ? Math.round(srcNearest) : Math.floor(srcNearest));
    nearest[r] = halfPixelCenters ? Math.max(0, idx) : idx;
  }
  return { lo, hi, frac, nearest };
}

function plans(
  imageShape: readonly number[],
  outH: number,
  outW: number,
  attrs: tf.NamedAttrMap,
): [AxisPlan, AxisPlan] {
  const { alignCorners, halfPixelCenters } = attrsOf<tf.ResizeBilinearAttrs>(attrs);
  return [
    planAxis(imageShape[1] ?? 0, outH, alignCorners, halfPixelCenters),
    planAxis(imageShape[2] ?? 0, outW, alignCorners, halfPixelCenters),
  ];
}

const resizeBilinear = defineKernel(tf.ResizeBilinear, ({ inputs, backend, attrs }) => {
  const images = input(inputs, 'images');
  const [outH, outW] = attrsOf<tf.ResizeBilinearAttrs>(attrs).size;
  const [rows, cols] = plans(images.shape, outH, outW, attrs);
  backend
    .args(images)
    .ints(rows.lo)
    .ints(rows.hi)
    .nums(rows.frac)
    .ints(cols.lo)
    .ints(cols.hi)
    .nums(cols.frac);
  return backend.run1('resize_bilinear');
});

const resizeBilinearGrad = defineKernel(tf.ResizeBilinearGrad, ({ inputs, backend, attrs }) => {
  const images = input(inputs, 'images');
  const dy = input(inputs, 'dy');
  const [rows, cols] = plans(images.shape, dy.shape[1] ?? 0, dy.shape[2] ?? 0, attrs);
  backend
    .args(dy)
    .int(images.shape[1] ?? 0)
    .int(images.shape[2] ?? 0)
    .ints(rows.lo)
    .ints(rows.hi)
    .nums(rows.frac)
    .ints(cols.lo)
    .ints(cols.hi)
    .nums(cols.frac);
  return backend.run1('resize_bilinear_grad');
});

const resizeNearest = defineKernel(tf.ResizeNearestNeighbor, ({ inputs, backend, attrs }) => {
  const images = input(inputs, 'images');
  const [outH, outW] = attrsOf<tf.ResizeNearestNeighborAttrs>(attrs).size;
  const [rows, cols] = plans(images.shape, outH, outW, attrs);
  backend.args(images).ints(rows.nearest).ints(cols.nearest);
  return backend.run1('resize_nearest');
});

const resizeNearestGrad = defineKernel(tf.ResizeNearestNeighborGrad, ({ inputs, backend, attrs }) => {
  const images = input(inputs, 'images');
  const dy = input(inputs, 'dy');
  const [rows, cols] = plans(images.shape, dy.shape[1] ?? 0, dy.shape[2] ?? 0, attrs);
  backend
    .args(dy)
    .int(images.shape[1] ?? 0)
    .int(images.shape[2] ?? 0)
    .ints(rows.nearest)
    .ints(cols.nearest);
  return backend.run1('resize_nearest_grad');
});

const flipLeftRight = defineKernel(tf.FlipLeftRight, ({ inputs, backend }) => {
  backend.args(input(inputs, 'image')).ints([2]);
  return backend.run1('reverse');
});

/** All image kernels. */
export function imageKernels(): TorchKernel[] {
  return [resizeBilinear, resizeBilinearGrad, resizeNearest, resizeNearestGrad, flipLeftRight];
}
