// Network kernels: BatchMatMul/_FusedMatMul, Conv2D/DepthwiseConv2dNative (+fused, +both gradients),
// MaxPool/AvgPool (+gradients), FusedBatchNorm, Einsum. Geometry (output size, 'same' padding) comes
// from tfjs' own conv_util so shapes match the other backends exactly.
import * as tf from '../../../core/tf.js';
import type { TorchBackend } from '../backend.js';
import type { ArgWriter } from '../protocol.js';
import { attrsOf, defineKernel, input, inputList, type TorchKernel } from './util.js';

type Activation = tf.fused.Activation;
const ACTIVATIONS: Readonly<Record<Activation, number>> = {
  linear: 0,
  relu: 1,
  relu6: 2,
  prelu: 3,
  leakyrelu: 4,
  sigmoid: 5,
  elu: 6,
};

function activationCode(activation: Activation | undefined): number {
  const code = ACTIVATIONS[activation ?? 'linear'];
  if (code === undefined) throw new Error(`torch backend: unknown fused activation '${String(activation)}'`);
  return code;
}

function checkNhwc(kernel: string, dataFormat: string | undefined): void {
  if (dataFormat === 'NCHW') {
    throw new Error(`torch backend: ${kernel} with dataFormat NCHW is not supported; use NHWC`);
  }
}

/** Writes strides, pads (top, bottom, left, right), dilations and the depthwise flag. */
function writeGeometry(w: ArgWriter, info: tf.backend_util.Conv2DInfo, depthwise: boolean): ArgWriter {
  const p = info.padInfo;
  return w
    .int(info.strideHeight)
    .int(info.strideWidth)
    .int(p.top)
    .int(p.bottom)
    .int(p.left)
    .int(p.right)
    .int(info.dilationHeight)
    .int(info.dilationWidth)
    .flag(depthwise);
}

// --- matmul ------------------------------------------------------------------------------------

const batchMatMul = defineKernel(tf.BatchMatMul, ({ inputs, backend, attrs }) => {
  const { transposeA, transposeB } = attrsOf<tf.BatchMatMulAttrs>(attrs);
  backend.args(input(inputs, 'a'), input(inputs, 'b')).flag(transposeA).flag(transposeB);
  return backend.run1('matmul');
});

const fusedMatMul = defineKernel(tf._FusedMatMul, ({ inputs, backend, attrs }) => {
  const a = attrsOf<tf._FusedMatMulAttrs>(attrs);
  backend
    .args(input(inputs, 'a'), input(inputs, 'b'), inputs.bias, inputs.preluActivationWeights)
    .flag(a.transposeA)
    .flag(a.transposeB)
    .int(activationCode(a.activation))
    .num(a.leakyreluAlpha ?? 0.2);
  return backend.run1('fused_matmul');
});

// --- convolution -------------------------------------------------------------------------------

interface ConvLikeAttrs {
  readonly strides: [number, number] | number;
  readonly pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  readonly dataFormat?: 'NHWC' | 'NCHW';
  readonly dilations?: [number, number] | number;
  readonly dimRoundingMode?: 'floor' | 'round' | 'ceil';
  readonly activation?: Activation;
  readonly leakyreluAlpha?: number;
}

function convKernel(kernel: string, depthwise: boolean): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const filter = input(inputs, 'filter');
    const a = attrsOf<ConvLikeAttrs>(attrs);
    checkNhwc(kernel, a.dataFormat);
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      a.strides,
      a.dilations ?? 1,
      a.pad,
      a.dimRoundingMode,
      depthwise,
    );
    const w = backend.args(x, filter, inputs.bias, inputs.preluActivationWeights);
    writeGeometry(w, info, depthwise)
      .int(activationCode(a.activation))
      .int(info.outHeight)
      .int(info.outWidth)
      .num(a.leakyreluAlpha ?? 0.2);
    return backend.run1('conv2d');
  });
}

function convInputGradKernel(kernel: string, depthwise: boolean): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const dy = input(inputs, 'dy');
    const filter = input(inputs, 'filter');
    const a = attrsOf<ConvLikeAttrs & { inputShape: [number, number, number, number] }>(attrs);
    checkNhwc(kernel, a.dataFormat);
    const info = tf.backend_util.computeConv2DInfo(
      a.inputShape,
      filter.shape as [number, number, number, number],
      a.strides,
      a.dilations ?? 1,
      a.pad,
      a.dimRoundingMode,
      depthwise,
    );
    writeGeometry(backend.args(dy, filter).ints(a.inputShape), info, depthwise);
    return backend.run1('conv2d_backprop_input');
  });
}

