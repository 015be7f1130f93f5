import { sliceTensor } from '../core/batched.js';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { loadDataset, loadDatasetBuckets } from '../data/dataset.js';
import { DigitStrings } from '../data/digit-strings.js';
import {
  type DatasetSpec,
  datasetLabel,
  type FolderDatasetSpec,
  type ImageDataset,
} from '../data/image-dataset.js';
import { BatchLoader, BucketBatches, copyRows, datasetSource } from '../data/loader.js';
import { loadMnist } from '../data/mnist.js';
import { DIGIT_CELL, DIGIT_STRING_TRAIN_LENGTHS, digitStringSize } from '../data/prompts.js';
import { saveModelFolder } from '../models/folder.js';
import type { AutoencoderModelConfig } from '../models/schema.js';
import {
  type AutoencoderConfig,
  decodeRaw,
  downsampling,
  encodePosterior,
  initAutoencoder,
  latentShape,
} from '../nn/autoencoder.js';
import { countParams, type Params } from '../nn/params.js';
import { makeCard, prepareRunDir } from '../train/card.js';
import { isRankZero } from '../train/data-parallel.js';
import { Ema } from '../train/ema.js';
import { type TrainResult, train } from '../train/loop.js';
import { ADAM_DEFAULTS, AdamW } from '../train/optim.js';

export interface TrainAutoencoderOptions {
  readonly dataset: DatasetSpec;
  readonly outDir: string;
  readonly steps: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly seed: number;
  readonly resume: boolean;
  readonly checkpointEvery: number;
  /** Profile this many steps after a warm-up step and stop (see TrainOptions.profile). */
  readonly profile?: number;
  /** Use only the first N training images (quick runs and tests; with folder buckets, of each bucket). */
  readonly limit?: number;
  /**
   * Train in aspect-ratio buckets, each batch one bucket's: digit strings (MNIST digits side by side, lengths 1 to
   * 4; `dataset` must then be mnist, where the digits come from), or a folder's images at these sizes ([height,
   * width], each image at the one nearest its aspect ratio; the first is the model's own size).
   */
  readonly buckets?: 'digit-strings' | readonly (readonly [number, number])[];
  /** Architecture overrides (channels, latentChannels, klWeight, groups). */
  readonly arch?: Partial<Pick<AutoencoderConfig, 'channels' | 'latentChannels' | 'klWeight' | 'groups'>>;
}

export const AUTOENCODER_DEFAULTS = {
  channels: [16, 32, 64],
  latentChannels: 4,
  klWeight: 1e-4,
  groups: 8,
} as const;

/**
 * Refuses a folder's image size that the encoder's halvings do not divide (built-in sets keep their sizes: MNIST's
 * 28 is restored exactly through 14 and 7).
 */
function checkDownsamplingDivides(widths: readonly number[], spec: DatasetSpec, flag = '--size'): void {
  if (typeof spec === 'string') return;
  const factor = 2 ** (widths.length - 1);
  const [height, width] = spec.size;
  if (height % factor === 0 && width % factor === 0) return;
  const round = (n: number) => Math.max(factor, Math.round(n / factor) * factor);
  const suggestion = height === width ? String(round(height)) : `${round(width)}x${round(height)}`;
  throw new Error(
    `${flag} ${height === width ? height : `${width}x${height}`} is not a multiple of ${factor}: the autoencoder ` +
      `halves the image ${widths.length - 1} times (--channels ${widths.join(',')}); use ${flag} ${suggestion}`,
  );
}

/** String lengths whose reconstruction PSNR a digit-strings autoencoder records (5 and 6 not trained on). */
const PSNR_STRING_LENGTHS = [1, 2, 3, 4, 5, 6];
/** Strings per length the PSNR is measured on (of the test split's digits). */
const PSNR_STRINGS = 300;
/** Images the latent statistics and the reconstruction PSNR are measured on. */
const STATS_IMAGES = 10_000;
const PSNR_IMAGES = 2000;
const MEASURE_BATCH = 500;

/**
 * What the autoencoder trains on, batch by batch: a dataset of one image size, or digit strings whose batches are
 * one aspect-ratio bucket each. Also the images its latent statistics and its test PSNR are measured on.
 */
