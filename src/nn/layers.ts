// Building blocks over tfjs-core ops. Each layer is a function of (scope, input, options): the same code creates
// the parameters (init scope) and applies them (apply scope). Layout is NHWC throughout.
import * as tf from '../core/tf.js';
import { attention, groupNormAct } from '../engine/fused.js';
import { heNormal, normal, type ParamScope, zeros } from './params.js';

export interface Conv2dOptions {
  readonly kernel?: number;
  readonly stride?: 1 | 2;
  readonly bias?: boolean;
  /** Zero-initialised output (residual branches and final layers start as identity / zero). */
  readonly zeroInit?: boolean;
}

/** 2-D convolution, 'same' padding. x: [B, H, W, Cin] -> [B, ceil(H/stride), ceil(W/stride), outChannels]. */
export function conv2d(
  s: ParamScope,
  x: tf.Tensor4D,
  outChannels: number,
  opts: Conv2dOptions = {},
): tf.Tensor4D {
  const { kernel = 3, stride = 1, bias = true, zeroInit = false } = opts;
  const inChannels = x.shape[3];
  const w = s.param(
    'w',
    [kernel, kernel, inChannels, outChannels],
    zeroInit ? zeros : heNormal(),
  ) as tf.Tensor4D;
  if (!bias) return tf.conv2d(x, w, stride, 'same');
  // The bias inside the convolution kernel: no separate pass over the output (tfjs fuses it under gradients too).
  return tf.fused.conv2d({
    x,
    filter: w,
    strides: stride,
    pad: 'same',
    bias: s.param('b', [outChannels], zeros),
  });
}

/** Dense layer on the last axis. x: [..., in] -> [..., out]. */
export function linear(
  s: ParamScope,
  x: tf.Tensor,
  outDim: number,
  opts: { zeroInit?: boolean } = {},
): tf.Tensor {
  const inDim = x.shape[x.rank - 1]!;
  const w = s.param('w', [inDim, outDim], opts.zeroInit ? zeros : heNormal()) as tf.Tensor2D;
  const flat = x.rank === 2 ? (x as tf.Tensor2D) : x.reshape([-1, inDim]);
  const y = tf.add(tf.matMul(flat, w), s.param('b', [outDim], zeros));
  return x.rank === 2 ? y : y.reshape([...x.shape.slice(0, -1), outDim]);
}

export const silu = <T extends tf.Tensor>(x: T): T => tf.mul(x, tf.sigmoid(x));

/**
 * GroupNorm (Wu & He 2018) over NHWC: statistics per sample and group of channels. With `affine` the layer has
 * its own scale and shift; adaptive variants pass `affine: false` and a per-sample modulation (1 + scale, shift).
 * `silu` applies SiLU last. On the torch backend all of it is one fused kernel (engine/fused.ts).
 */
export function groupNorm(
  s: ParamScope,
  x: tf.Tensor4D,
  groups: number,
  opts: {
    affine?: boolean;
    eps?: number;
    modulation?: { readonly scale: tf.Tensor; readonly shift: tf.Tensor };
    silu?: boolean;
  } = {},
): tf.Tensor4D {
  const { affine = true, eps = 1e-5, modulation, silu: act = false } = opts;
  const c = x.shape[3];
  const gamma = affine ? (s.param('scale', [c], (shape) => tf.ones([...shape])) as tf.Tensor1D) : undefined;
  const beta = affine ? (s.param('shift', [c], zeros) as tf.Tensor1D) : undefined;
  return groupNormAct(x, {
    groups,
    eps,
    silu: act,
    ...(gamma && beta ? { gamma, beta } : {}),
    ...(modulation ? { scale: modulation.scale, shift: modulation.shift } : {}),
  });
}

