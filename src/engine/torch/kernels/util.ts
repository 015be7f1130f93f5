// Helpers shared by the torch kernel files: kernel definition, input lookup, dtype codes, axes.
import * as tf from '../../../core/tf.js';
import type { TorchBackend } from '../backend.js';
import { DTYPE_CODES } from '../protocol.js';

/** What a torch kernel function receives. */
export interface TorchKernelArgs {
  readonly inputs: tf.NamedTensorInfoMap;
  readonly backend: TorchBackend;
  readonly attrs: tf.NamedAttrMap;
}

/** A kernel for the 'torch' backend (backendName is added at registration). */
export interface TorchKernel {
  readonly kernelName: string;
  readonly kernelFunc: tf.KernelFunc;
}

/** Wraps a typed kernel body as a tfjs KernelFunc. */
export function defineKernel(
  kernelName: string,
  body: (args: TorchKernelArgs) => tf.TensorInfo | tf.TensorInfo[],
): TorchKernel {
  return {
    kernelName,
    kernelFunc: ({ inputs, backend, attrs }) =>
      body({ inputs, backend: backend as TorchBackend, attrs: attrs ?? {} }),
  };
}

/** A named kernel input; throws if tfjs did not pass it. */
export function input(inputs: tf.NamedTensorInfoMap, name: string): tf.TensorInfo {
  const t = inputs[name];
  if (t === undefined) throw new Error(`torch backend: missing kernel input '${name}'`);
  return t;
}

/** Inputs passed as an array (AddN, Concat, Pack, Einsum). */
export function inputList(inputs: tf.NamedTensorInfoMap): tf.TensorInfo[] {
  return Object.values(inputs).filter((t): t is tf.TensorInfo => t !== undefined);
}

/** Attributes typed as the kernel's tfjs Attrs interface. */
export function attrsOf<T>(attrs: tf.NamedAttrMap): T {
  return attrs as unknown as T;
}

/** The addon's code for a tfjs dtype; string/complex tensors never reach libtorch. */
export function dtypeCode(dtype: tf.DataType): number {
  if (dtype === 'float32' || dtype === 'int32' || dtype === 'bool') return DTYPE_CODES[dtype];
  throw new Error(`torch backend: dtype ${dtype} is not supported in kernels`);
}

/** Normalised (non-negative, unique, ascending) axes for a reduction. */
export function reductionAxes(
  axis: number | number[] | null | undefined,
  shape: readonly number[],
): number[] {
  // null/undefined means "all axes" (tfjs passes null for a full reduction).
  const axes = axis == null ? shape.map((_, i) => i) : tf.util.parseAxisParam(axis, [...shape]);
  return [...new Set(axes)].sort((a, b) => a - b);
}
