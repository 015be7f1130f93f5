// A class- or prompt-conditional U-Net (DDPM/ADM family) whose encoder features can be tapped, and whose encoder
// alone (down + middle blocks) can run as a separate network on the same weights: the PADD and LADD discriminators.

import type { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import {
  classEmbedding,
  conv2d,
  crossAttention,
  downsample,
  groupNorm,
  linear,
  type PromptContext,
  selfAttention,
  silu,
  timestepEmbedding,
  upsample,
} from './layers.js';
import { initParams, ParamScope, type Params, selectParams } from './params.js';
import {
  emptyPromptTokens,
  type TextEncoderConfig,
  textEncoderForward,
  validateTextEncoderConfig,
} from './text-encoder.js';

export interface UNetConfig {
  /** Channels of the network's input and output (latent channels for a latent model). */
  readonly inChannels: number;
  readonly outChannels: number;
  /** Channel width per resolution level; each level after the first halves the resolution. */
  readonly channels: readonly number[];
  /** Residual blocks per level in the encoder (the decoder has one more, as in DDPM). */
  readonly blocksPerLevel: number;
  /** Levels (indices into `channels`) that get self-attention after each residual block. */
  readonly attentionLevels: readonly number[];
  /** Self-attention in the middle block. */
  readonly midAttention: boolean;
  /** Number of classes; 0 for an unconditional net. Label `numClasses` is the null class for CFG. */
  readonly numClasses: number;
  /** Width of the time/class embedding. */
  readonly embedDim: number;
  /** GroupNorm groups; must divide every level's width. */
  readonly groups: number;
  /** Attention heads. */
  readonly heads: number;
  /**
   * A prompt-conditional net (then numClasses is 0): its text encoder's pooled output joins the time embedding
   * (as SDXL's pooled text embedding does) and every attention block also cross-attends to the token states.
   */
  readonly text?: TextEncoderConfig | undefined;
}

/**
 * What a net is conditioned on, int32: class labels [B] (`numClasses` for the null class), or a prompt-conditional
 * net's token ids [B, maxTokens] (the empty prompt for none).
 */
export type Condition = tf.Tensor1D | tf.Tensor2D;

/** The unconditional input for `batch` rows: the null class, or the empty prompt. Caller owns it. */
export function nullCondition(cfg: Pick<UNetConfig, 'numClasses' | 'text'>, batch: number): Condition {
  if (cfg.text) return emptyPromptTokens(batch, cfg.text.maxTokens);
  return tf.fill([batch], cfg.numClasses, 'int32') as tf.Tensor1D;
}

/** One tapped encoder feature map, named by where it was taken. */
export interface Feature {
  readonly name: string;
  readonly x: tf.Tensor4D;
}

export interface UNetOutput {
  readonly out: tf.Tensor4D;
  /** Encoder features (end of each level, then the middle block), present when asked for. */
  readonly features: readonly Feature[];
}

/** Parameter name prefixes that make up the encoder (everything the middle block depends on). */
export const ENCODER_PREFIXES = ['in.', 'time.', 'class.', 'text.', 'down.', 'mid.'] as const;

export function validateUNetConfig(cfg: UNetConfig): void {
  const fail = (msg: string): never => {
    throw new Error(`invalid U-Net config: ${msg}`);
  };
  if (cfg.channels.length === 0) fail('channels must list at least one level');
  for (const c of cfg.channels) {
    if (c % cfg.groups !== 0) fail(`groups=${cfg.groups} does not divide level width ${c}`);
    if (c % cfg.heads !== 0) fail(`heads=${cfg.heads} does not divide level width ${c}`);
  }
  for (const l of cfg.attentionLevels) {
    if (!Number.isInteger(l) || l < 0 || l >= cfg.channels.length)
      fail(`attention level ${l} is not a level index`);
  }
  if (cfg.blocksPerLevel < 1) fail(`blocksPerLevel must be >= 1, got ${cfg.blocksPerLevel}`);
  if (cfg.numClasses < 0) fail(`numClasses must be >= 0, got ${cfg.numClasses}`);
  if (cfg.text) {
    if (cfg.numClasses !== 0) fail('a prompt-conditional net (text) has no classes: set numClasses to 0');
    validateTextEncoderConfig(cfg.text);
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** Residual block with adaptive GroupNorm: the embedding sets a per-channel scale and shift (ADM's scale-shift). */
function resBlock(
  s: ParamScope,
  x: tf.Tensor4D,
  emb: tf.Tensor2D,
  outCh: number,
  groups: number,
): tf.Tensor4D {
  const [b] = x.shape;
  const h = conv2d(s.child('conv1'), groupNorm(s.child('norm1'), x, groups, { silu: true }), outCh);
  const scaleShift = linear(s.child('emb'), silu(emb), 2 * outCh).reshape([b, 1, 1, 2 * outCh]);
  const [scale, shift] = tf.split(scaleShift, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
  const modulated = groupNorm(s.child('norm2'), h, groups, {
    affine: false,
    modulation: { scale, shift },
    silu: true,
  });
  const h2 = conv2d(s.child('conv2'), modulated, outCh, { zeroInit: true });
  const skip = x.shape[3] === outCh ? x : conv2d(s.child('skip'), x, outCh, { kernel: 1 });
  return skip.add(h2);
}

interface Embedding {
  readonly emb: tf.Tensor2D;
  /** The prompt for cross-attention. */
  readonly context?: PromptContext;
}

function embed(s: ParamScope, cfg: UNetConfig, cNoise: tf.Tensor1D, cond: Condition | undefined): Embedding {
  const base = cfg.channels[0]!;
  const emb = timestepEmbedding(s.child('time'), cNoise, base, cfg.embedDim);
  if (cfg.text) {
    if (cond?.rank !== 2)
      throw new Error(
        'this U-Net is prompt-conditional: pass token ids [B, maxTokens] (the empty prompt for none)',
      );
    const text = textEncoderForward(s.child('text'), cfg.text, cond as tf.Tensor2D);
    const pooled = linear(s.child('text').child('pool'), text.pooled, cfg.embedDim) as tf.Tensor2D;
    return { emb: emb.add(pooled), context: text };
  }
  if (cfg.numClasses > 0) {
    if (cond?.rank !== 1)
      throw new Error('this U-Net is class-conditional: pass labels [B] (use the null class for none)');
    return {
      emb: emb.add(classEmbedding(s.child('class'), cond as tf.Tensor1D, cfg.numClasses, cfg.embedDim)),
    };
  }
  return { emb };
}

// Self-attention, then cross-attention to the prompt when there is one.
function attend(
  s: ParamScope,
  cfg: UNetConfig,
  h: tf.Tensor4D,
  context: PromptContext | undefined,
): tf.Tensor4D {
  const attended = selfAttention(s, h, cfg.heads, cfg.groups);
  return context ? crossAttention(s.child('cross'), attended, context, cfg.heads, cfg.groups) : attended;
}

interface EncoderState extends Embedding {
  readonly h: tf.Tensor4D;
  readonly skips: tf.Tensor4D[];
  readonly features: Feature[];
}

function encode(
  s: ParamScope,
  cfg: UNetConfig,
  x: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  cond?: Condition,
): EncoderState {
  const { emb, context } = embed(s, cfg, cNoise, cond);
  let h = conv2d(s.child('in'), x, cfg.channels[0]!);
  const skips: tf.Tensor4D[] = [h];
  const features: Feature[] = [];
  cfg.channels.forEach((ch, level) => {
    const ls = s.child('down').child(level);
    for (let i = 0; i < cfg.blocksPerLevel; i++) {
      h = resBlock(ls.child('res').child(i), h, emb, ch, cfg.groups);
      if (cfg.attentionLevels.includes(level)) h = attend(ls.child('attn').child(i), cfg, h, context);
      skips.push(h);
    }
    features.push({ name: `down.${level}`, x: h });
    if (level < cfg.channels.length - 1) {
      h = downsample(ls.child('down'), h);
      skips.push(h);
    }
  });
  const ms = s.child('mid');
  const midCh = cfg.channels[cfg.channels.length - 1]!;
  h = resBlock(ms.child('res1'), h, emb, midCh, cfg.groups);
  if (cfg.midAttention) h = attend(ms.child('attn'), cfg, h, context);
  h = resBlock(ms.child('res2'), h, emb, midCh, cfg.groups);
  features.push({ name: 'mid', x: h });
  return { h, emb, ...(context ? { context } : {}), skips, features };
}

function decode(s: ParamScope, cfg: UNetConfig, state: EncoderState): tf.Tensor4D {
  let { h } = state;
  const skips = [...state.skips];
  for (let level = cfg.channels.length - 1; level >= 0; level--) {
    const ls = s.child('up').child(level);
    const ch = cfg.channels[level]!;
    for (let i = 0; i <= cfg.blocksPerLevel; i++) {
      h = resBlock(ls.child('res').child(i), tf.concat([h, skips.pop()!], 3), state.emb, ch, cfg.groups);
      if (cfg.attentionLevels.includes(level)) h = attend(ls.child('attn').child(i), cfg, h, state.context);
    }
    if (level > 0) {
      const target = skips[skips.length - 1]!;
      h = upsample(ls.child('up'), h, [target.shape[1], target.shape[2]]);
    }
  }
  const out = groupNorm(s.child('out').child('norm'), h, cfg.groups, { silu: true });
  return conv2d(s.child('out').child('conv'), out, cfg.outChannels, { zeroInit: true });
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * U-Net forward pass. x: [B, H, W, inChannels] (any H, W), cNoise: [B] noise-level input (scaled to ~0..1000),
 * cond: what the net is conditioned on (see Condition). Runs inside the caller's tidy/gradient scope.
 */
export function unetForward(
  params: Params,
  cfg: UNetConfig,
  x: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  cond?: Condition,
): UNetOutput {
  const s = ParamScope.apply(params);
  const state = encode(s, cfg, x, cNoise, cond);
  return { out: decode(s, cfg, state), features: state.features };
}

/**
 * The encoder alone (down + middle blocks): returns its tapped features. Needs only the encoder's parameters
 * (`encoderParams`), so a discriminator can own a trainable copy of them.
 */
export function unetEncoderForward(
  params: Params,
  cfg: UNetConfig,
  x: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  cond?: Condition,
): readonly Feature[] {
  return encode(ParamScope.apply(params), cfg, x, cNoise, cond).features;
}

/** Fresh U-Net parameters; caller owns them. */
export function initUNet(cfg: UNetConfig, rng: Rng): Params {
  validateUNetConfig(cfg);
  return initParams(rng, (s) => {
    const x = tf.zeros([1, 8, 8, cfg.inChannels]) as tf.Tensor4D;
    const cond = cfg.text || cfg.numClasses > 0 ? nullCondition(cfg, 1) : undefined;
    decode(s, cfg, encode(s, cfg, x, tf.zeros([1]), cond));
  });
}

/** The encoder's parameters out of a full U-Net's (shared tensors; clone them for a trainable copy). */
export function encoderParams(params: Params): Params {
  return selectParams(params, ENCODER_PREFIXES);
}

/** Widths of the features `unetForward`/`unetEncoderForward` return, in order (for building heads). */
export function featureChannels(cfg: UNetConfig): number[] {
  return [...cfg.channels, cfg.channels[cfg.channels.length - 1]!];
}
