// Image generation from a teacher or student: denoiser -> sampler -> decoder, chunk by chunk so memory stays
// bounded whatever the count. Browser-safe (no Node APIs), so the web page and the CLI run the same code.

import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { digitStringSize, parseDigitString } from '../data/prompts.js';
import { type Denoiser, guidedDenoiser, netDenoiser, type RawNet } from '../diffusion/denoiser.js';
import { type Formulation, makeFormulation } from '../diffusion/formulation.js';
import { type AutoencoderConfig, decodeLatents, downsampling } from '../nn/autoencoder.js';
import type { Params } from '../nn/params.js';
import { tokenizeAll } from '../nn/text-encoder.js';
import { type Condition, nullCondition, type UNetConfig, unetForward } from '../nn/unet.js';
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

/**
 * A network with `config`'s U-Net, formulation and prediction, as a denoiser over `params`. `f` is the config's
 * formulation, passed by callers that build many denoisers (a student's, at every update).
 */
export function configDenoiser(
  config: Pick<DiffusionModelConfig, 'unet' | 'formulation' | 'prediction'>,
  params: Params,
  f: Formulation = makeFormulation(config.formulation),
): Denoiser {
  if (config.prediction === 'x0') {
    return (x, t, labels) =>
      tf.tidy(() => unetForward(params, config.unet, x, t.mul(f.netTime(1)), labels).out);
  }
  return netDenoiser(unetNet(config.unet, params), f);
}

/** The U-Net over `params` as a raw network: its output in the formulation's parameterisation. */
export function unetNet(unet: UNetConfig, params: Params): RawNet {
  return (x, netTime, labels) => unetForward(params, unet, x, netTime, labels).out;
}

/** Whom each image is for: a class per image, or a prompt-conditional model's prompt per image. */
export type GenerateConditions =
  | { readonly labels: Int32Array; readonly prompts?: undefined }
  | { readonly prompts: readonly string[]; readonly labels?: undefined };

export type GenerateOptions = GenerateConditions & GenerateSettings;

export interface GenerateSettings {
  readonly steps: number;
  readonly cfg: number;
  readonly sampler: SamplerKind;
  readonly seed: number;
  /** Latent [height, width]; default the model's own. */
  readonly latentSize?: readonly [number, number];
  /** Images generated (and decoded) at a time, default DEFAULT_BATCH: bounds memory, see `latentChunks`. */
  readonly batchSize?: number;
  /** The model as errors name it, e.g. its folder (default "the model"). */
  readonly modelName?: string;
  /**
   * Fail on NaN or infinite latents or images (default false). Costs two synchronous reads from the backend per
   * chunk: worth it for commands that write their output, not for the web page, which generates every frame.
   */
  readonly checkFinite?: boolean;
  /**
   * Make only this process's chunks (data parallelism): chunk k when k % count === index. The others are drawn, not
   * made: their sampler runs on a zero denoiser, so the random stream reaches the next chunk exactly where one
   * process's would, and every chunk gets the images it gets in one process.
   */
  readonly share?: { readonly index: number; readonly count: number };
}

/** Images per chunk when the caller does not say (the few-step sampler's images for a seed depend on it). */
export const DEFAULT_BATCH = 100;

/** Largest classifier-free guidance scale the commands accept: far above any useful one, well below overflow. */
export const MAX_CFG = 100;

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

/** Rows `start` .. `start + tensor.shape[0]` of a generation; the caller owns `tensor`. */
export interface GeneratedChunk {
  readonly start: number;
  readonly tensor: tf.Tensor4D;
}

type Generated = 'latents' | 'images';

// A diverged sampler must stop the command rather than be written out as data.
function nonFiniteError(what: Generated, opts: GenerateOptions): Error {
  return new Error(
    `${opts.modelName ?? 'the model'} made NaN or infinite ${what} at ${opts.steps} sampling step${opts.steps === 1 ? '' : 's'} ` +
      `(cfg ${opts.cfg}, ${opts.sampler} sampler): lower the guidance scale or change the steps, or check its weights`,
  );
}

// Fails when `t` holds NaN or an infinity (x * 0 sums to 0 only when every x is finite); one read of one number.
function checkFinite(t: tf.Tensor, what: Generated, opts: GenerateOptions): void {
  const probe = tf.tidy(() => t.mul(0).sum());
  const ok = Number.isFinite(probe.dataSync()[0]);
  probe.dispose();
  if (!ok) throw nonFiniteError(what, opts);
}

/** Fails as `opts.checkFinite` does, on values of `opts`'s output already read back (no extra backend read). */
export function checkFiniteValues(values: ArrayLike<number>, what: Generated, opts: GenerateOptions): void {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) throw nonFiniteError(what, opts);
}