/** Multi-head self-attention over the H*W positions, with a residual connection. x: [B, H, W, C]. */
export function selfAttention(s: ParamScope, x: tf.Tensor4D, heads: number, groups: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  if (c % heads !== 0) throw new Error(`attention: ${c} channels do not split into ${heads} heads`);
  const dHead = c / heads;
  const qkv = linear(s.child('qkv'), groupNorm(s.child('norm'), x, groups).reshape([b, h * w, c]), 3 * c);
  // [B, HW, 3, heads, dHead] -> three [B*heads, HW, dHead]
  const split = qkv.reshape([b, h * w, 3, heads, dHead]).transpose([2, 0, 3, 1, 4]);
  const [q, k, v] = tf.unstack(split).map((t) => t.reshape([b * heads, h * w, dHead]) as tf.Tensor3D) as [
    tf.Tensor3D,
    tf.Tensor3D,
    tf.Tensor3D,
  ];
  const attended = attention(q, k, v, 1 / Math.sqrt(dHead))
    .reshape([b, heads, h * w, dHead])
    .transpose([0, 2, 1, 3]);
  const out = linear(s.child('out'), attended.reshape([b, h * w, c]), c, { zeroInit: true });
  return x.add(out.reshape([b, h, w, c]));
}

/**
 * Rotary position embedding (RoPE, Su et al. 2021) on per-head queries or keys x [B*heads, L, dHead]: channel pairs
 * (i, i + F) of the first 2F channels turn by the angle position * frequencies[i], the rest pass unchanged (partial
 * rotary, as GPT-NeoX), so attention scores see position only as the difference between query and key positions
 * and a head can still attend by content. positions: [B or 1, L], constants (no gradient through them).
 */
export function rotary(
  x: tf.Tensor3D,
  positions: tf.Tensor2D,
  heads: number,
  frequencies: readonly number[],
): tf.Tensor3D {
  const [bh, l, dHead] = x.shape;
  const f = frequencies.length;
  if (f === 0) return x;
  if (2 * f > dHead) throw new Error(`rotary: ${f} frequencies need ${2 * f} channels, a head has ${dHead}`);
  const angles = positions
    .reshape([positions.shape[0], 1, l, 1])
    .mul(tf.tensor1d([...frequencies]).reshape([1, 1, 1, f]));
  const cos = tf.cos(angles);
  const sin = tf.sin(angles);
  const perSample = x.reshape([bh / heads, heads, l, dHead]);
  const sizes = dHead > 2 * f ? [f, f, dHead - 2 * f] : [f, f];
  const [x1, x2, ...rest] = tf.split(perSample, sizes, 3) as tf.Tensor4D[];
  const turned = [x1!.mul(cos).sub(x2!.mul(sin)), x1!.mul(sin).add(x2!.mul(cos))];
  return tf.concat([...turned, ...rest], 3).reshape([bh, l, dHead]) as tf.Tensor3D;
}

/** LayerNorm over the last axis with its own scale and shift. x: [..., C]. */
export function layerNorm(s: ParamScope, x: tf.Tensor, eps = 1e-5): tf.Tensor {
  const c = x.shape[x.rank - 1]!;
  const { mean, variance } = tf.moments(x, x.rank - 1, true);
  const normed = x.sub(mean).mul(tf.rsqrt(variance.add(eps)));
  return normed.mul(s.param('scale', [c], (shape) => tf.ones([...shape]))).add(s.param('shift', [c], zeros));
}

/** A prompt as cross-attention reads it. */
export interface PromptContext {
  /** Token states [B, L, D]. */
  readonly tokens: tf.Tensor3D;
  /** Each token's place in the prompt's reading order, in [0, 1] (see textEncoderForward), [B, L]. */
  readonly positions: tf.Tensor2D;
}

// Cross-attention's rotary frequencies, for positions in [0, 1]: the slowest turns half a circle across the whole
// width, the fastest separates places 1/16 of the width apart.
const CROSS_FREQUENCIES = [1, 2, 4, 8].map((k) => Math.PI * k);

/**
 * Multi-head cross-attention from the H*W positions to a prompt's token states, with a residual connection, as
 * in Stable Diffusion's transformer blocks. Queries carry their column as a fraction of the width and keys their
 * place in the prompt, both rotary, so a head can read the prompt left to right across the image at any width
 * and prompt length (the reading order of written text; a prompt that is not laid out will use the content half).
 * x: [B, H, W, C].
 */
