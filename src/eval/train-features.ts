import { join } from 'node:path';
import { writeJsonAtomic } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { loadDataset } from '../data/dataset.js';
import { type DatasetSpec, datasetLabel, type ImageDataset } from '../data/image-dataset.js';
import { BatchLoader, datasetSource } from '../data/loader.js';
import { loadFeatureNet, saveFeatureNet } from '../models/feature-net.js';
import { CARD_FILE } from '../models/folder.js';
import type { FeaturesModelConfig } from '../models/schema.js';
import {
  FEATURE_NET_DEFAULTS,
  type FeatureNetConfig,
  featureNetForward,
  initFeatureNet,
} from '../nn/feature-net.js';
import { countParams, disposeParams, type Params } from '../nn/params.js';
import { makeCard, prepareRunDir } from '../train/card.js';
import { isRankZero } from '../train/data-parallel.js';
import { Ema } from '../train/ema.js';
import { type TrainResult, train } from '../train/loop.js';
import { ADAM_DEFAULTS, type AdamConfig, AdamW } from '../train/optim.js';
import { computeAnchors } from './anchors.js';
import { extractFeatures } from './features.js';
import { classAccuracy } from './metrics.js';

export interface TrainFeaturesOptions {
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
  /** Largest random shift of the training images, in pixels, along each axis (0 disables augmentation). */
  readonly maxShift: number;
  readonly emaDecay: number;
  /** Use only the first N training images (quick runs and tests). */
  readonly limit?: number;
  /** Use only the first N test images for the accuracy, the reference statistics and the anchors. */
  readonly testLimit?: number;
  /** Parent of the reference-statistics cache folder (default `.cache/`). */
  readonly cacheDir?: string;
  readonly arch?: Partial<Pick<FeatureNetConfig, 'channels' | 'kernel' | 'featureDim'>>;
}

/**
 * The report net's settings (`models/<dataset>/features-report`): another architecture (three narrower levels,
 * 3x3 kernels, 128 features) and seed than the selection net (FEATURE_NET_DEFAULTS, seed 0), so that numbers
 * tuned against the selection net are reported on a net they were never tuned on.
 */
export const REPORT_NET = { channels: [32, 64, 128], kernel: 3, featureDim: 128, seed: 7 } as const;

/** The `ladder train-features` flags that make the report net (besides --data and --out). */
export function reportNetFlags(): string[] {
  return [
    '--channels',
    REPORT_NET.channels.join(','),
    '--kernel',
    String(REPORT_NET.kernel),
    '--feature-dim',
    String(REPORT_NET.featureDim),
    '--seed',
    String(REPORT_NET.seed),
  ];
}

/**
 * Copies the images at `indices`, each moved by a random whole-pixel shift in [-maxShift, maxShift] along each
 * axis (edge pixels repeat into the gap). Draws two numbers from `rng` per image, even when maxShift is 0.
 */
export function shiftedImages(
  data: Float32Array,
  indices: Int32Array,
  shape: readonly [number, number, number],
  maxShift: number,
  rng: Rng,
): Float32Array {
  const [h, w, c] = shape;
  const size = h * w * c;
  const out = new Float32Array(indices.length * size);
  const clamp = (v: number, hi: number): number => Math.max(0, Math.min(v, hi));
  indices.forEach((index, i) => {
    const dy = rng.int(2 * maxShift + 1) - maxShift;
    const dx = rng.int(2 * maxShift + 1) - maxShift;
    const src = index * size;
    for (let y = 0; y < h; y++) {
      const row = src + clamp(y - dy, h - 1) * w * c;
      for (let x = 0; x < w; x++) {
        const from = row + clamp(x - dx, w - 1) * c;
        const to = i * size + (y * w + x) * c;
        for (let ch = 0; ch < c; ch++) out[to + ch] = data[from + ch]!;
      }
    }
  });
  return out;
}

/** Adam with the learning rate on a half cosine from `lr` down to 0 over `totalSteps` updates (times warm-up). */
export class CosineAdamW extends AdamW {
  constructor(
    config: AdamConfig,
    private readonly totalSteps: number,
  ) {
    super(config);
  }

  override learningRate(lrScale = 1): number {
    const progress = Math.min(1, this.updates / this.totalSteps); // `updates` is checkpointed: resumes exactly
    return super.learningRate(lrScale) * 0.5 * (1 + Math.cos(Math.PI * progress));
  }
}

/** Share of a labelled set that the net (its argmax) classifies correctly. */
export async function labelledAccuracy(
  net: Parameters<typeof extractFeatures>[0],
  data: Pick<ImageDataset, 'images' | 'labels' | 'count'>,
): Promise<number> {
  const { predicted } = await extractFeatures(net, data.images, data.count);
  return classAccuracy(predicted, data.labels);
}