interface AutoencoderData {
  readonly spec: AutoencoderModelConfig['dataset'];
  readonly imageShape: readonly [number, number, number];
  /** Batch `step` of training images [B, H, W, C]; H and W may change from batch to batch. */
  batchAt(step: number): tf.Tensor4D;
  /** Training images for the latent statistics, in batches (the caller disposes each). */
  statsBatches(): Generator<tf.Tensor4D>;
  /**
   * Held-out images in batches per group ("test", one per string length, or one per bucket); the caller disposes
   * each.
   */
  testBatches(): Promise<Map<string, tf.Tensor4D[]>>;
  /** The groups whose images the headline PSNR averages (default: all). */
  readonly headlineGroups?: readonly string[];
  /** A folder's aspect-ratio buckets, [height, width] each, for the model's config. */
  readonly buckets?: readonly (readonly [number, number])[];
  /** What the card records of the training data beyond the dataset. */
  readonly description: Record<string, unknown>;
}

async function imageData(opts: TrainAutoencoderOptions): Promise<AutoencoderData> {
  const limit = opts.limit === undefined ? {} : { limit: opts.limit };
  const data = await loadDataset(opts.dataset, 'train', limit);
  const test = await loadDataset(opts.dataset, 'test', { limit: PSNR_IMAGES });
  const shape = [data.height, data.width, data.channels] as const;
  const loader = new BatchLoader(datasetSource(data), { batchSize: opts.batchSize, seed: opts.seed });
  return {
    spec: data.spec,
    imageShape: shape,
    batchAt: (step) => {
      const { x, labels } = loader.batchAt(step);
      labels.dispose();
      return x;
    },
    statsBatches: () => setBatches(data, Math.min(data.count, STATS_IMAGES)),
    testBatches: async () => new Map([['test', [...setBatches(test)]]]),
    description: {},
  };
}

async function digitStringData(opts: TrainAutoencoderOptions): Promise<AutoencoderData> {
  if (opts.dataset !== 'mnist') {
    throw new Error(
      `digit strings are made of MNIST digits: train on --data mnist, not ${datasetLabel(opts.dataset)}`,
    );
  }
  const mnist = await loadMnist('train', opts.limit);
  const lengths = DIGIT_STRING_TRAIN_LENGTHS;
  const train = new DigitStrings(mnist, { seed: opts.seed, lengths });
  // The statistics' strings come from a stream of their own.
  const stats = new DigitStrings(mnist, { seed: opts.seed + 1, lengths });
  const toTensor = (b: { images: Float32Array; height: number; width: number }, n: number) =>
    tf.tensor4d(b.images, [n, b.height, b.width, 1]);
  return {
    spec: 'mnist',
    imageShape: [...digitStringSize(1), 1],
    batchAt: (step) => toTensor(train.batchAt(step, opts.batchSize), opts.batchSize),
    *statsBatches() {
      // Whole rounds of buckets, so every length counts equally often: about STATS_IMAGES digits in all.
      const perBatch = Math.min(MEASURE_BATCH, opts.limit ?? MEASURE_BATCH);
      const cellsPerRound = stats.lengths.reduce((a, n) => a + n, 0) * perBatch;
      const rounds = Math.max(1, Math.round(STATS_IMAGES / cellsPerRound));
      for (let k = 0; k < rounds * stats.buckets.length; k++)
        yield toTensor(stats.batchAt(k, perBatch), perBatch);
    },
    testBatches: async () => {
      const groups = new Map<string, tf.Tensor4D[]>();
      const digits = await loadMnist('test');
      for (const length of PSNR_STRING_LENGTHS) {
        const test = new DigitStrings(digits, { seed: 0, lengths: [length] });
        const count = Math.min(PSNR_STRINGS, opts.limit ?? PSNR_STRINGS);
        const batches: tf.Tensor4D[] = [];
        for (let k = 0; k * MEASURE_BATCH < count; k++) {
          const n = Math.min(MEASURE_BATCH, count - k * MEASURE_BATCH);
          batches.push(toTensor(test.batchAt(k, n), n));
        }
        groups.set(`length ${length}`, batches);
      }
      return groups;
    },
    headlineGroups: train.lengths.map((n) => `length ${n}`),
    description: { buckets: 'digit-strings', lengths: train.lengths, sizes: train.buckets },
  };
}

/** Images in batches of up to MEASURE_BATCH from a set of one size, the first `count` of them. */
function* setBatches(set: ImageDataset, count = set.count): Generator<tf.Tensor4D> {
  const shape = [set.height, set.width, set.channels] as const;
  for (let s = 0; s < count; s += MEASURE_BATCH)
    yield sliceTensor(set.images, shape, s, Math.min(count, s + MEASURE_BATCH)) as tf.Tensor4D;
}

/** `sizes` ([height, width]) as the CLI writes them: WxH. */
const sizeLabel = ([h, w]: readonly [number, number]): string => `${w}x${h}`;

