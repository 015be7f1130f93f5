// Elementwise kernels: unary math, binary ops with broadcasting, casts, select, clip, AddN.
import * as tf from '../../../core/tf.js';
import type { OpName } from '../ops.js';
import { attrsOf, defineKernel, dtypeCode, input, inputList, type TorchKernel } from './util.js';

/** Result dtype: the input's (as tfjs-backend-cpu), or a fixed one. */
type OutDtype = 'same' | 'float32' | 'bool' | 'int32';

function resolveDtype(rule: OutDtype, inputDtype: tf.DataType): tf.DataType {
  return rule === 'same' ? inputDtype : rule;
}

// biome-ignore format: a table reads best one entry per line with aligned columns
const UNARY: ReadonlyArray<readonly [kernel: string, op: OpName, out: OutDtype]> = [
  [tf.Neg, 'neg', 'same'], [tf.Abs, 'abs', 'same'], [tf.Square, 'square', 'same'], [tf.Relu, 'relu', 'same'],
  [tf.Sign, 'sign', 'same'], [tf.Exp, 'exp', 'float32'], [tf.Log, 'log', 'same'], [tf.Sqrt, 'sqrt', 'same'],
  [tf.Rsqrt, 'rsqrt', 'same'], [tf.Sigmoid, 'sigmoid', 'same'], [tf.Tanh, 'tanh', 'same'],
  [tf.Relu6, 'relu6', 'same'], [tf.Elu, 'elu', 'same'], [tf.Selu, 'selu', 'same'], [tf.Sin, 'sin', 'same'],
  [tf.Cos, 'cos', 'same'], [tf.Tan, 'tan', 'same'], [tf.Asin, 'asin', 'same'], [tf.Acos, 'acos', 'same'],
  [tf.Atan, 'atan', 'same'], [tf.Sinh, 'sinh', 'same'], [tf.Cosh, 'cosh', 'same'], [tf.Asinh, 'asinh', 'same'],
  [tf.Acosh, 'acosh', 'same'], [tf.Atanh, 'atanh', 'same'], [tf.Softplus, 'softplus', 'same'],
  [tf.Floor, 'floor', 'same'], [tf.Ceil, 'ceil', 'same'], [tf.Round, 'round', 'same'],
  [tf.IsNan, 'isnan', 'bool'], [tf.IsInf, 'isinf', 'bool'], [tf.IsFinite, 'isfinite', 'bool'],
  [tf.Reciprocal, 'reciprocal', 'same'], [tf.Erf, 'erf', 'same'], [tf.Log1p, 'log1p', 'same'],
  [tf.Expm1, 'expm1', 'same'], [tf.LogicalNot, 'logical_not', 'bool'], [tf.ZerosLike, 'zeros_like', 'same'],
  [tf.OnesLike, 'ones_like', 'same'],
];

// biome-ignore format: a table reads best one entry per line with aligned columns
const BINARY: ReadonlyArray<readonly [kernel: string, op: OpName, out: OutDtype]> = [
  [tf.Add, 'add', 'same'], [tf.Sub, 'sub', 'same'], [tf.Multiply, 'mul', 'same'], [tf.RealDiv, 'div', 'same'],
  [tf.FloorDiv, 'floor_div', 'int32'], [tf.Mod, 'mod', 'same'], [tf.Maximum, 'maximum', 'same'],
  [tf.Minimum, 'minimum', 'same'], [tf.Pow, 'pow', 'same'], [tf.SquaredDifference, 'squared_difference', 'same'],
  [tf.Atan2, 'atan2', 'same'], [tf.Equal, 'equal', 'bool'], [tf.NotEqual, 'not_equal', 'bool'],
  [tf.Greater, 'greater', 'bool'], [tf.GreaterEqual, 'greater_equal', 'bool'], [tf.Less, 'less', 'bool'],
  [tf.LessEqual, 'less_equal', 'bool'], [tf.LogicalAnd, 'logical_and', 'bool'],
  [tf.LogicalOr, 'logical_or', 'bool'], [tf.LogicalXor, 'logical_xor', 'bool'],
];