export async function trainFeatureNet(opts: TrainFeaturesOptions): Promise<TrainResult> {
  // The data first (both splits: the test split scores the finished net), so a folder that cannot be used leaves
  // no run folder behind.
  const data = await loadDataset(
    opts.dataset,
    'train',
    opts.limit === undefined ? {} : { limit: opts.limit },
  );
  await loadDataset(opts.dataset, 'test', { limit: 1 });
  if (data.numClasses < 2) {
    throw new Error(
      `a feature net is a classifier and ${datasetLabel(data.spec)} has one class (no class subfolders): train it on ` +
        'a labelled set of similar images, and pass that net to eval with --features',
    );
  }
  await prepareRunDir(opts.outDir, opts.resume, opts.steps);
  const shape = [data.height, data.width, data.channels] as const;
  const cfg: FeatureNetConfig = {
    imageShape: shape,
    numClasses: data.numClasses,
    ...FEATURE_NET_DEFAULTS,
    ...opts.arch,
  };
  const params = initFeatureNet(cfg, new Rng(opts.seed));
  const player = {
    params,
    optimizer: new CosineAdamW({ ...ADAM_DEFAULTS, lr: opts.lr, warmupSteps: 100 }, opts.steps),
    ema: new Ema(params, opts.emaDecay),
  };
  const loader = new BatchLoader(datasetSource(data), { batchSize: opts.batchSize, seed: opts.seed });
  const result = await train(
    { features: player },
    (ctx) => {
      // 1. A batch in loader order, each image shifted with draws from the run's (checkpointed) stream.
      const indices = loader.indicesAt(ctx.step);
      const pixels = shiftedImages(data.images, indices, shape, opts.maxShift, ctx.rng);
      // Data-parallel: drawn whole on every rank (the same stream), then this rank's rows.
      const x = ctx.shard(tf.tensor4d(pixels, [indices.length, ...shape]));
      const labels = ctx.shard(
        tf.tensor1d(
          Int32Array.from(indices, (i) => data.labels[i]!),
          'int32',
        ),
      );
      // 2. One Adam step on the cross-entropy.
      const metrics = ctx.update('features', (p) => featureNetLoss(p, cfg, x, labels));
      tf.dispose([x, labels]);
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
      label: 'train-features',
      dataParallel: true,
    },
  );
  if (result.interrupted || !isRankZero()) return result;

  // 3. Ship the EMA weights; then read the folder back so accuracy and anchors use exactly what was written.
  const config: FeaturesModelConfig = {
    format: 'ladder-model',
    version: 1,
    kind: 'features',
    dataset: data.spec,
    classNames: [...data.classNames],
    featureNet: cfg,
  };
  await saveFeatureNet(opts.outDir, config, player.ema.params);
  const paramCount = countParams(player.ema.params);
  player.ema.dispose();
  disposeParams(player.params);
  const net = await loadFeatureNet(opts.outDir);
  try {
    const testSet = await loadDataset(
      data.spec,
      'test',
      opts.testLimit === undefined ? {} : { limit: opts.testLimit },
    );
    const testAccuracy = await labelledAccuracy(net, testSet);
    const anchors = await computeAnchors(net, {
      ...(opts.testLimit === undefined ? {} : { limit: opts.testLimit }),
      ...(opts.cacheDir === undefined ? {} : { cacheDir: opts.cacheDir }),
    });
    const card = makeCard(
      { seed: opts.seed, dataset: datasetLabel(data.spec), batchSize: opts.batchSize },
      result,
      { testAccuracy, testImages: testSet.count, testErrors: Math.round((1 - testAccuracy) * testSet.count) },
      {
        params: paramCount,
        weights: `EMA (decay ${opts.emaDecay})`,
        featureNet: net.name,
        augmentation: `random shifts of up to ${opts.maxShift} px`,
        anchors,
      },
    );
    await writeJsonAtomic(join(opts.outDir, CARD_FILE), card);
    const f = anchors.fid;
    process.stderr.write(
      `feature net written to ${opts.outDir}: test accuracy ${(100 * testAccuracy).toFixed(2)}%; FID anchors: ` +
        `test halves ${f.testHalves.toFixed(2)}, train ${f.train.toFixed(2)}, blurred ${f.blurred.toFixed(2)}, noise ${f.noise.toFixed(1)}\n`,
    );
  } finally {
    disposeParams(net.params);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------

/** Mean softmax cross-entropy against int32 `labels` [B], with the batch accuracy as an aux value. */
export function featureNetLoss(
  params: Params,
  cfg: FeatureNetConfig,
  x: tf.Tensor4D,
  labels: tf.Tensor1D,
): { loss: tf.Scalar; aux: Record<string, tf.Scalar> } {
  const { logits } = featureNetForward(params, cfg, x);
  const logProbs = tf.logSoftmax(logits);
  const loss = tf.oneHot(labels.toInt(), cfg.numClasses).mul(logProbs).sum(1).mean().neg() as tf.Scalar;
  const accuracy = tf.equal(tf.argMax(logits, 1), labels.toInt()).toFloat().mean() as tf.Scalar;
  return { loss, aux: { accuracy } };
}
