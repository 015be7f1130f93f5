// Fused ops for training's hot paths. On a backend that registers the fused kernel (torch), each is one kernel
// with its own gradient kernel, in place of a graph of small ones; elsewhere (wasm, cpu, webgpu) each runs the
// graph it replaces, which is also the reference the tests compare the kernels with.
import * as tf from '../core/tf.js';

/** Kernel names (a backend opts in by registering them). */
export const FUSED_KERNELS = {
  groupNormAct: 'LadderGroupNormAct',
  groupNormActGrad: 'LadderGroupNormActGrad',
  attention: 'LadderAttention',
  attentionGrad: 'LadderAttentionGrad',
  adamStep: 'LadderAdamStep',
  emaStep: 'LadderEmaStep',
} as const;

/** Whether the active backend runs `kernel` as one fused kernel. */
export function hasFusedKernel(kernel: string): boolean {
  return tf.getKernel(kernel, tf.getBackend()) !== undefined;
}

/** Set through {@link withoutFusion} (the tests compare each kernel with its graph). */
let fusionDisabled = false;

/** Runs `f` with the fused kernels off (the graphs they replace run instead). */
export function withoutFusion<T>(f: () => T): T {
  const before = fusionDisabled;
  fusionDisabled = true;
  try {
    return f();
  } finally {
    fusionDisabled = before;
  }
}

const fused = (kernel: string): boolean => !fusionDisabled && hasFusedKernel(kernel);

/**
 * Whether a gradient being computed is itself recorded (a gradient of a gradient, as exact R1 takes): the fused
 * gradient kernels have no gradients of their own, so then the backward pass runs the graph's.
 */
const secondOrder = (): boolean => tf.engine().isTapeOn();

// ---------------------------------------------------------------------------------------------------------------
// GroupNorm (Wu & He 2018), with its affine, an optional per-sample modulation and an optional SiLU.

export interface GroupNormActOptions {
  readonly groups: number;
  readonly eps?: number;
  /** Per-channel affine [C]. */
  readonly gamma?: tf.Tensor1D;
  readonly beta?: tf.Tensor1D;
  /** Per-sample modulation after the affine, [B, C] or [B, 1, 1, C]: y * (1 + scale) + shift. Both or neither. */
  readonly scale?: tf.Tensor;
  readonly shift?: tf.Tensor;
  /** Apply SiLU (x * sigmoid(x)) last. */
  readonly silu?: boolean;
}

/** silu(GroupNorm(x) * gamma + beta) * (1 + scale) + shift)), the parts not asked for left out; x is NHWC. */
export function groupNormAct(x: tf.Tensor4D, o: GroupNormActOptions): tf.Tensor4D {
  const c = x.shape[3];
  if (c % o.groups !== 0) throw new Error(`GroupNorm: ${c} channels do not split into ${o.groups} groups`);
  if ((o.scale === undefined) !== (o.shift === undefined)) {
    throw new Error('GroupNorm: scale and shift go together');
  }
  if (!fused(FUSED_KERNELS.groupNormAct)) return groupNormActGraph(x, o);
  const attrs = { groups: o.groups, eps: o.eps ?? 1e-5, silu: o.silu ?? false };
  const named = { gamma: o.gamma, beta: o.beta, scale: o.scale, shift: o.shift };
  const present = Object.entries(named).filter((e): e is [string, tf.Tensor] => e[1] !== undefined);
  const names = ['x', ...present.map(([name]) => name)];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const inputs = args.slice(0, names.length) as tf.Tensor[];
    const save = args[names.length] as tf.GradSaveFunc;
    const map = Object.fromEntries(names.map((name, i) => [name, inputs[i]!]));
    // The kernel also gives the statistics [N, G]: the gradient kernel reuses them instead of recomputing.
    const [value, mean, rstd] = tf.engine().runKernel(FUSED_KERNELS.groupNormAct, map, attrs) as [
      tf.Tensor4D,
      tf.Tensor,
      tf.Tensor,
    ];
    save([...inputs, mean, rstd]);
    tf.dispose([mean, rstd]); // save() keeps its own references
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        if (secondOrder()) {
          const graph = (...ts: tf.Tensor[]): tf.Tensor => {
            const t = Object.fromEntries(names.map((name, i) => [name, ts[i]!]));
            return groupNormActGraph(t.x as tf.Tensor4D, {
              ...o,
              ...(t.gamma && t.beta ? { gamma: t.gamma as tf.Tensor1D, beta: t.beta as tf.Tensor1D } : {}),
              ...(t.scale && t.shift ? { scale: t.scale, shift: t.shift } : {}),
            });
          };
          return tf.grads(graph)(saved.slice(0, names.length), dy);
        }
        const named = Object.fromEntries(names.map((name, i) => [name, saved[i]!]));
        const stats = { mean: saved[names.length]!, rstd: saved[names.length + 1]! };
        return tf
          .engine()
          .runKernel(FUSED_KERNELS.groupNormActGrad, { dy, ...stats, ...named }, attrs) as tf.Tensor[];
      },
    };
  });
  return op(x, ...present.map(([, t]) => t)) as tf.Tensor4D;
}

