// ADD's discriminator heads (METHODS.md section 1; StyleGAN-T style, Sauer et al. 2023): on each tapped map of a
// frozen feature network, conv3x3 -> GroupNorm -> LeakyReLU(0.2) -> per-position features projected onto a
// condition embedding (class + real-image embedding) plus an unconditional logit, averaged over positions.
import type { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { HeadLogits, TappedFeature } from './heads.js';
import { classEmbedding, conv2d, groupNorm, linear } from './layers.js';
import { initParams, ParamScope, type Params } from './params.js';

export interface ProjectionHeadsConfig {
  /** The tapped feature maps, in the order the heads read them. */
  readonly features: readonly TappedFeature[];
  /** Width of each head's hidden convolution. */
  readonly channels: number;
  /** GroupNorm groups; must divide `channels`. */
  readonly groups: number;
  /** Width of the projection: per-position features and the condition embedding. */
  readonly embedDim: number;
  /** Classes of the condition (0: no class term); label `numClasses` is the null class. */
  readonly numClasses: number;
  /** Length of the real-image descriptor the image embedding is learned from (e.g. F's penultimate features). */
  readonly imageDim: number;
}

/** What the heads are conditioned on: the class and a descriptor of the real image x0 behind the sample. */
export interface HeadCondition {
  /** int32 [B]. */
  readonly labels: tf.Tensor1D;
  /** [B, imageDim]: a fixed descriptor of the real x0 (no gradient is taken through it). */
  readonly image: tf.Tensor2D;
}

const headKey = (name: string): string => name.replaceAll('.', '');

/** Condition embedding [B, embedDim]: a class embedding (with the null row) plus a linear map of the image. */
function conditionEmbedding(s: ParamScope, cfg: ProjectionHeadsConfig, cond: HeadCondition): tf.Tensor2D {
  const image = linear(s.child('image'), cond.image, cfg.embedDim) as tf.Tensor2D;
  if (cfg.numClasses === 0) return image;
  return image.add(classEmbedding(s.child('class'), cond.labels, cfg.numClasses, cfg.embedDim));
}

/** One head: [B, H, W, Cin] map -> [B] logits. Samples are independent (GroupNorm is per sample). */
function head(s: ParamScope, cfg: ProjectionHeadsConfig, x: tf.Tensor4D, cond: HeadCondition): tf.Tensor1D {
  const [b] = x.shape;
  const h = tf.leakyRelu(
    groupNorm(s.child('norm'), conv2d(s.child('conv'), x, cfg.channels), cfg.groups),
    0.2,
  );
  const unconditional = conv2d(s.child('out'), h, 1, { kernel: 1 }); // [B, H, W, 1]
  const projected = conv2d(s.child('proj'), h, cfg.embedDim, { kernel: 1 }); // [B, H, W, E]
  const e = conditionEmbedding(s.child('cond'), cfg, cond).reshape([b, 1, 1, cfg.embedDim]); // [B, 1, 1, E]
  // Projection discriminator (Miyato & Koyama 2018): <phi(x), e(c)> / sqrt(E) at every position.
  const conditional = projected
    .mul(e)
    .sum(3, true)
    .mul(1 / Math.sqrt(cfg.embedDim)); // [B, H, W, 1]
  return unconditional.add(conditional).mean([1, 2, 3]) as tf.Tensor1D; // one logit per sample
}

function forward(
  s: ParamScope,
  cfg: ProjectionHeadsConfig,
  maps: readonly tf.Tensor4D[],
  cond: HeadCondition,
): tf.Tensor1D[] {
  if (maps.length !== cfg.features.length) {
    throw new Error(`the heads read ${cfg.features.length} feature maps but got ${maps.length}`);
  }
  return cfg.features.map(({ name, channels }, k) => {
    const x = maps[k]!;
    if (x.shape[3] !== channels) {
      throw new Error(
        `feature map "${name}" has ${x.shape[3]} channels but its head was built for ${channels}`,
      );
    }
    return head(s.child(headKey(name)), cfg, x, cond);
  });
}

/**
 * Per-head logits, one [B] tensor per tapped map (`maps` in `cfg.features` order). Runs inside the caller's tidy /
 * gradient scope.
 */
export function projectionHeadLogits(
  params: Params,
  cfg: ProjectionHeadsConfig,
  maps: readonly tf.Tensor4D[],
  cond: HeadCondition,
): HeadLogits {
  return forward(ParamScope.apply(params), cfg, maps, cond);
}

/** Fresh head parameters (keys `<feature>.<layer>...`, e.g. `conv0.proj.w`); caller owns them. */
export function initProjectionHeads(cfg: ProjectionHeadsConfig, rng: Rng): Params {
  if (cfg.channels % cfg.groups !== 0) {
    throw new Error(`head groups=${cfg.groups} do not divide head channels=${cfg.channels}`);
  }
  const keys = cfg.features.map((f) => headKey(f.name));
  if (keys.length === 0) throw new Error('tap at least one feature map for the discriminator heads');
  if (new Set(keys).size !== keys.length) throw new Error(`tapped feature maps repeat: ${keys.join(', ')}`);
  return initParams(rng, (s) => {
    const maps = cfg.features.map((f) => tf.zeros([1, 4, 4, f.channels]) as tf.Tensor4D);
    const cond = {
      labels: tf.zeros([1], 'int32') as tf.Tensor1D,
      image: tf.zeros([1, cfg.imageDim]) as tf.Tensor2D,
    };
    forward(s, cfg, maps, cond);
  });
}
