// Convolutional KL autoencoder (the VAE of latent diffusion, Rombach et al. 2022, scaled to 28x28 and 32x32):
// images [-1, 1] -> latents with `latentChannels` channels at 1/4 resolution, and back.
import { mapInBatches, sliceTensor } from '../core/batched.js';
import type { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { conv2d, downsample, groupNorm, upsample } from './layers.js';
import { initParams, ParamScope, type Params } from './params.js';

export interface AutoencoderConfig {
  /** [height, width, channels] of the images. */
  readonly imageShape: readonly [number, number, number];
  readonly latentChannels: number;
  /** Widths at full, 1/2 and 1/4 resolution (one downsampling between consecutive entries). */
  readonly channels: readonly number[];
  readonly groups: number;
  /** Weight of the KL term (per latent element) against the per-pixel reconstruction loss. */
  readonly klWeight: number;
  /**
   * Latents are normalised as (z - latentShift) * latentScale so the diffusion model sees unit variance
   * (SD3's shift and scaling factors); both are measured on the training set after training.
   */
  readonly latentScale: number;
  readonly latentShift: number;
}

/** Latent shape [h, w, c] for the config's image shape. */
/** How many image pixels one latent pixel spans per axis: each level after the first halves the size. */
export const downsampling = (cfg: AutoencoderConfig): number => 2 ** (cfg.channels.length - 1);

export function latentShape(cfg: AutoencoderConfig): [number, number, number] {
  const down = downsampling(cfg);
  return [Math.ceil(cfg.imageShape[0] / down), Math.ceil(cfg.imageShape[1] / down), cfg.latentChannels];
}

function resBlock(s: ParamScope, x: tf.Tensor4D, groups: number): tf.Tensor4D {
  const c = x.shape[3];
  const h = conv2d(s.child('conv1'), groupNorm(s.child('norm1'), x, groups, { silu: true }), c);
  return x.add(
    conv2d(s.child('conv2'), groupNorm(s.child('norm2'), h, groups, { silu: true }), c, { zeroInit: true }),
  );
}

/** Posterior parameters: mean and log-variance of the (unnormalised) latent, each [B, h, w, latentChannels]. */
function encodeWith(
  s: ParamScope,
  cfg: AutoencoderConfig,
  x: tf.Tensor4D,
): { mean: tf.Tensor4D; logvar: tf.Tensor4D } {
  const e = s.child('enc');
  let h = conv2d(e.child('in'), x, cfg.channels[0]!);
  cfg.channels.forEach((ch, level) => {
    const ls = e.child('level').child(level);
    if (level > 0) h = conv2d(ls.child('widen'), downsample(ls.child('down'), h), ch, { kernel: 1 });
    h = resBlock(ls.child('res'), h, cfg.groups);
  });
  const moments = conv2d(
    e.child('out'),
    groupNorm(e.child('norm'), h, cfg.groups, { silu: true }),
    2 * cfg.latentChannels,
  );
  const [mean, logvar] = tf.split(moments, 2, 3) as [tf.Tensor4D, tf.Tensor4D];
  return { mean, logvar: logvar.clipByValue(-20, 10) as tf.Tensor4D };
}

function decodeWith(s: ParamScope, cfg: AutoencoderConfig, z: tf.Tensor4D): tf.Tensor4D {
  const d = s.child('dec');
  const levels = cfg.channels.length;
  let h = conv2d(d.child('in'), z, cfg.channels[levels - 1]!);
  // Output sizes of each level, so odd sizes (28 -> 14 -> 7) are restored exactly. A latent of another size (a
  // wider digit string, a larger canvas) decodes to that size times the downsampling, per axis.
  const [latentH, latentW] = latentShape(cfg);
  const imageH = z.shape[1] === latentH ? cfg.imageShape[0] : z.shape[1] * downsampling(cfg);
  const imageW = z.shape[2] === latentW ? cfg.imageShape[1] : z.shape[2] * downsampling(cfg);
  const sizes: [number, number][] = [];
  for (let l = 0; l < levels; l++) sizes.push([Math.ceil(imageH / 2 ** l), Math.ceil(imageW / 2 ** l)]);
  for (let level = levels - 1; level >= 0; level--) {
    const ls = d.child('level').child(level);
    h = resBlock(ls.child('res'), h, cfg.groups);
    if (level > 0) {
      const narrowed = conv2d(ls.child('narrow'), h, cfg.channels[level - 1]!, { kernel: 1 });
      h = upsample(ls.child('up'), narrowed, sizes[level - 1]!);
    }
  }
  return conv2d(d.child('out'), groupNorm(d.child('norm'), h, cfg.groups, { silu: true }), cfg.imageShape[2]);
}

// ---------------------------------------------------------------------------------------------------------------

/** Posterior mean and log-variance for images x: [B, H, W, C] in [-1, 1]. Runs in the caller's scope. */
export function encodePosterior(
  params: Params,
  cfg: AutoencoderConfig,
  x: tf.Tensor4D,
): { mean: tf.Tensor4D; logvar: tf.Tensor4D } {
  return encodeWith(ParamScope.apply(params), cfg, x);
}

/** Unnormalised latent -> image. Runs in the caller's scope. */
export function decodeRaw(params: Params, cfg: AutoencoderConfig, z: tf.Tensor4D): tf.Tensor4D {
  return decodeWith(ParamScope.apply(params), cfg, z);
}

/** Images -> normalised latents (posterior mean; deterministic), the diffusion model's data. */
export function encodeLatents(params: Params, cfg: AutoencoderConfig, x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => encodePosterior(params, cfg, x).mean.sub(cfg.latentShift).mul(cfg.latentScale));
}

/** Normalised latents -> images in about [-1, 1]. Gradients flow through (ADD decodes inside its loss). */
export function decodeLatents(params: Params, cfg: AutoencoderConfig, latents: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() =>
    decodeRaw(params, cfg, latents.div(cfg.latentScale).add(cfg.latentShift) as tf.Tensor4D),
  );
}

/** Normalised latents of `count` images (NHWC values back to back), encoded in batches of 500. */
export function encodeImages(
  params: Params,
  cfg: AutoencoderConfig,
  images: Float32Array,
  count: number,
): Promise<Float32Array> {
  return mapInBatches(count, 500, (s, e) =>
    tf.tidy(() => encodeLatents(params, cfg, sliceTensor(images, cfg.imageShape, s, e) as tf.Tensor4D)),
  );
}

export function initAutoencoder(cfg: AutoencoderConfig, rng: Rng): Params {
  return initParams(rng, (s) => {
    const { mean } = encodeWith(s, cfg, tf.zeros([1, ...cfg.imageShape]) as tf.Tensor4D);
    decodeWith(s, cfg, mean);
  });
}