/** The graph {@link groupNormAct} fuses: statistics per sample and group of channels, over NHWC. */
export function groupNormActGraph(x: tf.Tensor4D, o: GroupNormActOptions): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const grouped = x.reshape([b, h, w, o.groups, c / o.groups]); // [B, H, W, G, C/G]
    const { mean, variance } = tf.moments(grouped, [1, 2, 4], true);
    let y = grouped
      .sub(mean)
      .mul(tf.rsqrt(variance.add(o.eps ?? 1e-5)))
      .reshape([b, h, w, c]) as tf.Tensor4D;
    if (o.gamma !== undefined) y = y.mul(o.gamma);
    if (o.beta !== undefined) y = y.add(o.beta);
    if (o.scale !== undefined && o.shift !== undefined) {
      y = y.mul(o.scale.reshape([b, 1, 1, c]).add(1)).add(o.shift.reshape([b, 1, 1, c]));
    }
    return o.silu ? tf.mul(y, tf.sigmoid(y)) : y;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Scaled dot-product attention.

/** softmax(q k^T * scale) v over [B, L, D] queries, keys and values. */
export function attention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, scale: number): tf.Tensor3D {
  if (!fused(FUSED_KERNELS.attention)) return attentionGraph(q, k, v, scale);
  const attrs = { scale };
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qi, ki, vi] = args as [tf.Tensor, tf.Tensor, tf.Tensor];
    (args[3] as tf.GradSaveFunc)([qi, ki, vi]);
    return {
      value: tf.engine().runKernel(FUSED_KERNELS.attention, { q: qi, k: ki, v: vi }, attrs) as tf.Tensor3D,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        if (secondOrder()) {
          const graph = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Tensor =>
            attentionGraph(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, scale);
          return tf.grads(graph)(saved, dy);
        }
        const inputs = { dy, q: saved[0]!, k: saved[1]!, v: saved[2]! };
        return tf.engine().runKernel(FUSED_KERNELS.attentionGrad, inputs, attrs) as tf.Tensor[];
      },
    };
  });
  return op(q, k, v) as tf.Tensor3D;
}

/** The graph {@link attention} fuses. */
export function attentionGraph(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, scale: number): tf.Tensor3D {
  return tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(q, k, false, true).mul(scale)), v));
}

// ---------------------------------------------------------------------------------------------------------------
// Whole-network updates: no gradients, one call for every tensor of a network.

export interface AdamStepSettings {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Clip the global gradient norm to this (0: off). */
  readonly clipNorm: number;
  /** Bias corrections 1 - beta1^t and 1 - beta2^t. */
  readonly c1: number;
  readonly c2: number;
}

export interface AdamStepResult {
  readonly params: tf.Tensor[];
  readonly m: tf.Tensor[];
  readonly v: tf.Tensor[];
  /** Global gradient norm before clipping. */
  readonly gradNorm: tf.Scalar;
}

