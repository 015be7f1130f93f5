// The feature network: a small LeNet-like classifier per dataset. Its penultimate layer gives the features for
// FID/KID and precision/recall (in place of Inception), its softmax the class accuracy of generated samples; its
// conv maps are ADD's frozen pixel-space discriminator backbone.
import type { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { conv2d, linear } from './layers.js';
import { initParams, ParamScope, type Params } from './params.js';

export interface FeatureNetConfig {
  /** [height, width, channels] of the images it reads (values in [-1, 1]). */
  readonly imageShape: readonly [number, number, number];
  readonly numClasses: number;
  /** Widths of the conv layers; each is conv -> ReLU -> 2x2 max-pool. */
  readonly channels: readonly number[];
  /** Square kernel size of every conv layer. */
  readonly kernel: number;
  /** Width of the penultimate dense layer (after ReLU): the feature vector. */
  readonly featureDim: number;
}

/** LeNet-like defaults: conv 5x5 32 -> pool -> conv 5x5 64 -> pool -> dense 256 (features) -> dense classes. */
export const FEATURE_NET_DEFAULTS = { channels: [32, 64], kernel: 5, featureDim: 256 } as const;

/** Features and class logits of a batch. */
export interface FeatureNetOutput {
  /** [B, featureDim], post-ReLU. */
  readonly features: tf.Tensor2D;
  /** [B, numClasses]. */
  readonly logits: tf.Tensor2D;
}

/** Every layer's output: the conv blocks' maps as well as the features and logits. */
export interface FeatureNetTaps extends FeatureNetOutput {
  /** Output of each conv block (conv -> ReLU -> 2x2 max-pool), [B, ceil(H/2^(i+1)), ceil(W/2^(i+1)), width_i]. */
  readonly maps: readonly tf.Tensor4D[];
}

function forwardWith(s: ParamScope, cfg: FeatureNetConfig, x: tf.Tensor4D): FeatureNetTaps {
  let h = x;
  const maps: tf.Tensor4D[] = [];
  cfg.channels.forEach((width, i) => {
    const conv = conv2d(s.child('conv').child(i), h, width, { kernel: cfg.kernel });
    h = tf.maxPool(tf.relu(conv), 2, 2, 'same'); // [B, ceil(H/2), ceil(W/2), width]
    maps.push(h);
  });
  const flat = h.reshape([h.shape[0], -1]); // [B, h * w * c]
  const features = tf.relu(linear(s.child('fc'), flat, cfg.featureDim)) as tf.Tensor2D;
  const logits = linear(s.child('head'), features, cfg.numClasses) as tf.Tensor2D;
  return { maps, features, logits };
}

function checkImageShape(cfg: FeatureNetConfig, x: tf.Tensor4D): void {
  const [, h, w, c] = x.shape;
  const [eh, ew, ec] = cfg.imageShape;
  if (h !== eh || w !== ew || c !== ec) {
    throw new Error(`feature net expects ${eh}x${ew}x${ec} images, got ${h}x${w}x${c}`);
  }
}

/** Runs the net on images [B, H, W, C] in [-1, 1]. Runs in the caller's scope (gradients flow through). */
export function featureNetForward(params: Params, cfg: FeatureNetConfig, x: tf.Tensor4D): FeatureNetOutput {
  checkImageShape(cfg, x);
  const { features, logits } = forwardWith(ParamScope.apply(params), cfg, x);
  return { features, logits };
}

/**
 * The same forward pass with every conv block's activation map too (ADD's discriminator heads read them). Runs in
 * the caller's scope (gradients flow through).
 */
export function featureNetTaps(params: Params, cfg: FeatureNetConfig, x: tf.Tensor4D): FeatureNetTaps {
  checkImageShape(cfg, x);
  return forwardWith(ParamScope.apply(params), cfg, x);
}

export function initFeatureNet(cfg: FeatureNetConfig, rng: Rng): Params {
  return initParams(rng, (s) => forwardWith(s, cfg, tf.zeros([1, ...cfg.imageShape]) as tf.Tensor4D));
}
