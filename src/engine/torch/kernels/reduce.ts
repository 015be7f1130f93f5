// Reduction kernels (Sum, Mean, Max, Min, Prod, All, Any, ArgMax, ArgMin), Softmax, Cumsum/Cumprod, TopK.
import * as tf from '../../../core/tf.js';
import type { OpName } from '../ops.js';
import { attrsOf, defineKernel, dtypeCode, input, reductionAxes, type TorchKernel } from './util.js';

interface ReduceAttrs {
  readonly axis?: number | number[];
  readonly reductionIndices?: number | number[];
  readonly keepDims: boolean;
}

function reduceKernel(kernel: string, op: OpName, outDtype: (x: tf.DataType) => tf.DataType): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const a = attrsOf<ReduceAttrs>(attrs);
    // Max names its axes reductionIndices; the others say axis.
    const axes = reductionAxes(a.axis ?? a.reductionIndices, x.shape);
    backend
      .args(x)
      .ints(axes)
      .flag(a.keepDims)
      .int(dtypeCode(outDtype(x.dtype)));
    return backend.run1(op);
  });
}

function argKernel(kernel: string, op: OpName): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const [axis] = reductionAxes(attrsOf<tf.ArgMaxAttrs>(attrs).axis, x.shape);
    backend.args(x).int(axis ?? 0);
    return backend.run1(op);
  });
}

function softmaxKernel(kernel: string, op: OpName, axisOf: (attrs: tf.NamedAttrMap) => number): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const logits = input(inputs, 'logits');
    backend.args(logits).int(axisOf(attrs));
    return backend.run1(op);
  });
}

function cumulativeKernel(kernel: string, op: OpName): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const { axis, exclusive, reverse } = attrsOf<tf.CumsumAttrs>(attrs);
    const [dim] = reductionAxes(axis, x.shape);
    backend
      .args(x)
      .int(dim ?? 0)
      .flag(exclusive)
      .flag(reverse);
    return backend.run1(op);
  });
}

const topK = defineKernel(tf.TopK, ({ inputs, backend, attrs }) => {
  const { k, sorted } = attrsOf<tf.TopKAttrs>(attrs);
  backend.args(input(inputs, 'x')).int(k).flag(sorted);
  return backend.run('topk');
});

/** All reduction kernels. */
export function reduceKernels(): TorchKernel[] {
  return [
    reduceKernel(tf.Sum, 'sum', (d) => tf.sumOutType(d)),
    reduceKernel(tf.Mean, 'mean', () => 'float32'),
    reduceKernel(tf.Max, 'max', (d) => d),
    reduceKernel(tf.Min, 'min', (d) => d),
    reduceKernel(tf.Prod, 'prod', (d) => tf.upcastType(d, 'int32')),
    reduceKernel(tf.All, 'all', () => 'bool'),
    reduceKernel(tf.Any, 'any', () => 'bool'),
    argKernel(tf.ArgMax, 'argmax'),
    argKernel(tf.ArgMin, 'argmin'),
    softmaxKernel(tf.Softmax, 'softmax', (a) => attrsOf<tf.SoftmaxAttrs>(a).dim),
    softmaxKernel(tf.LogSoftmax, 'log_softmax', (a) => attrsOf<tf.LogSoftmaxAttrs>(a).axis),
    cumulativeKernel(tf.Cumsum, 'cumsum'),
    cumulativeKernel(tf.Cumprod, 'cumprod'),
    topK,
  ];
}