// The condition tensor of images start..end: class labels [n], or prompt tokens [n, maxTokens].
function conditionRows(unet: UNetConfig, opts: GenerateConditions, start: number, end: number): Condition {
  if (unet.text) {
    if (!opts.prompts)
      throw new Error('this model is prompt-conditional: give a prompt per image, not classes');
    const { maxTokens } = unet.text;
    return tf.tensor2d(
      tokenizeAll(opts.prompts.slice(start, end), maxTokens),
      [end - start, maxTokens],
      'int32',
    );
  }
  if (!opts.labels)
    throw new Error('this model is not prompt-conditional: give a class per image, not prompts');
  return tf.tensor1d(opts.labels.subarray(start, end), 'int32');
}

/**
 * The latent [height, width] a prompt-conditional model draws `prompt` at: a digit string's cells side by side,
 * through the autoencoder's downsampling; a caption model's own latent size.
 */
export function promptLatentSize(model: DiffusionModel, prompt: string): [number, number] {
  if (!model.config.prompts) {
    throw new Error('this model is not prompt-conditional: it takes classes, not a prompt');
  }
  if (model.config.prompts.source === 'captions')
    return [model.config.latentShape[0], model.config.latentShape[1]];
  const factor = downsampling(model.autoencoder.config.autoencoder);
  const [height, width] = digitStringSize(parseDigitString(prompt).length);
  return [height / factor, width / factor];
}

/** Images `opts` asks for. */
export const generateCount = (opts: GenerateConditions): number =>
  opts.labels ? opts.labels.length : opts.prompts.length;

/**
 * Latents for `opts.labels` (or `opts.prompts`), chunk by chunk (`batchSize` at a time). Each chunk's noise is the next draw from one
 * Rng(seed) stream (the few-step sampler's re-noising follows from the same stream), so the same seed and labels
 * give the same latents for every model of the same latent shape. The ODE samplers only draw the starting noise,
 * so their output does not depend on `batchSize` either (normals are drawn in pairs: true while every chunk's
 * noise has an even number of values, as with any even latent channel count).
 */
export function* latentChunks(model: DiffusionModel, opts: GenerateOptions): Generator<GeneratedChunk> {
  const { config } = model;
  const f: Formulation = makeFormulation(config.formulation);
  const [h, w] = opts.latentSize ?? [config.latentShape[0], config.latentShape[1]];
  const c = config.latentShape[2];
  const denoise = guidedDenoiser(modelDenoiser(model), opts.cfg, (b) => nullCondition(config.unet, b));
  const times = samplerTimes(f, opts.steps);
  const rng = new Rng(opts.seed);
  const batchSize = opts.batchSize ?? DEFAULT_BATCH;
  const { share } = opts;
  const count = generateCount(opts);
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    if (share !== undefined && (start / batchSize) % share.count !== share.index) {
      tf.tidy(() => {
        const noise = randn(rng, [end - start, h, w, c]) as tf.Tensor4D;
        sample(opts.sampler, (x) => tf.zerosLike(x), f, noise, {
          times,
          labels: conditionRows(config.unet, opts, start, end),
          rng,
        });
      });
      continue;
    }
    const latents = tf.tidy(() => {
      const noise = randn(rng, [end - start, h, w, c]) as tf.Tensor4D;
      const labels = conditionRows(config.unet, opts, start, end);
      const out = sample(opts.sampler, denoise, f, noise, { times, labels, rng });
      if (opts.checkFinite) checkFinite(out, 'latents', opts);
      return out;
    });
    yield { start, tensor: latents };
  }
}

/** Images in [-1, 1] for `opts`'s labels or prompts, generated and decoded chunk by chunk (see `latentChunks`). */
export function* imageChunks(model: DiffusionModel, opts: GenerateOptions): Generator<GeneratedChunk> {
  const ae = model.autoencoder;
  for (const { start, tensor: latents } of latentChunks(model, opts)) {
    let images: tf.Tensor4D;
    try {
      images = tf.tidy(() => {
        const decoded = decodeLatents(ae.params, ae.config.autoencoder, latents);
        if (opts.checkFinite) checkFinite(decoded, 'images', opts);
        return decoded.clipByValue(-1, 1) as tf.Tensor4D;
      });
    } finally {
      latents.dispose();
    }
    yield { start, tensor: images };
  }
}

// Concatenates every chunk into one tensor; caller owns the result. Nothing is left behind when a chunk fails
// (in the browser the parts are GPU memory).
function gather(chunks: Iterable<GeneratedChunk>): tf.Tensor4D {
  const parts: tf.Tensor4D[] = [];
  try {
    for (const { tensor } of chunks) parts.push(tensor);
  } catch (err) {
    tf.dispose(parts);
    throw err;
  }
  if (parts.length === 1) return parts[0]!;
  try {
    return tf.concat(parts) as tf.Tensor4D;
  } finally {
    tf.dispose(parts);
  }
}

