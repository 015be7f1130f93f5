// `ladder eval`: samples a teacher or student at several step counts (same seed, noise and class-balanced
// labels for every model, so comparisons are paired), times it, and scores the samples with the feature net.
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join, relative } from 'node:path';
import { ensureWritableDir, writeFileAtomic, writeJsonAtomic } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { currentBackend } from '../engine/backend.js';
import { imageGridPng } from '../image/png.js';
import { CONFIG_FILE, type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import { balancedLabels, defaultSampler, generateImages, nfe } from '../models/pipeline.js';
import { disposeParams } from '../nn/params.js';
import type { SamplerKind } from '../samplers/sample.js';
import { type EvalJson, type EvalResult, parseEvalJson } from './eval-json.js';
import {
  type ExtractedFeatures,
  extractFeatures,
  type LoadedFeatureNet,
  loadFeatureNet,
} from './features.js';
import { classAccuracy, featureStats, frechetDistanceFromStats, kid, precisionRecall } from './metrics.js';
import { loadReference, type ReferenceSet } from './reference.js';

export interface EvaluateOptions {
  /** Teacher or student model folder. */
  readonly modelDir: string;
  /** Feature net folder (default `models/<dataset>/features`). */
  readonly featuresDir?: string;
  /** Sampling step counts (default: the model's own). */
  readonly steps?: readonly number[];
  /** CFG scale (default: the model's own). */
  readonly cfg?: number;
  readonly sampler?: SamplerKind;
  /** Generated images per setting (class-balanced). */
  readonly samples: number;
  readonly seed: number;
  /** Eval JSON to write; sample grids go next to it. */
  readonly outJson: string;
  /** Model name in the JSON and the report (default: the folder path as given). */
  readonly name?: string;
  /** Sampling batch size, which the timing refers to (default 100). */
  readonly batchSize?: number;
  /** KID subsets (default 20) of min(1000, samples) rows each. */
  readonly kidSubsets?: number;
  /** Images per class in each setting's sample grid; 0 writes no grids (default 8). */
  readonly gridPerClass?: number;
  /** Use only the first N test images as the reference (quick runs and tests). */
  readonly referenceLimit?: number;
  /** Parent of the reference-statistics cache folder (default `.cache/`). */
  readonly cacheDir?: string;
  /**
   * Sample at this latent [height, width] instead of the model's own (resolution independence); the decoded
   * images are resized (bilinear) to the feature net's input before scoring.
   */
  readonly latentSize?: readonly [number, number];
}

/** Nearest-neighbour count of the precision/recall estimate (Kynkaanniemi et al. 2019). */
export const PRECISION_RECALL_K = 3;
const KID_SUBSET_SIZE = 1000;
// Fixed (not the eval seed): every eval compares against the same real rows for precision/recall.
const REFERENCE_SUBSET_SEED = 0;

/** Where `ladder eval` looks for the feature net of a dataset when --features is not given. */
export const defaultFeaturesDir = (dataset: string): string => join('models', dataset, 'features');

/** Runs the evaluation, writes the eval JSON (and grids) and returns what it wrote. */
export async function evaluateModel(opts: EvaluateOptions): Promise<EvalJson> {
  const batchSize = opts.batchSize ?? 100;
  if (!Number.isInteger(opts.samples) || opts.samples <= PRECISION_RECALL_K) {
    throw new Error(
      `--samples must be an integer above ${PRECISION_RECALL_K} (precision/recall use ${PRECISION_RECALL_K} neighbours), got ${opts.samples}`,
    );
  }
  if (!existsSync(join(opts.modelDir, CONFIG_FILE))) {
    const what = existsSync(opts.modelDir) ? `has no ${CONFIG_FILE}` : 'does not exist';
    throw new Error(
      `model folder ${opts.modelDir} ${what}: pass --model the folder of a trained teacher or student`,
    );
  }
  await ensureWritableDir(dirname(opts.outJson)); // fail before any slow work
  const model = await loadDiffusionModel(opts.modelDir);
  let net: LoadedFeatureNet | undefined;
  try {
    net = await loadFeatureNet(opts.featuresDir ?? defaultFeaturesDir(model.config.dataset));
    checkCompatible(model, net);
    return await runEvaluation(model, net, opts, batchSize);
  } finally {
    disposeParams(model.params);
    disposeParams(model.autoencoder.params);
    if (net !== undefined) disposeParams(net.params);
  }
}

function checkCompatible(model: LoadedDiffusionModel, net: LoadedFeatureNet): void {
  const fix = `pass --features with a feature net trained on ${model.config.dataset} (ladder train-features --data ${model.config.dataset})`;
  if (net.config.dataset !== model.config.dataset) {
    throw new Error(
      `feature net ${net.dir} was trained on ${net.config.dataset}, but model ${model.dir} generates ${model.config.dataset} images: ${fix}`,
    );
  }
  const imageShape = model.autoencoder.config.autoencoder.imageShape;
  if (imageShape.join('x') !== net.config.featureNet.imageShape.join('x')) {
    throw new Error(
      `feature net ${net.dir} reads ${net.config.featureNet.imageShape.join('x')} images, but model ${model.dir} makes ${imageShape.join('x')}: ${fix}`,
    );
  }
  if (net.config.featureNet.numClasses !== model.config.unet.numClasses) {
    throw new Error(
      `feature net ${net.dir} knows ${net.config.featureNet.numClasses} classes, model ${model.dir} ${model.config.unet.numClasses}: ${fix}`,
    );
  }
}

async function runEvaluation(
  model: LoadedDiffusionModel,
  net: LoadedFeatureNet,
  opts: EvaluateOptions,
  batchSize: number,
): Promise<EvalJson> {
  const { config } = model;
  const stepsList = opts.steps ?? config.sampling.steps;
  const cfg = opts.cfg ?? config.sampling.cfg;
  const sampler = opts.sampler ?? defaultSampler(config);
  const reference = await loadReference(net, 'test', {
    ...(opts.referenceLimit === undefined ? {} : { limit: opts.referenceLimit }),
    ...(opts.cacheDir === undefined ? {} : { cacheDir: opts.cacheDir }),
  });
  const classes = Array.from({ length: config.unet.numClasses }, (_, k) => k);
  const labels = balancedLabels(classes, opts.samples);
  const [netH, netW] = net.config.featureNet.imageShape;
  const generate = (steps: number, asked: Int32Array): tf.Tensor4D => {
    const { latentSize } = opts;
    const images = generateImages(model, {
      labels: asked,
      steps,
      cfg,
      sampler,
      seed: opts.seed,
      batchSize,
      ...(latentSize === undefined ? {} : { latentSize }),
    });
    if (images.shape[1] === netH && images.shape[2] === netW) return images;
    const resized = tf.image.resizeBilinear(images, [netH, netW]);
    images.dispose();
    return resized;
  };

  // Warm-up: one 1-step batch, so one-time backend setup is not billed to the first setting.
  tf.dispose(generate(1, labels.subarray(0, Math.min(batchSize, labels.length))));

  const results: EvalResult[] = [];
  for (const steps of stepsList) {
    // 1. Generate every sample at this step count, timed through to the host copy.
    const began = performance.now();
    const images = generate(steps, labels);
    const pixels = (await images.data()) as Float32Array; // data() waits for the backend to finish
    const msPerImage = (performance.now() - began) / opts.samples;
    tf.dispose(images);
    // 2. Features and metrics against the test reference.
    const fake = await extractFeatures(net, pixels, opts.samples);
    const metrics = sampleMetrics(reference, fake, labels, opts.seed, opts.kidSubsets ?? 20);
    const grid = await writeGrid(opts, pixels, labels, net, steps);
    results.push({
      steps,
      cfg,
      nfe: nfe(steps, cfg),
      ...metrics,
      msPerImage,
      sampler,
      ...(grid === undefined ? {} : { grid }),
    });
    process.stderr.write(
      `${steps} steps: FID ${metrics.fid.toFixed(2)}, class accuracy ${(100 * metrics.classAccuracy).toFixed(1)}%, ${msPerImage.toFixed(2)} ms/image\n`,
    );
  }
  const out = parseEvalJson(
    {
      model: opts.name ?? opts.modelDir,
      dataset: config.dataset,
      samples: opts.samples,
      seed: opts.seed,
      featureNet: net.name,
      results,
      backend: currentBackend(),
      createdAt: new Date().toISOString(),
      modelKind: config.kind,
      batchSize,
      reference: { split: 'test', images: reference.count },
      kidSubsets: opts.kidSubsets ?? 20,
      kidSubsetSize: Math.min(KID_SUBSET_SIZE, opts.samples, reference.count),
      precisionRecallK: PRECISION_RECALL_K,
      ...(opts.latentSize === undefined ? {} : { latentSize: opts.latentSize }),
    },
    'ladder eval (internal)',
  );
  await writeJsonAtomic(opts.outJson, out);
  return out;
}

/** FID, KID, precision/recall and class accuracy of generated features against a reference set. */
export function sampleMetrics(
  reference: ReferenceSet,
  fake: ExtractedFeatures,
  askedLabels: Int32Array,
  seed: number,
  kidSubsets: number,
): Pick<EvalResult, 'fid' | 'kid' | 'kidStd' | 'precision' | 'recall' | 'classAccuracy'> {
  const d = fake.dim;
  const fid = frechetDistanceFromStats(featureStats(fake.features, fake.count, d), reference.stats);
  const kidResult = kid(reference.features, fake.features, reference.count, fake.count, d, {
    subsets: kidSubsets,
    subsetSize: KID_SUBSET_SIZE,
    seed,
  });
  // Equal-sized real and fake sets, so both k-NN radii come from the same density of points.
  const realCount = Math.min(reference.count, fake.count);
  const rows = new Rng(REFERENCE_SUBSET_SEED).permutation(reference.count).subarray(0, realCount);
  const real = new Float32Array(realCount * d);
  for (const [i, row] of rows.entries()) real.set(reference.features.subarray(row * d, (row + 1) * d), i * d);
  const { precision, recall } = precisionRecall(
    real,
    fake.features,
    realCount,
    fake.count,
    d,
    PRECISION_RECALL_K,
  );
  return {
    fid,
    kid: kidResult.kid,
    kidStd: kidResult.kidStd,
    precision,
    recall,
    classAccuracy: classAccuracy(fake.predicted, askedLabels),
  };
}

// A class-per-row grid of the first `gridPerClass` samples of each class; returns its path relative to the JSON.
async function writeGrid(
  opts: EvaluateOptions,
  pixels: Float32Array,
  labels: Int32Array,
  net: LoadedFeatureNet,
  steps: number,
): Promise<string | undefined> {
  const perClass = opts.gridPerClass ?? 8;
  if (perClass === 0) return undefined;
  const [h, w, c] = net.config.featureNet.imageShape;
  const size = h * w * c;
  const numClasses = net.config.featureNet.numClasses;
  const cells = new Float32Array(numClasses * perClass * size).fill(-1);
  const filled = new Int32Array(numClasses);
  labels.forEach((label, i) => {
    if (filled[label]! >= perClass) return;
    cells.set(pixels.subarray(i * size, (i + 1) * size), (label * perClass + filled[label]!) * size);
    filled[label]! += 1;
  });
  const png = imageGridPng(cells, numClasses * perClass, h, w, c, {
    rows: numClasses,
    cols: perClass,
    scale: 2,
  });
  const stem = basename(opts.outJson, extname(opts.outJson));
  const path = join(dirname(opts.outJson), `${stem}-${steps}steps.png`);
  await writeFileAtomic(path, png);
  return relative(dirname(opts.outJson), path);
}
