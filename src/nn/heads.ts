// Trainable discriminator heads on the feature maps of a frozen (LADD) or trainable (PADD) U-Net encoder:
// conv3x3 -> GroupNorm -> SiLU -> conv3x3 -> conv1x1 -> mean (METHODS.md section 3), conditioned on the noise level
// and the class by FiLM after the GroupNorm. One independent head per tapped feature.
import type { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { classEmbedding, conv2d, groupNorm, linear, silu, sinusoidalEmbedding } from './layers.js';
import { initParams, ParamScope, type Params } from './params.js';
import { type Feature, featureChannels, type UNetConfig } from './unet.js';

/** One tapped feature: where it comes from and how many channels it has. */
/** Logits of every discriminator head for one batch: one [B] tensor per head. */
export type HeadLogits = readonly tf.Tensor1D[];

export interface TappedFeature {
  readonly name: string;
  readonly channels: number;
}

export interface HeadsConfig {
  /** The tapped features, in the order the heads read them. */
  readonly features: readonly TappedFeature[];
  /** Width of each head's hidden convolutions. */
  readonly channels: number;
  /** GroupNorm groups; must divide `channels`. */
  readonly groups: number;
  /** Width of the noise-level / class conditioning embedding. */
  readonly embedDim: number;
  /** Classes of the condition (0: no class conditioning); label `numClasses` is the null class. */
  readonly numClasses: number;
  /** Width of a pooled prompt embedding to condition on instead of a class (prompt-conditional teachers). */
  readonly promptWidth?: number;
}

/**
 * What the heads are conditioned on: class labels int32 [B], or a frozen text encoder's pooled prompt embedding
 * [B, promptWidth] (as SD3-Turbo's heads take the pooled text embedding).
 */
export type HeadCondition = tf.Tensor1D | tf.Tensor2D;

/** Names of the features a U-Net's encoder can give, in the order `unetEncoderForward` returns them. */
export function unetFeatureNames(cfg: UNetConfig): string[] {
  return [...cfg.channels.map((_, level) => `down.${level}`), 'mid'];
}

/** The tapped features of `cfg`'s encoder named in `names` ('all': every level and the middle block). */
export function tapUNetFeatures(cfg: UNetConfig, names: 'all' | readonly string[]): TappedFeature[] {
  const known = unetFeatureNames(cfg);
  const widths = featureChannels(cfg);
  const chosen = names === 'all' ? known : names;
  if (chosen.length === 0) throw new Error('tap at least one feature for the discriminator heads');
  return chosen.map((name) => {
    const i = known.indexOf(name);
    if (i < 0) throw new Error(`no U-Net feature named "${name}"; this U-Net has: ${known.join(', ')}`);
    return { name, channels: widths[i]! };
  });
}

/** The tapped feature maps out of all of an encoder's features, in `cfg.features` order. */
export function pickFeatures(all: readonly Feature[], cfg: HeadsConfig): tf.Tensor4D[] {
  return cfg.features.map(({ name }) => {
    const found = all.find((f) => f.name === name);
    if (!found) {
      throw new Error(`feature "${name}" was not produced; got: ${all.map((f) => f.name).join(', ')}`);
    }
    return found.x;
  });
}

// ---------------------------------------------------------------------------------------------------------------

const headKey = (name: string): string => name.replaceAll('.', '');

/** One head: [B, H, W, Cin] feature map and [B, embedDim] condition -> [B] logits. */
function head(s: ParamScope, cfg: HeadsConfig, x: tf.Tensor4D, emb: tf.Tensor2D): tf.Tensor1D {
  const [b] = x.shape;
  const c = cfg.channels;
  const h1 = conv2d(s.child('conv1'), x, c);
  // FiLM: the condition scales and shifts the normalised activations; zero-initialised, so a fresh head starts
  // unconditional and learns how much to use t_hat and the class.
  const film = linear(s.child('film'), silu(emb), 2 * c, { zeroInit: true }).reshape([b, 1, 1, 2 * c]);
  const [scale, shift] = tf.split(film, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
  const normed = groupNorm(s.child('norm'), h1, cfg.groups, { modulation: { scale, shift }, silu: true });
  const h2 = conv2d(s.child('conv2'), normed, c);
  const logitMap = conv2d(s.child('out'), h2, 1, { kernel: 1 }); // [B, H, W, 1]
  return logitMap.mean([1, 2, 3]) as tf.Tensor1D; // one logit per sample
}

/** Condition embedding: sinusoidal(netTime) -> linear, plus a class embedding (with the null row) or a projection of the pooled prompt. */
function condition(s: ParamScope, cfg: HeadsConfig, netTime: tf.Tensor1D, cond: HeadCondition): tf.Tensor2D {
  let emb = linear(s.child('time'), sinusoidalEmbedding(netTime, cfg.embedDim), cfg.embedDim) as tf.Tensor2D;
  if (cfg.promptWidth !== undefined) {
    if (cond.rank !== 2 || cond.shape[1] !== cfg.promptWidth)
      throw new Error(
        `the heads take a pooled prompt embedding [B, ${cfg.promptWidth}], got [${cond.shape}]`,
      );
    emb = emb.add(linear(s.child('prompt'), cond, cfg.embedDim));
  } else if (cfg.numClasses > 0) {
    if (cond.rank !== 1) throw new Error(`the heads take class labels [B], got [${cond.shape}]`);
    emb = emb.add(classEmbedding(s.child('class'), cond as tf.Tensor1D, cfg.numClasses, cfg.embedDim));
  }
  return emb;
}

function forward(
  s: ParamScope,
  cfg: HeadsConfig,
  features: readonly tf.Tensor4D[],
  netTime: tf.Tensor1D,
  cond: HeadCondition,
): tf.Tensor1D[] {
  if (features.length !== cfg.features.length) {
    throw new Error(`the heads read ${cfg.features.length} features but got ${features.length}`);
  }
  return cfg.features.map(({ name, channels }, k) => {
    const x = features[k]!;
    if (x.shape[3] !== channels) {
      throw new Error(`feature "${name}" has ${x.shape[3]} channels but its head was built for ${channels}`);
    }
    const hs = s.child(headKey(name));
    return head(hs, cfg, x, condition(hs.child('cond'), cfg, netTime, cond));
  });
}

/**
 * Per-head logits, one [B] tensor per tapped feature. `features` in `cfg.features` order (see `pickFeatures`);
 * `netTime` is the re-noising time as the network's time input (0..~1000); `cond` the batch's HeadCondition.
 * Runs inside the caller's tidy / gradient scope.
 */
export function headLogits(
  params: Params,
  cfg: HeadsConfig,
  features: readonly tf.Tensor4D[],
  netTime: tf.Tensor1D,
  cond: HeadCondition,
): HeadLogits {
  return forward(ParamScope.apply(params), cfg, features, netTime, cond);
}

/** Fresh head parameters (keys `<feature>.<layer>...`, e.g. `down0.conv1.w`); caller owns them. */
export function initHeads(cfg: HeadsConfig, rng: Rng): Params {
  if (cfg.channels % cfg.groups !== 0) {
    throw new Error(`head groups=${cfg.groups} do not divide head channels=${cfg.channels}`);
  }
  const keys = cfg.features.map((f) => headKey(f.name));
  if (new Set(keys).size !== keys.length) throw new Error(`tapped features repeat: ${keys.join(', ')}`);
  return initParams(rng, (s) => {
    const features = cfg.features.map((f) => tf.zeros([1, 4, 4, f.channels]) as tf.Tensor4D);
    const cond = cfg.promptWidth === undefined ? tf.zeros([1], 'int32') : tf.zeros([1, cfg.promptWidth]);
    forward(s, cfg, features, tf.zeros([1]), cond as HeadCondition);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// PADD's head (METHODS.md section 2): on the last feature map of a trainable U-Net encoder copy, conv3x3 ->
// GroupNorm -> SiLU -> conv3x3 to a logit map, one logit per position (PatchGAN style). The encoder already
// conditions its features on the time and class, so the head takes no condition of its own.

export interface PatchHeadConfig {
  /** Channels of the feature map the head reads (twice the encoder's width for PADD's conditional form). */
  readonly inChannels: number;
  readonly channels: number;
  readonly groups: number;
}

function patchHead(s: ParamScope, cfg: PatchHeadConfig, x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] !== cfg.inChannels) {
    throw new Error(`the patch head was built for ${cfg.inChannels} input channels but got ${x.shape[3]}`);
  }
  const h = groupNorm(s.child('norm'), conv2d(s.child('conv1'), x, cfg.channels), cfg.groups, { silu: true });
  return conv2d(s.child('out'), h, 1);
}

/**
 * The patch head's logits, flattened to one [B * H * W] vector so the shared GAN losses average over positions
 * and samples alike. Runs inside the caller's tidy / gradient scope.
 */
export function patchHeadLogits(params: Params, cfg: PatchHeadConfig, x: tf.Tensor4D): HeadLogits {
  return [patchHead(ParamScope.apply(params), cfg, x).reshape([-1]) as tf.Tensor1D];
}

/** Fresh patch-head parameters (`conv1.w`, `norm.*`, `out.w`, ...); caller owns them. */
export function initPatchHead(cfg: PatchHeadConfig, rng: Rng): Params {
  if (cfg.channels % cfg.groups !== 0) {
    throw new Error(`head groups=${cfg.groups} do not divide head channels=${cfg.channels}`);
  }
  return initParams(rng, (s) => patchHead(s, cfg, tf.zeros([1, 4, 4, cfg.inChannels]) as tf.Tensor4D));
}