/** Every image of `imageChunks` in one tensor, in [-1, 1]; caller owns the result. Large sets: use the chunks. */
export function generateImages(model: DiffusionModel, opts: GenerateOptions): tf.Tensor4D {
  return gather(imageChunks(model, opts));
}

// ---
// Memory: what one chunk needs, estimated from the shapes before anything is allocated.

/** Cap on the estimated working memory of one chunk: `checkChunkFits` refuses a latent size or batch above it. */
export const MAX_CHUNK_BYTES = 2e9;

// Same-sized tensors a tidy keeps alive (norms, activations, convolutions, skips), fitted with tf.profile on the
// shipped MNIST teacher and autoencoder (wasm): 5.8 MB per image for one guided U-Net call at 7x7, 2.6 MB to decode.
const UNET_COPIES_PER_BLOCK = 48;
const ATTENTION_COPIES = 4;
const DECODER_COPIES_PER_LEVEL = 30;

/** Estimated peak working bytes per image: one U-Net call (both CFG branches) or, with `decode`, decoding. */
export function bytesPerImage(
  model: DiffusionModel,
  latentSize: readonly [number, number],
  cfg: number,
  decode: boolean,
): number {
  const { unet } = model.config;
  const [h, w] = latentSize;
  const last = unet.channels.length - 1;
  let unetFloats = 0;
  unet.channels.forEach((ch, level) => {
    const area = Math.ceil(h / 2 ** level) * Math.ceil(w / 2 ** level);
    // Down blocks, up blocks (one more) and, at the bottom, the two middle blocks.
    const blocks = 2 * unet.blocksPerLevel + 1 + (level === last ? 2 : 0);
    unetFloats += UNET_COPIES_PER_BLOCK * blocks * area * ch;
    const attentions =
      (unet.attentionLevels.includes(level) ? 2 * unet.blocksPerLevel + 1 : 0) +
      (level === last && unet.midAttention ? 1 : 0);
    unetFloats += ATTENTION_COPIES * attentions * unet.heads * area * area;
  });
  if (cfg !== 1) unetFloats *= 2;
  if (!decode) return 4 * unetFloats;
  // The decoder runs its coarsest level at the latent size and the finer ones at least at the image's sizes.
  const ae = model.autoencoder.config.autoencoder;
  const levels = ae.channels.length;
  let decoderFloats = 0;
  ae.channels.forEach((ch, level) => {
    const up = 2 ** (levels - 1 - level);
    const sizeH = Math.max(Math.ceil(ae.imageShape[0] / 2 ** level), h * up);
    const sizeW = Math.max(Math.ceil(ae.imageShape[1] / 2 ** level), w * up);
    decoderFloats += DECODER_COPIES_PER_LEVEL * sizeH * sizeW * ch;
  });
  return 4 * Math.max(unetFloats, decoderFloats);
}

/** Bytes as a short human-readable size, e.g. "1.5 GB" or "202000 GB". */
export function formatBytes(bytes: number): string {
  const [unit, name] = bytes >= 1e9 ? [1e9, 'GB'] : bytes >= 1e6 ? [1e6, 'MB'] : [1e3, 'kB'];
  const value = bytes / unit;
  return `${value >= 100 ? Math.round(value) : Number(value.toPrecision(3))} ${name}`;
}

/**
 * Fails, before anything is allocated, when one image at `latentSize` or one chunk of `batchSize` images would
 * need more than MAX_CHUNK_BYTES of working memory (estimated by `bytesPerImage`).
 */
export function checkChunkFits(
  model: DiffusionModel,
  plan: { latentSize: readonly [number, number]; batchSize: number; cfg: number; decode: boolean },
  /** How the caller's user sets each: the command's flags, or the library's option names. */
  names: { readonly batch: string; readonly latentSize: string } = {
    batch: '--batch',
    latentSize: '--latent-size',
  },
): void {
  const perImage = bytesPerImage(model, plan.latentSize, plan.cfg, plan.decode);
  const cap = formatBytes(MAX_CHUNK_BYTES);
  if (perImage > MAX_CHUNK_BYTES) {
    throw new Error(
      `latent size ${plan.latentSize.join('x')} needs about ${formatBytes(perImage)} per image to generate, ` +
        `above the ${cap} a chunk may use: choose a smaller ${names.latentSize}`,
    );
  }
  if (plan.batchSize * perImage > MAX_CHUNK_BYTES) {
    throw new Error(
      `${names.batch} ${plan.batchSize} needs about ${formatBytes(plan.batchSize * perImage)} ` +
        `(${formatBytes(perImage)} per image), above the ${cap} a chunk may use: ` +
        `use ${names.batch} ${Math.floor(MAX_CHUNK_BYTES / perImage)} or less`,
    );
  }
}

/** `count` labels spread evenly over `classes` (class-balanced, in class order). */
export function balancedLabels(classes: readonly number[], count: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => classes[Math.floor((i * classes.length) / count)]!);
}
