// `ladder eval`: samples a teacher or student at several step counts (same seed, noise and class-balanced
// labels for every model, so comparisons are paired; a caption model gets the test split's captions), times it,
// and scores the samples with a feature net: the selection net by default, the report net for shipped numbers.
// FID comes with a bootstrap interval over the generated samples and the finite-sample floor (real training
// images at the same count).

import { existsSync } from 'node:fs';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { ensureWritableDir, writeFileAtomic, writeJsonAtomic } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import { median } from '../core/stats.js';
import * as tf from '../core/tf.js';
import { loadDataset } from '../data/dataset.js';
import {
  type DatasetSpec,
  datasetFlags,
  datasetId,
  datasetLabel,
  sameDataset,
} from '../data/image-dataset.js';
import { currentBackend } from '../engine/backend.js';
import type { Collectives } from '../engine/torch/collectives.js';
import { imageGridPng } from '../image/png.js';
import { type LoadedFeatureNet, loadFeatureNet } from '../models/feature-net.js';
import { CONFIG_FILE, type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import {
  balancedLabels,
  checkChunkFits,
  DEFAULT_BATCH,
  defaultSampler,
  type GeneratedChunk,
  imageChunks,
  nfe,
} from '../models/pipeline.js';
import { shippedModelsDirForCommands } from '../models/shipped.js';
import { disposeParams } from '../nn/params.js';
import type { SamplerKind } from '../samplers/sample.js';
import { gatherRows, processGroupFromEnv, valueFromRankZero } from '../train/data-parallel.js';
import { type EvalJson, type EvalResult, type FeatureNetRole, parseEvalJson } from './eval-json.js';
import { type ExtractedFeatures, extractFeatures } from './features.js';
import {
  BOOTSTRAP_LEVEL,
  type BootstrapOptions,
  blockLayout,
  classAccuracy,
  classAccuracyBootstrap,
  featureStats,
  fidBootstrap,
  frechetDistanceFromStats,
  kid,
  precisionRecall,
} from './metrics.js';
import { type FidFloor, loadFidFloor, loadReference, type ReferenceSet } from './reference.js';
import { reportNetFlags } from './train-features.js';

export interface EvaluateOptions {
  /** Teacher or student model folder. */
  readonly modelDir: string;
  /** What the feature net is used for (default 'selection'); picks its default folder and is recorded. */
  readonly featureNetRole?: FeatureNetRole;
  /** Feature net folder (default: the role's folder, `featuresDirFor(dataset, role)`). */
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
  /** Images generated, decoded and scored at a time (default 100): bounds memory; the timing refers to it. */
  readonly batchSize?: number;
  /** KID subsets (default 20) of min(1000, samples) rows each. */
  readonly kidSubsets?: number;
  /** Bootstrap replicates of the FID and class-accuracy intervals (default 200); 0 computes no intervals. */
  readonly bootstrapReplicates?: number;
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
  /**
   * Replace an existing eval JSON and its sample grids (default true: `ladder demo` rewrites its own folder);
   * `ladder eval` passes its --force, so by hand they are refused.
   */
  readonly overwrite?: boolean;
}

/** Nearest-neighbour count of the precision/recall estimate (Kynkaanniemi et al. 2019). */
export const PRECISION_RECALL_K = 3;
const KID_SUBSET_SIZE = 1000;
// Fixed (not the eval seed): every eval compares against the same real rows for precision/recall.
const REFERENCE_SUBSET_SEED = 0;

/** Blocks the bootstrap asks for: ceil(samples / 100) consecutive samples each, within each asked class. */
export const BOOTSTRAP_BLOCKS = 100;
export const DEFAULT_BOOTSTRAP_REPLICATES = 200;

/** The folder name of each feature net role under `<models>/<dataset>/`. */
export const FEATURES_FOLDERS: Readonly<Record<FeatureNetRole, string>> = {
  selection: 'features',
  report: 'features-report',
};

/**
 * Where the feature net of `role` for `dataset` lives (`ladder eval`'s default when --features is not given):
 * by default among the package's shipped models.
 */
export const featuresDirFor = (
  dataset: string,
  role: FeatureNetRole,
  modelsRoot = shippedModelsDirForCommands(),
): string => join(modelsRoot, dataset, FEATURES_FOLDERS[role]);

/** Runs the evaluation, writes the eval JSON (and grids) and returns what it wrote. */
export async function evaluateModel(opts: EvaluateOptions): Promise<EvalJson> {
  const batchSize = opts.batchSize ?? DEFAULT_BATCH;
  if (!Number.isInteger(opts.samples) || opts.samples <= PRECISION_RECALL_K) {
    throw new Error(
      `--samples must be an integer above ${PRECISION_RECALL_K} (precision/recall use ${PRECISION_RECALL_K} neighbours), got ${opts.samples}`,
    );
  }
  const replicates = opts.bootstrapReplicates ?? DEFAULT_BOOTSTRAP_REPLICATES;
  if (!Number.isInteger(replicates) || replicates < 0)
    throw new Error(`--bootstrap must be an integer >= 0 (0: no intervals), got ${replicates}`);
  if (!existsSync(join(opts.modelDir, CONFIG_FILE))) {
    const what = existsSync(opts.modelDir) ? `has no ${CONFIG_FILE}` : 'does not exist';
    throw new Error(
      `model folder ${opts.modelDir} ${what}: pass --model the folder of a trained teacher or student`,
    );
  }
  // Under a launch the ranks split the sampling; rank 0 alone scores and writes.
  const group = processGroupFromEnv();
  const lead = group === undefined || group.rank === 0;
  if (lead) await ensureWritableDir(dirname(opts.outJson)); // fail before any slow work
  const model = await loadDiffusionModel(opts.modelDir);
  let net: LoadedFeatureNet | undefined;
  try {
    if (model.config.prompts?.source === 'digit-strings') {
      throw new Error(
        `${opts.modelDir} is a digit-strings model: it is scored per string length (ladder eval --data digit-strings)`,
      );
    }
    if (lead) {
      const stepsList = opts.steps ?? model.config.sampling.steps;
      checkEvalOutputs(opts.outJson, stepsList, (opts.gridPerClass ?? 8) > 0, opts.overwrite);
    }
    checkChunkFits(model, {
      latentSize: opts.latentSize ?? [model.config.latentShape[0], model.config.latentShape[1]],
      batchSize: Math.min(batchSize, opts.samples), // no chunk holds more than the samples
      cfg: opts.cfg ?? model.config.sampling.cfg,
      decode: true,
    });
    const role = opts.featureNetRole ?? 'selection';
    const featuresDir = opts.featuresDir ?? defaultFeaturesDir(model, role);
    if (role === 'report') checkReportNet(featuresDir, model.config.dataset);
    net = await loadFeatureNet(featuresDir);
    checkCompatible(model, net);
    return await runEvaluation(model, net, opts, batchSize, group);
  } finally {
    disposeParams(model.params);
    disposeParams(model.autoencoder.params);
    if (net !== undefined) disposeParams(net.params);
  }
}

// The report net is made separately from the pipeline's models: say how when it is missing or unfinished.
/**
 * The feature net of `role` for a model: the shipped one of a built-in dataset, or for a folder dataset the one
 * beside the model's folder (models/<name>/features next to models/<name>/teacher).
 */
function defaultFeaturesDir(model: LoadedDiffusionModel, role: FeatureNetRole): string {
  const { dataset } = model.config;
  return typeof dataset === 'string'
    ? featuresDirFor(dataset, role)
    : join(dirname(resolve(model.dir)), FEATURES_FOLDERS[role]);
}

function checkReportNet(dir: string, dataset: DatasetSpec): void {
  if (existsSync(join(dir, CONFIG_FILE))) return;
  const make = ['ladder train-features', ...datasetFlags(dataset), '--out', dir, ...reportNetFlags()].join(
    ' ',
  );
  const problem = existsSync(dir)
    ? `holds no finished feature net (no ${CONFIG_FILE}; still training?): finish it with \`${make} --resume\``
    : `does not exist: make it with \`${make}\``;
  throw new Error(`report net folder ${dir} ${problem}, or pass --features <dir>`);
}

/** The sample grid an eval writes for one step count, next to its JSON. */
export const gridPath = (outJson: string, steps: number): string =>
  join(dirname(outJson), `${basename(outJson, extname(outJson))}-${steps}steps.png`);

/**
 * Refuses to replace an eval JSON or a grid it would write (one per step count when `grids`), unless `overwrite`
 * (default true); before any slow work.
 */
export function checkEvalOutputs(
  outJson: string,
  stepsList: readonly number[],
  grids: boolean,
  overwrite = true,
): void {
  if (overwrite) return;
  const gridFiles = grids ? stepsList.map((steps) => gridPath(outJson, steps)) : [];
  const existing = [outJson, ...gridFiles].filter((f) => existsSync(f));
  if (existing.length > 0) {
    throw new Error(
      `${existing.join(', ')} already ${existing.length === 1 ? 'exists' : 'exist'}: ` +
        'pass --force to overwrite the eval JSON and its grids, or choose another --json',
    );
  }
}

function checkCompatible(model: LoadedDiffusionModel, net: LoadedFeatureNet): void {
  const dataset = datasetLabel(model.config.dataset);
  const fix = `pass --features with a feature net trained on ${dataset} (ladder train-features ${datasetFlags(model.config.dataset).join(' ')})`;
  if (!sameDataset(net.config.dataset, model.config.dataset)) {
    throw new Error(
      `feature net ${net.dir} was trained on ${datasetLabel(net.config.dataset)}, but model ${model.dir} generates ${dataset} images: ${fix}`,
    );
  }
  const imageShape = model.autoencoder.config.autoencoder.imageShape;
  if (imageShape.join('x') !== net.config.featureNet.imageShape.join('x')) {
    throw new Error(
      `feature net ${net.dir} reads ${net.config.featureNet.imageShape.join('x')} images, but model ${model.dir} makes ${imageShape.join('x')}: ${fix}`,
    );
  }
  // A caption model's classes are its folder's (the net's, by the same dataset); it is conditioned on captions.
  if (!model.config.prompts && net.config.featureNet.numClasses !== model.config.unet.numClasses) {
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
  group: Collectives | undefined,
): Promise<EvalJson> {
  const lead = group === undefined || group.rank === 0;
  const { config } = model;
  const stepsList = opts.steps ?? config.sampling.steps;
  const cfg = opts.cfg ?? config.sampling.cfg;
  const sampler = opts.sampler ?? defaultSampler(config);
  const referenceOptions = {
    ...(opts.referenceLimit === undefined ? {} : { limit: opts.referenceLimit }),
    ...(opts.cacheDir === undefined ? {} : { cacheDir: opts.cacheDir }),
  };
  const reference = lead ? await loadReference(net, 'test', referenceOptions) : undefined;
  const { labels, prompts } = await evalConditions(model, opts.samples, referenceOptions);
  const floor = lead ? await loadFidFloor(net, reference!, labels, referenceOptions) : undefined;
  const replicates = opts.bootstrapReplicates ?? DEFAULT_BOOTSTRAP_REPLICATES;
  // Within each asked class (the class counts are fixed by design); seeded like the samples, so two evals with one
  // seed and sample count draw the same blocks and their replicates pair up.
  const bootstrap: BootstrapOptions | undefined =
    replicates === 0 ? undefined : { replicates, blocks: BOOTSTRAP_BLOCKS, seed: opts.seed, strata: labels };
  const [netH, netW] = net.config.featureNet.imageShape;
  // Chunks of images at the feature net's input size; each chunk's tensor is the caller's.
  function* generate(steps: number, count = opts.samples): Generator<GeneratedChunk> {
    const { latentSize } = opts;
    for (const chunk of imageChunks(model, {
      ...(prompts === undefined
        ? { labels: labels.subarray(0, count) }
        : { prompts: prompts.slice(0, count) }),
      steps,
      cfg,
      sampler,
      seed: opts.seed,
      batchSize,
      modelName: model.dir,
      checkFinite: true,
      ...(latentSize === undefined ? {} : { latentSize }),
      ...(group === undefined ? {} : { share: { index: group.rank, count: group.worldSize } }),
    })) {
      const images = chunk.tensor;
      if (images.shape[1] === netH && images.shape[2] === netW) {
        yield chunk;
        continue;
      }
      const resized = tf.image.resizeBilinear(images, [netH, netW]);
      images.dispose();
      yield { start: chunk.start, tensor: resized };
    }
  }

  // Warm-up: one 1-step batch, so one-time backend setup is not billed to the first setting.
  for (const { tensor } of generate(1, Math.min(batchSize, labels.length))) tensor.dispose();

  const results: EvalResult[] = [];
  const grids: [string, Uint8Array][] = [];
  const dim = net.config.featureNet.featureDim;
  for (const steps of stepsList) {
    // Chunk by chunk: generate (timed through to the host copy), then keep only features and grid cells.
    const fake: ExtractedFeatures = {
      features: new Float32Array(opts.samples * dim),
      predicted: new Int32Array(opts.samples),
      count: opts.samples,
      dim,
    };
    const grid = new GridCells(net, opts.gridPerClass ?? 8, labels);
    const batchMs: number[] = [];
    let began = performance.now();
    for (const { start, tensor } of generate(steps)) {
      let pixels: Float32Array;
      try {
        pixels = (await tensor.data()) as Float32Array; // data() waits for the backend to finish
      } finally {
        tensor.dispose();
      }
      const count = pixels.length / (netH * netW * net.config.featureNet.imageShape[2]);
      batchMs.push((performance.now() - began) / count);
      const part = await extractFeatures(net, pixels, count);
      fake.features.set(part.features, start * dim);
      fake.predicted.set(part.predicted, start);
      grid.add(pixels, start, count);
      began = performance.now();
    }
    if (group !== undefined) {
      // Every rank's chunks to rank 0 (each rank made chunk k when k % ranks = rank).
      const owner = (sample: number): number => Math.floor(sample / batchSize) % group.worldSize;
      fake.features.set(gatherRows(group, fake.features, dim, owner));
      fake.predicted.set(gatherRows(group, Float32Array.from(fake.predicted), 1, owner));
      grid.gather(group, owner);
    }
    if (!lead) continue;
    // The median batch: one slow batch (a garbage collection, another process) does not move it. A short last
    // batch pays the per-call overhead over fewer images: left out when full ones were timed.
    const full = batchMs.slice(0, Math.floor(opts.samples / batchSize));
    const timed = full.length > 0 ? full : batchMs;
    const msPerImage = median(timed);
    const metrics = sampleMetrics(reference!, fake, labels, opts.seed, opts.kidSubsets ?? 20, bootstrap);
    const png = grid.png();
    if (png !== undefined) grids.push([gridPath(opts.outJson, steps), png]);
    results.push({
      steps,
      cfg,
      nfe: nfe(steps, cfg),
      ...metrics,
      msPerImage,
      timedBatches: timed.length,
      sampler,
      ...(png === undefined ? {} : { grid: relative(dirname(opts.outJson), gridPath(opts.outJson, steps)) }),
    });
    process.stderr.write(
      `${steps} steps: ${summaryLine(metrics, floor)}, ${msPerImage.toFixed(2)} ms/image\n`,
    );
  }
  if (!lead) return valueFromRankZero<EvalJson>(group!, undefined);
  // Written only once every setting has run, so a failed run leaves no grids without their JSON.
  for (const [path, png] of grids) await writeFileAtomic(path, png);
  const out = parseEvalJson(
    {
      model: opts.name ?? opts.modelDir,
      dataset: datasetId(config.dataset),
      samples: opts.samples,
      seed: opts.seed,
      featureNet: net.name,
      featureNetRole: opts.featureNetRole ?? 'selection',
      featureNetDir: net.dir,
      ...(bootstrap === undefined
        ? {}
        : {
            bootstrap: {
              replicates: bootstrap.replicates,
              blocks: blockLayout(opts.samples, bootstrap.blocks, labels).blocks,
              level: BOOTSTRAP_LEVEL,
              withinClasses: true,
            },
          }),
      ...(floor === undefined ? {} : { fidFloor: floor }),
      results,
      backend: currentBackend(),
      createdAt: new Date().toISOString(),
      modelKind: config.kind,
      ...(config.distill === undefined ? {} : { method: config.distill.method }),
      modelDir: opts.modelDir,
      batchSize,
      reference: { split: 'test', images: reference!.count },
      kidSubsets: opts.kidSubsets ?? 20,
      kidSubsetSize: Math.min(KID_SUBSET_SIZE, opts.samples, reference!.count),
      precisionRecallK: PRECISION_RECALL_K,
      ...(opts.latentSize === undefined ? {} : { latentSize: opts.latentSize }),
      ...(prompts === undefined ? {} : { prompts: 'test-split captions' }),
      ...(group === undefined ? {} : { processes: group.worldSize }),
    },
    'ladder eval (internal)',
  );
  await writeJsonAtomic(opts.outJson, out);
  return group === undefined ? out : valueFromRankZero(group, out);
}

/**
 * What an eval generates: class-balanced labels; for a caption model, the test split's captions in turn (the FID
 * reference is those images), each with the class of the image it captions, which class accuracy then checks.
 */
async function evalConditions(
  model: LoadedDiffusionModel,
  samples: number,
  reference: { readonly limit?: number },
): Promise<{ readonly labels: Int32Array; readonly prompts?: readonly string[] }> {
  const { config } = model;
  if (config.prompts?.source !== 'captions') {
    const classes = Array.from({ length: config.unet.numClasses }, (_, k) => k);
    return { labels: balancedLabels(classes, samples) };
  }
  const test = await loadDataset(
    config.dataset,
    'test',
    reference.limit === undefined ? {} : { limit: reference.limit },
  );
  const { texts } = test;
  if (texts === undefined) {
    throw new Error(
      `${test.name} has lost its captions (no metadata.jsonl): a caption model is scored on them`,
    );
  }
  const rows = Array.from({ length: samples }, (_, i) => i % test.count);
  return { labels: Int32Array.from(rows, (r) => test.labels[r]!), prompts: rows.map((r) => texts[r]!) };
}

// `FID 12.31 [11.80, 12.95] (floor 9.70 at 2000), class accuracy 97.1% [96.3, 97.8]`
function summaryLine(metrics: SampleMetrics, floor: FidFloor | undefined): string {
  const interval = (range: readonly [number, number] | undefined, scale: number, digits: number): string =>
    range === undefined ? '' : ` [${range.map((v) => (scale * v).toFixed(digits)).join(', ')}]`;
  const floorText = floor === undefined ? '' : ` (floor ${floor.fid.toFixed(2)} at ${floor.samples})`;
  return (
    `FID ${metrics.fid.toFixed(2)}${interval(metrics.fidInterval, 1, 2)}${floorText}, ` +
    `class accuracy ${(100 * metrics.classAccuracy).toFixed(1)}%${interval(metrics.classAccuracyInterval, 100, 1)}`
  );
}

/** What `sampleMetrics` measures: every metric of an eval result, the intervals when bootstrapped. */
export type SampleMetrics = Pick<
  EvalResult,
  | 'fid'
  | 'fidInterval'
  | 'fidReplicates'
  | 'kid'
  | 'kidStd'
  | 'precision'
  | 'recall'
  | 'classAccuracy'
  | 'classAccuracyInterval'
>;

/**
 * FID, KID, precision/recall and class accuracy of generated features against a reference set; with `bootstrap`,
 * also the FID replicates and the intervals of FID and class accuracy (same block draws for both).
 */
export function sampleMetrics(
  reference: ReferenceSet,
  fake: ExtractedFeatures,
  askedLabels: Int32Array,
  seed: number,
  kidSubsets: number,
  bootstrap?: BootstrapOptions,
): SampleMetrics {
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
  const point = {
    fid,
    kid: kidResult.kid,
    kidStd: kidResult.kidStd,
    precision,
    recall,
    classAccuracy: classAccuracy(fake.predicted, askedLabels),
  };
  if (bootstrap === undefined) return point;
  const fidBoot = fidBootstrap(fake.features, fake.count, d, reference.stats, bootstrap);
  const accuracyBoot = classAccuracyBootstrap(fake.predicted, askedLabels, bootstrap);
  return {
    ...point,
    fidInterval: [fidBoot.low, fidBoot.high],
    fidReplicates: fidBoot.replicates,
    classAccuracyInterval: [accuracyBoot.low, accuracyBoot.high],
  };
}

/** A class-per-row grid of the first `perClass` samples asked of each class, filled chunk by chunk. */
class GridCells {
  private readonly cells: Float32Array;
  /** The grid cell of each sample (class row, then order within the class), or -1 when it has none. */
  private readonly cellOf: Int32Array;
  private readonly shape: readonly [number, number, number];
  private readonly numClasses: number;

  constructor(
    net: LoadedFeatureNet,
    private readonly perClass: number,
    labels: Int32Array,
  ) {
    this.shape = net.config.featureNet.imageShape;
    this.numClasses = net.config.featureNet.numClasses;
    const [h, w, c] = this.shape;
    this.cells = new Float32Array(this.numClasses * perClass * h * w * c).fill(-1);
    const seen = new Int32Array(this.numClasses);
    this.cellOf = labels.map((label) => {
      const order = seen[label]!;
      seen[label] = order + 1;
      return order < perClass ? label * perClass + order : -1;
    });
  }

  /** Takes the images of `pixels` (samples `start` .. `start + count`) that have a cell. */
  add(pixels: Float32Array, start: number, count: number): void {
    const size = this.shape[0] * this.shape[1] * this.shape[2];
    for (let i = 0; i < count; i++) {
      const cell = this.cellOf[start + i]!;
      if (cell >= 0) this.cells.set(pixels.subarray(i * size, (i + 1) * size), cell * size);
    }
  }

  /** Every rank's cells on every rank: each cell from the rank that made its sample. */
  gather(group: Collectives, owner: (sample: number) => number): void {
    if (this.cells.length === 0) return;
    const sampleOf = new Int32Array(this.cells.length / (this.shape[0] * this.shape[1] * this.shape[2]));
    this.cellOf.forEach((cell, sample) => {
      if (cell >= 0) sampleOf[cell] = sample;
    });
    const size = this.shape[0] * this.shape[1] * this.shape[2];
    this.cells.set(gatherRows(group, this.cells, size, (cell) => owner(sampleOf[cell]!)));
  }

  /** The grid as PNG bytes; undefined when no grid was asked for (0 per class). */
  png(): Uint8Array | undefined {
    if (this.perClass === 0) return undefined;
    const [h, w, c] = this.shape;
    return imageGridPng(this.cells, this.numClasses * this.perClass, h, w, c, {
      rows: this.numClasses,
      cols: this.perClass,
      scale: 2,
    });
  }
}