function convFilterGradKernel(kernel: string, depthwise: boolean): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const dy = input(inputs, 'dy');
    const a = attrsOf<ConvLikeAttrs & { filterShape: [number, number, number, number] }>(attrs);
    checkNhwc(kernel, a.dataFormat);
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      a.filterShape,
      a.strides,
      a.dilations ?? 1,
      a.pad,
      a.dimRoundingMode,
      depthwise,
    );
    writeGeometry(backend.args(x, dy).ints(a.filterShape), info, depthwise);
    return backend.run1('conv2d_backprop_filter');
  });
}

// --- pooling -----------------------------------------------------------------------------------

function poolInfo(shape: readonly number[], attrs: tf.NamedAttrMap): tf.backend_util.Conv2DInfo {
  const a = attrsOf<tf.MaxPoolAttrs>(attrs);
  return tf.backend_util.computePool2DInfo(
    shape as [number, number, number, number],
    a.filterSize,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
}

function writePool(w: ArgWriter, info: tf.backend_util.Conv2DInfo): ArgWriter {
  const p = info.padInfo;
  return w
    .int(info.filterHeight)
    .int(info.filterWidth)
    .int(info.strideHeight)
    .int(info.strideWidth)
    .int(p.top)
    .int(p.bottom)
    .int(p.left)
    .int(p.right);
}

/** Fails loudly if libtorch's pooling arithmetic disagreed with tfjs' (exotic rounding modes). */
function expectShape(
  backend: TorchBackend,
  out: tf.TensorInfo,
  want: readonly number[],
  kernel: string,
): tf.TensorInfo {
  if (out.shape.length === want.length && out.shape.every((d, i) => d === want[i])) return out;
  backend.disposeData(out.dataId, true);
  throw new Error(`torch backend: ${kernel} produced [${out.shape}] where tfjs expects [${want}]`);
}

function poolKernel(kernel: string, op: 'max_pool' | 'avg_pool'): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    const info = poolInfo(x.shape, attrs);
    writePool(backend.args(x), info);
    return expectShape(backend, backend.run1(op), info.outShape, kernel);
  });
}

function poolGradKernel(kernel: string, op: 'max_pool_grad' | 'avg_pool_grad'): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'input');
    writePool(backend.args(input(inputs, 'dy'), x), poolInfo(x.shape, attrs));
    return backend.run1(op);
  });
}

// --- misc --------------------------------------------------------------------------------------

const fusedBatchNorm = defineKernel(tf.FusedBatchNorm, ({ inputs, backend, attrs }) => {
  const { varianceEpsilon } = attrsOf<tf.FusedBatchNormAttrs>(attrs);
  const x = input(inputs, 'x');
  backend
    .args(x, input(inputs, 'mean'), input(inputs, 'variance'), inputs.offset, inputs.scale)
    .num(varianceEpsilon);
  return backend.run1('batch_norm');
});

const einsum = defineKernel(tf.Einsum, ({ inputs, backend, attrs }) => {
  backend.argsList(inputList(inputs)).str(attrsOf<tf.EinsumAttrs>(attrs).equation);
  return backend.run1('einsum');
});

/** All network kernels. */
export function nnKernels(): TorchKernel[] {
  return [
    batchMatMul,
    fusedMatMul,
    convKernel(tf.Conv2D, false),
    convKernel(tf.FusedConv2D, false),
    convKernel(tf.DepthwiseConv2dNative, true),
    convKernel(tf.FusedDepthwiseConv2D, true),
    convInputGradKernel(tf.Conv2DBackpropInput, false),
    convInputGradKernel(tf.DepthwiseConv2dNativeBackpropInput, true),
    convFilterGradKernel(tf.Conv2DBackpropFilter, false),
    convFilterGradKernel(tf.DepthwiseConv2dNativeBackpropFilter, true),
    poolKernel(tf.MaxPool, 'max_pool'),
    poolKernel(tf.AvgPool, 'avg_pool'),
    poolGradKernel(tf.MaxPoolGrad, 'max_pool_grad'),
    poolGradKernel(tf.AvgPoolGrad, 'avg_pool_grad'),
    fusedBatchNorm,
    einsum,
  ];
}
