// Indexing kernels: GatherV2 (with batchDims), GatherNd, ScatterNd, UnsortedSegmentSum.
import * as tf from '../../../core/tf.js';
import { attrsOf, defineKernel, input, type TorchKernel } from './util.js';

const gatherV2 = defineKernel(tf.GatherV2, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const indices = input(inputs, 'indices');
  const { axis, batchDims } = attrsOf<tf.GatherV2Attrs>(attrs);
  const [dim] = tf.util.parseAxisParam(axis, x.shape);
  const b = batchDims < 0 ? batchDims + indices.shape.length : (batchDims ?? 0);
  backend
    .args(x, indices)
    .int(dim ?? 0)
    .int(b);
  return backend.run1('gather');
});

const gatherNd = defineKernel(tf.GatherNd, ({ inputs, backend }) => {
  backend.args(input(inputs, 'params'), input(inputs, 'indices'));
  return backend.run1('gather_nd');
});

const scatterNd = defineKernel(tf.ScatterNd, ({ inputs, backend, attrs }) => {
  const { shape } = attrsOf<tf.ScatterNdAttrs>(attrs);
  backend.args(input(inputs, 'indices'), input(inputs, 'updates')).ints(shape);
  return backend.run1('scatter_nd');
});

const unsortedSegmentSum = defineKernel(tf.UnsortedSegmentSum, ({ inputs, backend, attrs }) => {
  const { numSegments } = attrsOf<tf.UnsortedSegmentSumAttrs>(attrs);
  backend.args(input(inputs, 'x'), input(inputs, 'segmentIds')).int(numSegments);
  return backend.run1('unsorted_segment_sum');
});

/** All indexing kernels. */
export function gatherKernels(): TorchKernel[] {
  return [gatherV2, gatherNd, scatterNd, unsortedSegmentSum];
}
