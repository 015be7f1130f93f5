// Layout kernels: Reshape, ExpandDims, Transpose, Concat, Slice, StridedSlice, Pack, Unpack, SplitV,
// Tile, BroadcastTo, PadV2, MirrorPad, Reverse; factories Fill, Range, LinSpace, OneHot.
import * as tf from '../../../core/tf.js';
import { attrsOf, defineKernel, dtypeCode, input, inputList, type TorchKernel } from './util.js';

function isIdentityPerm(perm: readonly number[]): boolean {
  return perm.every((p, i) => p === i);
}

const reshape = defineKernel(tf.Reshape, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { shape } = attrsOf<tf.ReshapeAttrs>(attrs);
  backend.args(x).ints(shape);
  return backend.run1('reshape');
});

const expandDims = defineKernel(tf.ExpandDims, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'input');
  const { dim } = attrsOf<tf.ExpandDimsAttrs>(attrs);
  const rank = x.shape.length;
  if (dim > rank || dim < -(rank + 1)) {
    throw new Error(`torch backend: ExpandDims dim ${dim} out of range for rank ${rank}`);
  }
  const shape = x.shape.slice();
  shape.splice(dim < 0 ? rank + dim + 1 : dim, 0, 1);
  backend.args(x).ints(shape);
  return backend.run1('reshape');
});

const transpose = defineKernel(tf.Transpose, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { perm } = attrsOf<tf.TransposeAttrs>(attrs);
  if (isIdentityPerm(perm)) return backend.alias(x);
  backend.args(x).ints(perm);
  return backend.run1('transpose');
});

const concat = defineKernel(tf.Concat, ({ inputs, backend, attrs }) => {
  const xs = inputList(inputs);
  const first = xs[0];
  if (first === undefined) throw new Error('torch backend: Concat needs at least one tensor');
  const [axis] = tf.util.parseAxisParam(attrsOf<tf.ConcatAttrs>(attrs).axis, first.shape);
  backend.argsList(xs).int(axis ?? 0);
  return backend.run1('concat');
});

const slice = defineKernel(tf.Slice, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { begin, size } = attrsOf<tf.SliceAttrs>(attrs);
  const [b = [], s = []] = tf.slice_util.parseSliceParams(x, begin, size);
  tf.slice_util.assertParamsValid(x, b, s);
  backend.args(x).ints(b).ints(s);
  return backend.run1('slice');
});

const stridedSlice = defineKernel(tf.StridedSlice, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const a = attrsOf<tf.StridedSliceAttrs>(attrs);
  const info = tf.slice_util.sliceInfo(
    x.shape,
    a.begin,
    a.end,
    a.strides,
    a.beginMask,
    a.endMask,
    a.ellipsisMask,
    a.newAxisMask,
    a.shrinkAxisMask,
  );
  if (info.isIdentity) {
    backend.args(x).ints(info.finalShape);
    return backend.run1('reshape');
  }
  // Per x axis: start, step and count, then a reshape that drops/adds axes (finalShape).
  const counts = tf.slice_util.computeOutShape(info.begin, info.end, info.strides).map((n) => Math.max(0, n));
  backend.args(x).ints(info.begin).ints(info.strides).ints(counts).ints(info.finalShape);
  return backend.run1('strided_slice');
});

const pack = defineKernel(tf.Pack, ({ inputs, backend, attrs }) => {
  backend.argsList(inputList(inputs)).int(attrsOf<tf.PackAttrs>(attrs).axis);
  return backend.run1('stack');
});

const unpack = defineKernel(tf.Unpack, ({ inputs, backend, attrs }) => {
  backend.args(input(inputs, 'value')).int(attrsOf<tf.UnpackAttrs>(attrs).axis);
  return backend.run('unstack');
});

const splitV = defineKernel(tf.SplitV, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { numOrSizeSplits, axis } = attrsOf<tf.SplitVAttrs>(attrs);
  const [dim] = tf.util.parseAxisParam(axis, x.shape);
  const sizes = tf.backend_util.prepareSplitSize(x, numOrSizeSplits, dim ?? 0);
  backend
    .args(x)
    .ints(sizes)
    .int(dim ?? 0);
  return backend.run('split');
});