async function folderBucketData(
  opts: TrainAutoencoderOptions,
  sizes: readonly (readonly [number, number])[],
): Promise<AutoencoderData> {
  const spec = opts.dataset;
  const limit = opts.limit === undefined ? {} : { limit: opts.limit };
  const train = await loadDatasetBuckets(spec, sizes, 'train', limit);
  const test = await loadDatasetBuckets(spec, sizes, 'test', { limit: PSNR_IMAGES });
  const schedule = new BucketBatches(
    train.map((set) => set.count),
    opts.batchSize,
    opts.seed,
  );
  const total = train.reduce((a, set) => a + set.count, 0);
  const first = train[0]!;
  return {
    // The first size is the model's own: its imageShape, and the size single-size commands load the folder at.
    spec: { ...(first.spec as Required<FolderDatasetSpec>), size: sizes[0]! },
    imageShape: [sizes[0]![0], sizes[0]![1], first.channels],
    batchAt: (step) => {
      const { bucket, rows } = schedule.at(step);
      const set = train[bucket]!;
      const x = copyRows(set.images, set.height * set.width * set.channels, rows);
      return tf.tensor4d(x, [rows.length, set.height, set.width, set.channels]);
    },
    *statsBatches() {
      // Each bucket in proportion to its size.
      for (const set of train)
        yield* setBatches(set, Math.ceil((set.count * Math.min(total, STATS_IMAGES)) / total));
    },
    testBatches: async () =>
      new Map(test.map((set) => [sizeLabel([set.height, set.width]), [...setBatches(set)]])),
    buckets: sizes,
    description: {
      buckets: sizes.map(sizeLabel),
      imagesPerBucket: Object.fromEntries(
        train.map((set) => [sizeLabel([set.height, set.width]), set.count]),
      ),
    },
  };
}

export async function trainAutoencoder(opts: TrainAutoencoderOptions): Promise<TrainResult> {
  const widths = opts.arch?.channels ?? AUTOENCODER_DEFAULTS.channels;
  const { buckets } = opts;
  if (typeof buckets === 'object') {
    for (const [h, w] of buckets)
      checkDownsamplingDivides(widths, { ...(opts.dataset as FolderDatasetSpec), size: [h, w] }, '--buckets');
  } else {
    checkDownsamplingDivides(widths, opts.dataset);
  }
  if (buckets === 'digit-strings' && DIGIT_CELL % 2 ** (widths.length - 1) !== 0) {
    throw new Error(
      `digit strings are 28-px cells, but ${widths.length} --channels levels halve the image ` +
        `${widths.length - 1} times (${2 ** (widths.length - 1)}x, which 28 is not a multiple of): use at most 3 levels, e.g. 16,32,64`,
    );
  }
  // The data first (both splits: the test split scores the finished model), so a folder that cannot be used
  // leaves no run folder behind.
  const data =
    buckets === 'digit-strings'
      ? await digitStringData(opts)
      : buckets === undefined
        ? await imageData(opts)
        : await folderBucketData(opts, buckets);
  await prepareRunDir(opts.outDir, opts.resume, opts.steps);
  const cfg: AutoencoderConfig = {
    imageShape: data.imageShape,
    ...AUTOENCODER_DEFAULTS,
    ...opts.arch,
    latentScale: 1,
    latentShift: 0,
  };
  const params = initAutoencoder(cfg, new Rng(opts.seed));
  const player = {
    params,
    optimizer: new AdamW({ ...ADAM_DEFAULTS, lr: opts.lr, warmupSteps: 100 }),
    ema: new Ema(params, 0.999),
  };
  const down = downsampling(cfg);
  const result = await train(
    { autoencoder: player },
    (ctx) => {
      // Drawn whole on every rank (the same stream), then this rank's rows (all of them in one process).
      const whole = data.batchAt(ctx.step);
      const [b, h, w] = whole.shape;
      const eps = ctx.shard(
        randn(ctx.rng, [b, Math.ceil(h / down), Math.ceil(w / down), cfg.latentChannels]),
      );
      const x = ctx.shard(whole);
      const metrics = ctx.update('autoencoder', (p) => autoencoderLoss(p, cfg, x, eps as tf.Tensor4D));
      tf.dispose([x, whole, eps]);
      return metrics;
    },
    {
      outDir: opts.outDir,
      totalSteps: opts.steps,
      seed: opts.seed,
      checkpointEvery: opts.checkpointEvery,
      logEvery: 10,
      resume: opts.resume,
      ...(opts.profile === undefined ? {} : { profile: opts.profile }),
      label: 'train-ae',
      dataParallel: true,
    },
  );
  if (result.interrupted || !isRankZero()) return result;

  // Latent normalisation (SD3's shift and scale) measured on training images with the EMA weights.
  const ema = player.ema.params;
  const { shift, variance } = await latentStatistics(ema, cfg, data.statsBatches());
  const finalCfg: AutoencoderConfig = { ...cfg, latentShift: shift, latentScale: 1 / Math.sqrt(variance) };
  const psnrs: Record<string, number> = {};
  let [weighted, images] = [0, 0];
  for (const [group, batches] of await data.testBatches()) {
    const count = batches.reduce((a, x) => a + x.shape[0], 0);
    const mean = await reconstructionPsnr(ema, finalCfg, batches);
    psnrs[group] = Number(mean.toFixed(2));
    // The headline: the mean over the test images of the headline groups (the trained string lengths).
    if (data.headlineGroups === undefined || data.headlineGroups.includes(group)) {
      weighted += mean * count;
      images += count;
    }
  }
  const psnr = weighted / images;
  const groups = Object.keys(psnrs);
  const config: AutoencoderModelConfig = {
    format: 'ladder-model',
    version: 1,
    kind: 'autoencoder',
    dataset: data.spec,
    autoencoder: finalCfg,
    ...(data.buckets === undefined
      ? {}
      : { buckets: data.buckets.map(([h, w]) => [h, w] as [number, number]) }),
  };
  const card = makeCard(
    { seed: opts.seed, dataset: datasetLabel(data.spec), batchSize: opts.batchSize },
    result,
    {
      testPsnrDb: Number(psnr.toFixed(2)),
      ...(groups.length > 1 ? { testPsnrDbByGroup: psnrs } : {}),
      latentStd: Number(Math.sqrt(variance).toFixed(4)),
    },
    {
      params: countParams(ema),
      weights: 'EMA (decay 0.999)',
      latentShape: latentShape(cfg),
      ...data.description,
    },
  );
  await saveModelFolder(opts.outDir, config, ema, card, { replace: opts.resume });
  process.stderr.write(`autoencoder written to ${opts.outDir}: test PSNR ${psnr.toFixed(2)} dB\n`);
  return result;
}

