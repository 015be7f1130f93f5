// Names of the addon's ops (native/src/ops_*.cc); the backend checks the built addon has them all.

/** Every native op the kernels call. */
export const NATIVE_OPS = [
  // elementwise
  'neg',
  'abs',
  'square',
  'relu',
  'sign',
  'identity',
  'logical_not',
  'zeros_like',
  'ones_like',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'sigmoid',
  'tanh',
  'relu6',
  'elu',
  'selu',
  'sin',
  'cos',
  'tan',
  'asin',
  'acos',
  'atan',
  'sinh',
  'cosh',
  'asinh',
  'acosh',
  'atanh',
  'softplus',
  'floor',
  'ceil',
  'round',
  'isnan',
  'isinf',
  'isfinite',
  'reciprocal',
  'erf',
  'log1p',
  'expm1',
  'leaky_relu',
  'step',
  'clip',
  'cast',
  'elu_grad',
  'add',
  'sub',
  'mul',
  'div',
  'floor_div',
  'mod',
  'maximum',
  'minimum',
  'pow',
  'squared_difference',
  'atan2',
  'equal',
  'not_equal',
  'greater',
  'greater_equal',
  'less',
  'less_equal',
  'logical_and',
  'logical_or',
  'logical_xor',
  'prelu',
  'select',
  'add_n',
  // indexing
  'gather',
  'gather_nd',
  'scatter_nd',
  'unsorted_segment_sum',
  // network
  'matmul',
  'fused_matmul',
  'conv2d',
  'conv2d_backprop_input',
  'conv2d_backprop_filter',
  'max_pool',
  'max_pool_grad',
  'avg_pool',
  'avg_pool_grad',
  'resize_bilinear',
  'resize_bilinear_grad',
  'resize_nearest',
  'resize_nearest_grad',
  'batch_norm',
  'einsum',
  // fused (ops_fused.cc)
  'group_norm_act',
  'group_norm_act_grad',
  'attention',
  'attention_grad',
  'adam_step',
  'ema_step',
  // reductions
  'sum',
  'mean',
  'max',
  'min',
  'prod',
  'all',
  'any',
  'argmax',
  'argmin',
  'softmax',
  'log_softmax',
  'cumsum',
  'cumprod',
  'topk',
  // layout and factories
  'reshape',
  'transpose',
  'concat',
  'slice',
  'strided_slice',
  'stack',
  'unstack',
  'split',
  'tile',
  'broadcast_to',
  'pad',
  'mirror_pad',
  'reverse',
  'fill',
  'range',
  'linspace',
  'one_hot',
  // collectives (distributed.cc)
  'dist_init',
  'dist_allreduce_mean',
  'dist_broadcast',
  'dist_allgather',
  'dist_barrier',
  'dist_shutdown',
] as const;

/** A native op name. */
export type OpName = (typeof NATIVE_OPS)[number];

/** Maps op names to the codes of this particular addon build; throws if the build is stale. */
export function resolveOpCodes(nativeNames: readonly string[]): ReadonlyMap<OpName, number> {
  const index = new Map(nativeNames.map((name, code) => [name, code]));
  const codes = new Map<OpName, number>();
  const missing: string[] = [];
  for (const name of NATIVE_OPS) {
    const code = index.get(name);
    if (code === undefined) missing.push(name);
    else codes.set(name, code);
  }
  if (missing.length > 0) {
    throw new Error(
      `torch backend: the built addon lacks ops [${missing.join(', ')}]; it is older than the TS side. ` +
        'Rebuild it with `npm run build:native`.',
    );
  }
  return codes;
}