const tile = defineKernel(tf.Tile, ({ inputs, backend, attrs }) => {
  backend.args(input(inputs, 'x')).ints(attrsOf<tf.TileAttrs>(attrs).reps);
  return backend.run1('tile');
});

const broadcastTo = defineKernel(tf.BroadcastTo, ({ inputs, backend, attrs }) => {
  backend.args(input(inputs, 'x')).ints(attrsOf<tf.BroadCastToAttrs>(attrs).shape);
  return backend.run1('broadcast_to');
});

const padV2 = defineKernel(tf.PadV2, ({ inputs, backend, attrs }) => {
  const { paddings, constantValue } = attrsOf<tf.PadV2Attrs>(attrs);
  backend.args(input(inputs, 'x')).ints(paddings.flat()).num(constantValue);
  return backend.run1('pad');
});

const mirrorPad = defineKernel(tf.MirrorPad, ({ inputs, backend, attrs }) => {
  const { paddings, mode } = attrsOf<tf.MirrorPadAttrs>(attrs);
  backend
    .args(input(inputs, 'x'))
    .ints(paddings.flat())
    .flag(mode === 'symmetric');
  return backend.run1('mirror_pad');
});

const reverse = defineKernel(tf.Reverse, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const dims = tf.util.parseAxisParam(attrsOf<tf.ReverseAttrs>(attrs).dims, x.shape);
  backend.args(x).ints(dims);
  return backend.run1('reverse');
});

const fill = defineKernel(tf.Fill, ({ backend, attrs }) => {
  const { shape, value, dtype } = attrsOf<tf.FillAttrs>(attrs);
  const resolved = dtype ?? tf.util.inferDtype(value);
  if (resolved === 'string' || typeof value === 'string') {
    const encoded = tf.util.encodeString(String(value));
    const values = Array.from({ length: tf.util.sizeFromShape(shape) }, () => encoded);
    return backend.makeTensorInfo(shape, 'string', values);
  }
  backend.args().ints(shape).int(dtypeCode(resolved)).num(value);
  return backend.run1('fill');
});

// Range and LinSpace are tiny: compute them here exactly as tfjs does (float32 accumulation).
const range = defineKernel(tf.Range, ({ backend, attrs }) => {
  const { start, stop, dtype } = attrsOf<tf.RangeAttrs>(attrs);
  let { step } = attrsOf<tf.RangeAttrs>(attrs);
  const empty = start === stop || (start < stop && step < 0) || (stop < start && step > 1);
  const n = empty ? 0 : Math.abs(Math.ceil((stop - start) / step));
  const values = dtype === 'int32' ? new Int32Array(n) : new Float32Array(n);
  if (stop < start && step === 1) step = -1;
  if (n > 0) values[0] = start;
  for (let i = 1; i < n; i++) values[i] = (values[i - 1] ?? 0) + step;
  return backend.makeTensorInfo([n], dtype, values);
});

const linSpace = defineKernel(tf.LinSpace, ({ backend, attrs }) => {
  const { start, stop, num } = attrsOf<tf.LinSpaceAttrs>(attrs);
  const values = new Float32Array(num);
  const step = (stop - start) / (num - 1);
  values[0] = start;
  for (let i = 1; i < num; i++) values[i] = (values[i - 1] ?? 0) + step;
  return backend.makeTensorInfo([num], 'float32', values);
});

const oneHot = defineKernel(tf.OneHot, ({ inputs, backend, attrs }) => {
  const { depth, onValue, offValue, dtype } = attrsOf<tf.OneHotAttrs>(attrs);
  backend.args(input(inputs, 'indices')).int(depth).int(dtypeCode(dtype)).num(onValue).num(offValue);
  return backend.run1('one_hot');
});

/** All layout and factory kernels. */
export function shapeKernels(): TorchKernel[] {
  return [
    reshape,
    expandDims,
    transpose,
    concat,
    slice,
    stridedSlice,
    pack,
    unpack,
    splitV,
    tile,
    broadcastTo,
    padV2,
    mirrorPad,
    reverse,
    fill,
    range,
    linSpace,
    oneHot,
  ];
}