/** Mean and variance of every latent element (posterior means) over `batches`, each disposed once read. */
async function latentStatistics(
  params: Params,
  cfg: AutoencoderConfig,
  batches: Iterable<tf.Tensor4D>,
): Promise<{ shift: number; variance: number }> {
  let [n, sum, sumSq] = [0, 0, 0];
  for (const x of batches) {
    const mean = tf.tidy(() => encodePosterior(params, cfg, x).mean);
    const values = (await mean.data()) as Float32Array;
    tf.dispose([x, mean]);
    for (const v of values) {
      sum += v;
      sumSq += v * v;
    }
    n += values.length;
  }
  const shift = sum / n;
  return { shift, variance: Math.max(sumSq / n - shift * shift, 1e-12) };
}

/**
 * Mean PSNR (peak-to-peak 2 for images in [-1, 1]) of posterior-mean reconstructions of `batches` (each disposed
 * once read).
 */
export async function reconstructionPsnr(
  params: Parameters<typeof decodeRaw>[0],
  cfg: AutoencoderConfig,
  batches: readonly tf.Tensor4D[],
): Promise<number> {
  const psnrs: number[] = [];
  for (const x of batches) {
    const mse = tf.tidy(() => {
      const recon = decodeRaw(params, cfg, encodePosterior(params, cfg, x).mean).clipByValue(-1, 1);
      return recon.sub(x).square().reshape([x.shape[0], -1]).mean(1);
    });
    for (const m of (await mse.data()) as Float32Array) psnrs.push(10 * Math.log10(4 / Math.max(m, 1e-12)));
    tf.dispose([x, mse]);
  }
  return psnrs.reduce((a, b) => a + b, 0) / psnrs.length;
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Training loss: per-pixel MSE of the reconstruction from a posterior sample (reparameterised with `eps`)
 * plus klWeight x the KL divergence to N(0, I) per latent element.
 */
export function autoencoderLoss(
  params: Params,
  cfg: AutoencoderConfig,
  x: tf.Tensor4D,
  eps: tf.Tensor4D,
): { loss: tf.Scalar; aux: Record<string, tf.Scalar> } {
  const { mean, logvar } = encodePosterior(params, cfg, x);
  const z = mean.add(logvar.mul(0.5).exp().mul(eps)) as tf.Tensor4D;
  const recon = decodeRaw(params, cfg, z).sub(x).square().mean() as tf.Scalar;
  const kl = mean.square().add(logvar.exp()).sub(logvar).sub(1).mul(0.5).mean() as tf.Scalar;
  return { loss: recon.add(kl.mul(cfg.klWeight)), aux: { recon, kl } };
}
