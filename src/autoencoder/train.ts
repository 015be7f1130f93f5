import { mapInBatches, sliceTensor } from '../core/batched.js';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { loadDataset } from '../data/dataset.js';
import { type DatasetSpec, datasetLabel } from '../data/image-dataset.js';
import { BatchLoader, datasetSource } from '../data/loader.js';
import { saveModelFolder } from '../models/folder.js';
import type { AutoencoderModelConfig } from '../models/schema.js';
import {
  type AutoencoderConfig,
  decodeRaw,
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
  /** Use only the first N training images (quick runs and tests). */
  readonly limit?: number;
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
function checkDownsamplingDivides(widths: readonly number[], spec: DatasetSpec): void {
  if (typeof spec === 'string') return;
  const factor = 2 ** (widths.length - 1);
  const [height, width] = spec.size;
  if (height % factor === 0 && width % factor === 0) return;
  const round = (n: number) => Math.max(factor, Math.round(n / factor) * factor);
  const suggestion = height === width ? String(round(height)) : `${round(width)}x${round(height)}`;
  throw new Error(
    `--size ${height === width ? height : `${width}x${height}`} is not a multiple of ${factor}: the autoencoder ` +
      `halves the image ${widths.length - 1} times (--channels ${widths.join(',')}); use --size ${suggestion}`,
  );
}

export async function trainAutoencoder(opts: TrainAutoencoderOptions): Promise<TrainResult> {
  const widths = opts.arch?.channels ?? AUTOENCODER_DEFAULTS.channels;
  checkDownsamplingDivides(widths, opts.dataset);
  // The data first (both splits: the test split scores the finished model), so a folder that cannot be used
  // leaves no run folder behind.
  const data = await loadDataset(
    opts.dataset,
    'train',
    opts.limit === undefined ? {} : { limit: opts.limit },
  );
  await loadDataset(opts.dataset, 'test', { limit: 1 });
  await prepareRunDir(opts.outDir, opts.resume, opts.steps);
  const cfg: AutoencoderConfig = {
    imageShape: [data.height, data.width, data.channels],
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
  const loader = new BatchLoader(datasetSource(data), { batchSize: opts.batchSize, seed: opts.seed });
  const [lh, lw, lc] = latentShape(cfg);
  const result = await train(
    { autoencoder: player },
    (ctx) => {
      // Drawn whole on every rank (the same stream), then this rank's rows (all of them in one process).
      const batch = loader.batchAt(ctx.step);
      const eps = ctx.shard(randn(ctx.rng, [opts.batchSize, lh, lw, lc]) as tf.Tensor4D);
      const x = ctx.shard(batch.x);
      const metrics = ctx.update('autoencoder', (p) => autoencoderLoss(p, cfg, x, eps));
      tf.dispose([x, batch.labels, eps]);
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
  const statsCount = Math.min(data.count, 10_000);
  const means = await mapInBatches(statsCount, 500, (s, e) =>
    tf.tidy(
      () => encodePosterior(ema, cfg, sliceTensor(data.images, cfg.imageShape, s, e) as tf.Tensor4D).mean,
    ),
  );
  const shift = means.reduce((a, b) => a + b, 0) / means.length;
  const variance = means.reduce((a, b) => a + (b - shift) ** 2, 0) / means.length;
  const finalCfg: AutoencoderConfig = { ...cfg, latentShift: shift, latentScale: 1 / Math.sqrt(variance) };
  const psnr = await reconstructionPsnr(ema, finalCfg, data.spec);
  const config: AutoencoderModelConfig = {
    format: 'ladder-model',
    version: 1,
    kind: 'autoencoder',
    dataset: data.spec,
    autoencoder: finalCfg,
  };
  const card = makeCard(
    { seed: opts.seed, dataset: datasetLabel(data.spec), batchSize: opts.batchSize },
    result,
    { testPsnrDb: Number(psnr.toFixed(2)), latentStd: Number(Math.sqrt(variance).toFixed(4)) },
    { params: countParams(ema), weights: 'EMA (decay 0.999)', latentShape: latentShape(cfg) },
  );
  await saveModelFolder(opts.outDir, config, ema, card, { replace: opts.resume });
  process.stderr.write(`autoencoder written to ${opts.outDir}: test PSNR ${psnr.toFixed(2)} dB\n`);
  return result;
}

/** Mean PSNR (peak-to-peak 2 for images in [-1, 1]) of posterior-mean reconstructions of the test split. */
export async function reconstructionPsnr(
  params: Parameters<typeof decodeRaw>[0],
  cfg: AutoencoderConfig,
  dataset: DatasetSpec,
  limit = 2000,
): Promise<number> {
  const test = await loadDataset(dataset, 'test', { limit });
  const pixels = cfg.imageShape[0] * cfg.imageShape[1] * cfg.imageShape[2];
  const mse = await mapInBatches(test.count, 500, (s, e) =>
    tf.tidy(() => {
      const x = sliceTensor(test.images, cfg.imageShape, s, e) as tf.Tensor4D;
      const recon = decodeRaw(params, cfg, encodePosterior(params, cfg, x).mean).clipByValue(-1, 1);
      return recon
        .sub(x)
        .square()
        .reshape([e - s, pixels])
        .mean(1);
    }),
  );
  const psnrs = Array.from(mse, (m) => 10 * Math.log10(4 / Math.max(m, 1e-12)));
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
