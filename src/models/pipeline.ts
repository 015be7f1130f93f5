// Image generation from a teacher or student: denoiser -> sampler -> decoder. Browser-safe (no Node APIs),
// so the web page and the CLI run the same code.
import { type AutoencoderConfig, decodeLatents } from '../autoencoder/model.js';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { type Denoiser, guidedDenoiser, netDenoiser } from '../diffusion/denoiser.js';
import { type Formulation, makeFormulation } from '../diffusion/formulation.js';
import type { Params } from '../nn/params.js';
import { unetForward } from '../nn/unet.js';
import { type SamplerKind, sample, samplerTimes } from '../samplers/sample.js';
import type { DiffusionModelConfig } from './schema.js';

/** What generation needs of a model: its config and weights, and its autoencoder's. */
export interface DiffusionModel {
  readonly config: DiffusionModelConfig;
  readonly params: Params;
  readonly autoencoder: {
    readonly config: { readonly autoencoder: AutoencoderConfig };
    readonly params: Params;
  };
}

/** The model as a denoiser (x0 estimate), honouring an x0-predicting student. */
export function modelDenoiser(model: DiffusionModel, params: Params = model.params): Denoiser {
  return configDenoiser(model.config, params);
}

/** A network with `config`'s U-Net, formulation and prediction, as a denoiser over `params`. */
export function configDenoiser(
  config: Pick<DiffusionModelConfig, 'unet' | 'formulation' | 'prediction'>,
  params: Params,
): Denoiser {
  const f = makeFormulation(config.formulation);
  if (config.prediction === 'x0') {
    return (x, t, labels) =>
      tf.tidy(() => unetForward(params, config.unet, x, t.mul(f.netTime(1)), labels).out);
  }
  return netDenoiser((x, netTime, labels) => unetForward(params, config.unet, x, netTime, labels).out, f);
}

export interface GenerateOptions {
  /** Class per image (length = number of images). */
  readonly labels: Int32Array;
  readonly steps: number;
  readonly cfg: number;
  readonly sampler: SamplerKind;
  readonly seed: number;
  /** Latent [height, width]; default the model's own. */
  readonly latentSize?: readonly [number, number];
  readonly batchSize?: number;
}

/**
 * Default sampler: the one the model's config names (PADD students integrate the ODE); otherwise students
 * re-noise between steps (consistency-style) and teachers integrate the ODE.
 */
export function defaultSampler(config: DiffusionModelConfig): SamplerKind {
  return config.sampling.sampler ?? (config.kind === 'student' ? 'few-step' : 'euler');
}

/** Network evaluations per image: steps, doubled when CFG runs the unconditional branch too. */
export function nfe(steps: number, cfg: number): number {
  return cfg === 1 ? steps : 2 * steps;
}

/**
 * Generates latents for `opts.labels` (noise drawn from Rng(seed), batch by batch, so the same seed and labels
 * give the same images for every model of the same latent shape). Caller owns the result [n, h, w, c].
 */
export function generateLatents(model: DiffusionModel, opts: GenerateOptions): tf.Tensor4D {
  const { config } = model;
  const f: Formulation = makeFormulation(config.formulation);
  const [h, w] = opts.latentSize ?? [config.latentShape[0], config.latentShape[1]];
  const c = config.latentShape[2];
  const denoise = guidedDenoiser(modelDenoiser(model), opts.cfg, config.unet.numClasses);
  const times = samplerTimes(f, opts.steps);
  const rng = new Rng(opts.seed);
  const batchSize = opts.batchSize ?? 100;
  const parts: tf.Tensor4D[] = [];
  for (let start = 0; start < opts.labels.length; start += batchSize) {
    const chunk = opts.labels.subarray(start, Math.min(opts.labels.length, start + batchSize));
    parts.push(
      tf.tidy(() => {
        const noise = randn(rng, [chunk.length, h, w, c]) as tf.Tensor4D;
        const labels = tf.tensor1d(chunk, 'int32');
        return sample(opts.sampler, denoise, f, noise, { times, labels, rng });
      }),
    );
  }
  const all = parts.length === 1 ? parts[0]! : (tf.concat(parts) as tf.Tensor4D);
  if (parts.length > 1) tf.dispose(parts);
  return all;
}

/** Generates images in [-1, 1] (decoded with the model's autoencoder); caller owns the result. */
export function generateImages(model: DiffusionModel, opts: GenerateOptions): tf.Tensor4D {
  const latents = generateLatents(model, opts);
  const ae = model.autoencoder;
  const images = tf.tidy(
    () => decodeLatents(ae.params, ae.config.autoencoder, latents).clipByValue(-1, 1) as tf.Tensor4D,
  );
  latents.dispose();
  return images;
}

/** `count` labels spread evenly over `classes` (class-balanced, in class order). */
export function balancedLabels(classes: readonly number[], count: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => classes[Math.floor((i * classes.length) / count)]!);
}