function unaryKernel(kernel: string, op: OpName, out: OutDtype): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend }) => {
    const x = input(inputs, 'x');
    backend.args(x).int(dtypeCode(resolveDtype(out, x.dtype)));
    return backend.run1(op);
  });
}

function binaryKernel(kernel: string, op: OpName, out: OutDtype): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend }) => {
    const a = input(inputs, 'a');
    const b = input(inputs, 'b');
    const dtype = resolveDtype(out, tf.upcastType(a.dtype, b.dtype));
    backend.args(a, b).int(dtypeCode(dtype));
    return backend.run1(op);
  });
}

/** Unary kernels with one float attribute: x, dtype code; value. */
function unaryWithValue(kernel: string, op: OpName, read: (attrs: tf.NamedAttrMap) => number): TorchKernel {
  return defineKernel(kernel, ({ inputs, backend, attrs }) => {
    const x = input(inputs, 'x');
    backend.args(x).int(dtypeCode(x.dtype)).num(read(attrs));
    return backend.run1(op);
  });
}

const identity = defineKernel(tf.Identity, ({ inputs, backend }) => backend.alias(input(inputs, 'x')));

const cast = defineKernel(tf.Cast, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { dtype } = attrsOf<tf.CastAttrs>(attrs);
  if (dtype === x.dtype) return backend.alias(x);
  backend.args(x).int(dtypeCode(dtype));
  return backend.run1('cast');
});

const clip = defineKernel(tf.ClipByValue, ({ inputs, backend, attrs }) => {
  const x = input(inputs, 'x');
  const { clipValueMin, clipValueMax } = attrsOf<tf.ClipByValueAttrs>(attrs);
  backend.args(x).int(dtypeCode(x.dtype)).num(clipValueMin).num(clipValueMax);
  return backend.run1('clip');
});

const eluGrad = defineKernel(tf.EluGrad, ({ inputs, backend }) => {
  const dy = input(inputs, 'dy');
  const y = input(inputs, 'y');
  backend.args(dy, y).int(dtypeCode(dy.dtype));
  return backend.run1('elu_grad');
});

const prelu = defineKernel(tf.Prelu, ({ inputs, backend }) => {
  const x = input(inputs, 'x');
  const alpha = input(inputs, 'alpha');
  backend.args(x, alpha).int(dtypeCode(x.dtype));
  return backend.run1('prelu');
});

const select = defineKernel(tf.Select, ({ inputs, backend }) => {
  const condition = input(inputs, 'condition');
  const t = input(inputs, 't');
  const e = input(inputs, 'e');
  backend.args(condition, t, e).int(dtypeCode(tf.upcastType(t.dtype, e.dtype)));
  return backend.run1('select');
});

const addN = defineKernel(tf.AddN, ({ inputs, backend }) => {
  const xs = inputList(inputs);
  const first = xs[0];
  if (first === undefined) throw new Error('torch backend: AddN needs at least one tensor');
  if (xs.length === 1) return backend.alias(first);
  backend.argsList(xs).int(dtypeCode(first.dtype));
  return backend.run1('add_n');
});

/** All elementwise kernels. */
export function elementwiseKernels(): TorchKernel[] {
  return [
    ...UNARY.map(([kernel, op, out]) => unaryKernel(kernel, op, out)),
    ...BINARY.map(([kernel, op, out]) => binaryKernel(kernel, op, out)),
    unaryWithValue(tf.LeakyRelu, 'leaky_relu', (a) => attrsOf<tf.LeakyReluAttrs>(a).alpha),
    unaryWithValue(tf.Step, 'step', (a) => attrsOf<tf.StepAttrs>(a).alpha),
    identity,
    cast,
    clip,
    eluGrad,
    prelu,
    select,
    addN,
  ];
}