export function crossAttention(
  s: ParamScope,
  x: tf.Tensor4D,
  context: PromptContext,
  heads: number,
  groups: number,
): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const l = context.tokens.shape[1];
  if (c % heads !== 0) throw new Error(`attention: ${c} channels do not split into ${heads} heads`);
  const dHead = c / heads;
  const frequencies = CROSS_FREQUENCIES.slice(0, Math.floor(dHead / 4));
  const heads3 = (t: tf.Tensor, len: number) =>
    t
      .reshape([b, len, heads, dHead])
      .transpose([0, 2, 1, 3])
      .reshape([b * heads, len, dHead]) as tf.Tensor3D;
  const columns = Float32Array.from({ length: h * w }, (_, i) => ((i % w) + 0.5) / w);
  const q = linear(s.child('q'), groupNorm(s.child('norm'), x, groups).reshape([b, h * w, c]), c);
  const kv = linear(s.child('kv'), context.tokens, 2 * c);
  const [k, v] = tf.split(kv, 2, 2);
  const attended = attention(
    rotary(heads3(q, h * w), tf.tensor2d(columns, [1, h * w]), heads, frequencies),
    rotary(heads3(k!, l), context.positions, heads, frequencies),
    heads3(v!, l),
    1 / Math.sqrt(dHead),
  )
    .reshape([b, heads, h * w, dHead])
    .transpose([0, 2, 1, 3]);
  const out = linear(s.child('out'), attended.reshape([b, h * w, c]), c, { zeroInit: true });
  return x.add(out.reshape([b, h, w, c]));
}

/**
 * Sinusoidal embedding of a (continuous) noise level, as in "Attention is all you need" / DDPM.
 * t: [B] -> [B, dim]. Callers scale t so that it spans about 0..1000.
 */
export function sinusoidalEmbedding(t: tf.Tensor1D, dim: number, maxPeriod = 10000): tf.Tensor2D {
  const half = Math.floor(dim / 2);
  const freqs = tf.exp(tf.range(0, half).mul(-Math.log(maxPeriod) / half)); // [half]
  const args = t.reshape([-1, 1]).mul(freqs.reshape([1, half])); // [B, half]
  return tf.concat([tf.cos(args), tf.sin(args)], 1) as tf.Tensor2D;
}

/** Sinusoidal features -> two-layer MLP. t: [B] -> [B, dim]. */
export function timestepEmbedding(s: ParamScope, t: tf.Tensor1D, baseDim: number, dim: number): tf.Tensor2D {
  const h = silu(linear(s.child('fc1'), sinusoidalEmbedding(t, baseDim), dim));
  return linear(s.child('fc2'), h, dim) as tf.Tensor2D;
}

/**
 * Learned class embedding with one extra row for the null class (index `numClasses`), which classifier-free
 * guidance uses for the unconditional prediction. labels: int32 [B] -> [B, dim].
 */
export function classEmbedding(
  s: ParamScope,
  labels: tf.Tensor1D,
  numClasses: number,
  dim: number,
): tf.Tensor2D {
  const table = s.param('table', [numClasses + 1, dim], normal(1)) as tf.Tensor2D;
  return tf.gather(table, labels.toInt());
}

/** Stride-2 3x3 convolution. [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C]. */
export function downsample(s: ParamScope, x: tf.Tensor4D): tf.Tensor4D {
  return conv2d(s.child('conv'), x, x.shape[3], { stride: 2 });
}

/**
 * Nearest 2x upsampling (by broadcasting, which has cheap gradients on every backend) cropped to `size`, then a
 * 3x3 convolution. Cropping lets odd sizes (7x7 latents: 7 -> 4 -> 7) round-trip through the U-Net.
 */
export function upsample(s: ParamScope, x: tf.Tensor4D, size: readonly [number, number]): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const doubled = x
    .reshape([b, h, 1, w, 1, c])
    .mul(tf.ones([1, 1, 2, 1, 2, 1]))
    .reshape([b, 2 * h, 2 * w, c]) as tf.Tensor4D;
  const cropped =
    size[0] === 2 * h && size[1] === 2 * w ? doubled : doubled.slice([0, 0, 0, 0], [b, size[0], size[1], c]);
  return conv2d(s.child('conv'), cropped, c);
}