/**
 * One AdamW update of every tensor in `params` (with its gradient and moments at the same index); the clipping
 * factor min(1, clipNorm / norm) stays on the device. The caller owns the results and keeps the inputs.
 */
export function adamStep(
  params: readonly tf.Tensor[],
  grads: readonly tf.Tensor[],
  m: readonly tf.Tensor[],
  v: readonly tf.Tensor[],
  s: AdamStepSettings,
): AdamStepResult {
  const n = params.length;
  if (grads.length !== n || m.length !== n || v.length !== n) {
    throw new Error('adamStep: params, grads and moments differ in length');
  }
  if (fused(FUSED_KERNELS.adamStep)) {
    const inputs: tf.NamedTensorMap = {};
    for (const [prefix, list] of [
      ['p', params],
      ['g', grads],
      ['m', m],
      ['v', v],
    ] as const) {
      list.forEach((t, i) => {
        inputs[`${prefix}${i}`] = t;
      });
    }
    const out = tf.engine().runKernel(FUSED_KERNELS.adamStep, inputs, { n, ...s }) as tf.Tensor[];
    return {
      params: out.slice(0, n),
      m: out.slice(n, 2 * n),
      v: out.slice(2 * n, 3 * n),
      gradNorm: out[3 * n] as tf.Scalar,
    };
  }
  return adamStepGraph(params, grads, m, v, s);
}

/** The per-tensor graph {@link adamStep} fuses. */
export function adamStepGraph(
  params: readonly tf.Tensor[],
  grads: readonly tf.Tensor[],
  m: readonly tf.Tensor[],
  v: readonly tf.Tensor[],
  s: AdamStepSettings,
): AdamStepResult {
  const gradNorm = tf.tidy(() => tf.addN(grads.map((g) => g.square().sum())).sqrt() as tf.Scalar);
  // min(1, clipNorm / norm): 1 for a zero norm (the quotient is +Inf), NaN for a NaN norm (caught by the loop).
  const clip = s.clipNorm > 0 ? tf.tidy(() => tf.minimum(1, tf.div(s.clipNorm, gradNorm))) : undefined;
  const result: AdamStepResult = { params: [], m: [], v: [], gradNorm };
  params.forEach((p, i) => {
    const [m1, v1, p1] = tf.tidy(() => {
      const g = grads[i]!;
      const gc = clip === undefined ? g : g.mul(clip);
      const mNext = m[i]!.mul(s.beta1).add(gc.mul(1 - s.beta1));
      const vNext = v[i]!.mul(s.beta2).add(gc.square().mul(1 - s.beta2));
      const step = mNext.div(s.c1).div(vNext.div(s.c2).sqrt().add(s.eps));
      const decayed = s.weightDecay > 0 ? p.mul(1 - s.lr * s.weightDecay) : p;
      return [mNext, vNext, decayed.sub(step.mul(s.lr))];
    });
    result.params.push(p1);
    result.m.push(m1);
    result.v.push(v1);
  });
  clip?.dispose();
  return result;
}

/** average * beta + source * (1 - beta) for each pair: an EMA update of a whole network. Caller owns the result. */
export function emaStep(
  average: readonly tf.Tensor[],
  source: readonly tf.Tensor[],
  beta: number,
): tf.Tensor[] {
  const n = average.length;
  if (source.length !== n) throw new Error('emaStep: average and source differ in length');
  if (fused(FUSED_KERNELS.emaStep)) {
    const inputs: tf.NamedTensorMap = {};
    average.forEach((t, i) => {
      inputs[`a${i}`] = t;
    });
    source.forEach((t, i) => {
      inputs[`s${i}`] = t;
    });
    return tf.engine().runKernel(FUSED_KERNELS.emaStep, inputs, { n, beta }) as tf.Tensor[];
  }
  return average.map((a, i) => tf.tidy(() => a.mul(beta).add(source[i]!.mul(1 - beta))));
}
