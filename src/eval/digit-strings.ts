// `ladder eval` of a digit-strings model: for each string length (1 to 6 by default; 5 and 6 are wider than any
// training image, the resolution-independence test), sample strings of balanced random digits, cut every image
// into its 28-px cells and score each cell with the MNIST feature net: per-digit accuracy (the cell's predicted
// class is the asked digit), whole-string accuracy, and the cells' FID against MNIST test digits, with the
// finite-sample floor at the same cell count.

import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ensureWritableDir, writeFileAtomic, writeJsonAtomic } from '../core/fs.js';
import { median } from '../core/stats.js';
import { balancedDigitStrings, DIGIT_CELL } from '../data/prompts.js';
import { currentBackend } from '../engine/backend.js';
import { imageGridPng } from '../image/png.js';
import { type LoadedFeatureNet, loadFeatureNet } from '../models/feature-net.js';
import { CONFIG_FILE, type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import {
  checkChunkFits,
  DEFAULT_BATCH,
  defaultSampler,
  type GenerateSettings,
  imageChunks,
  nfe,
  promptLatentSize,
} from '../models/pipeline.js';
import { disposeParams } from '../nn/params.js';
import type { SamplerKind } from '../samplers/sample.js';
import type { FeatureNetRole } from './eval-json.js';
import {
  BOOTSTRAP_BLOCKS,
  checkEvalOutputs,
  DEFAULT_BOOTSTRAP_REPLICATES,
  featuresDirFor,
  gridPath,
  PRECISION_RECALL_K,
  type SampleMetrics,
  sampleMetrics,
} from './evaluate.js';
import { type ExtractedFeatures, extractFeatures } from './features.js';
import { type FidFloor, loadFidFloor, loadReference } from './reference.js';

/** Lengths `ladder eval` measures by default: the trained 1 to 4, and 5 and 6, never seen in training. */
export const DIGIT_STRING_EVAL_LENGTHS: readonly number[] = [1, 2, 3, 4, 5, 6];

export interface DigitStringEvalOptions {
  /** A prompt-conditional digit-strings model folder (teacher or student). */
  readonly modelDir: string;
  readonly featureNetRole?: FeatureNetRole;
  /** MNIST feature net folder (default: the role's shipped one). */
  readonly featuresDir?: string;
  readonly steps?: readonly number[];
  readonly cfg?: number;
  readonly sampler?: SamplerKind;
  /** Strings per length (each of `length` cells). */
  readonly samples: number;
  readonly seed: number;
  readonly lengths?: readonly number[];
  /** Eval JSON to write; a grid per step count goes next to it. */
  readonly outJson: string;
  readonly name?: string;
  /** Digit cells generated at a time (default DEFAULT_BATCH): a batch of strings of length n holds batchSize / n. */
  readonly batchSize?: number;
  readonly kidSubsets?: number;
  readonly bootstrapReplicates?: number;
  /** Strings of each length in the grids (default 6; 0: no grids). */
  readonly gridStrings?: number;
  readonly referenceLimit?: number;
  readonly cacheDir?: string;
  /** Replace an existing eval JSON and its grids (default true, as evaluateModel). */
  readonly overwrite?: boolean;
}

/** One string length at one step count. */
export interface DigitStringLengthResult extends SampleMetrics {
  readonly length: number;
  readonly strings: number;
  /** Cells whose predicted class is the asked digit (`classAccuracy` of the cells, under its own name). */
  readonly digitAccuracy: number;
  readonly digitAccuracyInterval?: readonly [number, number];
  /** Strings whose every cell is read as asked. */
  readonly stringAccuracy: number;
  /** FID of the cells against MNIST test digits (`fid` of the cells, under its own name). */
  readonly cellFid: number;
  /** FID of as many real training digits, class by class as asked: the best a generator can score here. */
  readonly cellFidFloor?: number;
  readonly msPerImage: number;
}

export interface DigitStringStepsResult {
  readonly steps: number;
  readonly cfg: number;
  readonly nfe: number;
  readonly sampler: SamplerKind;
  readonly lengths: readonly DigitStringLengthResult[];
  /** The sample grid (a row per length), relative to the eval JSON. */
  readonly grid?: string;
}

export interface DigitStringEvalJson {
  readonly format: 'ladder-digit-strings-eval';
  readonly version: 1;
  readonly model: string;
  readonly modelDir: string;
  readonly modelKind: string;
  readonly method?: string;
  readonly data: 'digit-strings';
  readonly trainedLengths: readonly number[];
  readonly samples: number;
  readonly seed: number;
  readonly featureNet: string;
  readonly featureNetRole: FeatureNetRole;
  readonly featureNetDir: string;
  readonly reference: { readonly split: 'test'; readonly images: number };
  readonly bootstrap?: { readonly replicates: number; readonly withinDigits: true };
  readonly results: readonly DigitStringStepsResult[];
  readonly backend: string;
  readonly batchSize: number;
  readonly createdAt: string;
}

/**
 * Cuts `count` NHWC images of `length` cells side by side into [count * length] cells (string by string, left to
 * right).
 */
export function cutCells(images: Float32Array, count: number, length: number): Float32Array {
  const cell = DIGIT_CELL;
  const width = cell * length;
  if (images.length !== count * cell * width) {
    throw new Error(`cutCells: ${images.length} values are not ${count} images of ${cell}x${width}`);
  }
  const cells = new Float32Array(images.length);
  for (let n = 0; n < count; n++) {
    for (let j = 0; j < length; j++) {
      for (let row = 0; row < cell; row++) {
        const from = n * cell * width + row * width + j * cell;
        cells.set(images.subarray(from, from + cell), ((n * length + j) * cell + row) * cell);
      }
    }
  }
  return cells;
}

/** Runs the evaluation, writes its JSON (and grids) and returns what it wrote. */
export async function evaluateDigitStrings(opts: DigitStringEvalOptions): Promise<DigitStringEvalJson> {
  if (!Number.isInteger(opts.samples) || opts.samples <= PRECISION_RECALL_K) {
    throw new Error(
      `--samples must be an integer above ${PRECISION_RECALL_K} (strings per length), got ${opts.samples}`,
    );
  }
  const lengths = opts.lengths ?? DIGIT_STRING_EVAL_LENGTHS;
  if (lengths.length === 0 || !lengths.every((n) => Number.isInteger(n) && n >= 1)) {
    throw new Error(`--lengths must be integers >= 1, got ${lengths.join(',')}`);
  }
  if (!existsSync(join(opts.modelDir, CONFIG_FILE))) {
    throw new Error(`model folder ${opts.modelDir} has no ${CONFIG_FILE}: pass a digit-strings model`);
  }
  await ensureWritableDir(dirname(opts.outJson));
  const model = await loadDiffusionModel(opts.modelDir);
  let net: LoadedFeatureNet | undefined;
  try {
    const { prompts } = model.config;
    if (prompts?.source !== 'digit-strings') {
      throw new Error(
        `model ${opts.modelDir} is not a digit-strings model (it takes ${prompts ? `${prompts.source} prompts` : 'classes'}): ` +
          'evaluate it without --data digit-strings',
      );
    }
    const stepsList = opts.steps ?? model.config.sampling.steps;
    checkEvalOutputs(opts.outJson, stepsList, (opts.gridStrings ?? 6) > 0, opts.overwrite);
    const role = opts.featureNetRole ?? 'selection';
    net = await loadFeatureNet(opts.featuresDir ?? featuresDirFor('mnist', role));
    const [h, w, c] = net.config.featureNet.imageShape;
    if (h !== DIGIT_CELL || w !== DIGIT_CELL || c !== 1 || net.config.featureNet.numClasses !== 10) {
      throw new Error(
        `feature net ${net.dir} reads ${h}x${w}x${c} images of ${net.config.featureNet.numClasses} classes: ` +
          'digit strings need an MNIST feature net (28x28 grey, 10 classes)',
      );
    }
    return await run(model, net, opts, lengths, stepsList, role, prompts.lengths);
  } finally {
    disposeParams(model.params);
    disposeParams(model.autoencoder.params);
    if (net !== undefined) disposeParams(net.params);
  }
}

async function run(
  model: LoadedDiffusionModel,
  net: LoadedFeatureNet,
  opts: DigitStringEvalOptions,
  lengths: readonly number[],
  stepsList: readonly number[],
  role: FeatureNetRole,
  trainedLengths: readonly number[],
): Promise<DigitStringEvalJson> {
  const { config } = model;
  const batchSize = opts.batchSize ?? DEFAULT_BATCH;
  // Memory follows the cells, not the strings: longer strings go fewer at a time.
  const stringsPerBatch = (length: number): number => Math.max(1, Math.floor(batchSize / length));
  const cfg = opts.cfg ?? config.sampling.cfg;
  const sampler = opts.sampler ?? defaultSampler(config);
  const replicates = opts.bootstrapReplicates ?? DEFAULT_BOOTSTRAP_REPLICATES;
  const gridStrings = Math.min(opts.gridStrings ?? 6, opts.samples);
  for (const length of lengths) {
    checkChunkFits(model, {
      latentSize: promptLatentSize(model, '0'.repeat(length)),
      batchSize: Math.min(stringsPerBatch(length), opts.samples),
      cfg,
      decode: true,
    });
  }
  const referenceOptions = {
    ...(opts.referenceLimit === undefined ? {} : { limit: opts.referenceLimit }),
    ...(opts.cacheDir === undefined ? {} : { cacheDir: opts.cacheDir }),
  };
  const reference = await loadReference(net, 'test', referenceOptions);
  const dim = net.config.featureNet.featureDim;

  const results: DigitStringStepsResult[] = [];
  const grids: [string, Uint8Array][] = [];
  for (const steps of stepsList) {
    const perLength: DigitStringLengthResult[] = [];
    const grid = new StringGrid(lengths, gridStrings);
    for (const [row, length] of lengths.entries()) {
      const prompts = balancedDigitStrings(length, opts.samples, opts.seed);
      const asked = Int32Array.from(prompts.join(''), Number);
      const cells: ExtractedFeatures = {
        features: new Float32Array(asked.length * dim),
        predicted: new Int32Array(asked.length),
        count: asked.length,
        dim,
      };
      const batchMs: number[] = [];
      let began = performance.now();
      const settings = { steps, cfg, sampler, seed: opts.seed, batchSize: stringsPerBatch(length) };
      for await (const { start, pixels, count } of stringChunks(model, prompts, settings)) {
        batchMs.push((performance.now() - began) / count);
        const part = await extractFeatures(net, cutCells(pixels, count, length), count * length);
        cells.features.set(part.features, start * length * dim);
        cells.predicted.set(part.predicted, start * length);
        grid.add(row, length, pixels, start, count);
        began = performance.now();
      }
      const floor: FidFloor | undefined = await loadFidFloor(net, reference, asked, referenceOptions);
      const metrics = sampleMetrics(
        reference,
        cells,
        asked,
        opts.seed,
        opts.kidSubsets ?? 20,
        replicates === 0
          ? undefined
          : { replicates, blocks: BOOTSTRAP_BLOCKS, seed: opts.seed, strata: asked },
      );
      let whole = 0;
      for (let n = 0; n < opts.samples; n++) {
        let right = true;
        for (let j = 0; j < length; j++) right &&= cells.predicted[n * length + j] === asked[n * length + j];
        if (right) whole++;
      }
      const full = batchMs.slice(0, Math.floor(opts.samples / stringsPerBatch(length)));
      const result: DigitStringLengthResult = {
        length,
        strings: opts.samples,
        ...metrics,
        digitAccuracy: metrics.classAccuracy,
        ...(metrics.classAccuracyInterval ? { digitAccuracyInterval: metrics.classAccuracyInterval } : {}),
        stringAccuracy: whole / opts.samples,
        cellFid: metrics.fid,
        ...(floor === undefined ? {} : { cellFidFloor: floor.fid }),
        msPerImage: median(full.length > 0 ? full : batchMs),
      };
      perLength.push(result);
      process.stderr.write(`${steps} steps, length ${length}: ${summaryLine(result, trainedLengths)}\n`);
    }
    const png = gridStrings > 0 ? grid.png() : undefined;
    if (png !== undefined) grids.push([gridPath(opts.outJson, steps), png]);
    results.push({
      steps,
      cfg,
      nfe: nfe(steps, cfg),
      sampler,
      lengths: perLength,
      ...(png === undefined ? {} : { grid: relative(dirname(opts.outJson), gridPath(opts.outJson, steps)) }),
    });
  }
  for (const [path, png] of grids) await writeFileAtomic(path, png);
  const out: DigitStringEvalJson = {
    format: 'ladder-digit-strings-eval',
    version: 1,
    model: opts.name ?? opts.modelDir,
    modelDir: opts.modelDir,
    modelKind: config.kind,
    ...(config.distill === undefined ? {} : { method: config.distill.method }),
    data: 'digit-strings',
    trainedLengths,
    samples: opts.samples,
    seed: opts.seed,
    featureNet: net.name,
    featureNetRole: role,
    featureNetDir: net.dir,
    reference: { split: 'test', images: reference.count },
    ...(replicates === 0 ? {} : { bootstrap: { replicates, withinDigits: true as const } }),
    results,
    backend: currentBackend(),
    batchSize,
    createdAt: new Date().toISOString(),
  };
  await writeJsonAtomic(opts.outJson, out);
  return out;
}

/**
 * A grid of `perLength` strings of each length (a row per length, each string on a grey canvas as wide as the
 * longest), generated as the eval generates them; PNG bytes.
 */
export async function digitStringsGridPng(
  model: LoadedDiffusionModel,
  opts: {
    readonly steps: number;
    readonly cfg: number;
    readonly sampler: SamplerKind;
    readonly seed: number;
    readonly lengths: readonly number[];
    readonly perLength: number;
  },
): Promise<Uint8Array> {
  const grid = new StringGrid(opts.lengths, opts.perLength);
  for (const [row, length] of opts.lengths.entries()) {
    const prompts = balancedDigitStrings(length, opts.perLength, opts.seed);
    const { steps, cfg, sampler, seed } = opts;
    for await (const { start, pixels, count } of stringChunks(model, prompts, { steps, cfg, sampler, seed }))
      grid.add(row, length, pixels, start, count);
  }
  return grid.png();
}

/** Reads a digit-strings eval JSON (`ladder eval` of a digit-strings model); fails on anything else. */
export function parseDigitStringEvalJson(value: unknown, source: string): DigitStringEvalJson {
  const run = value as Partial<DigitStringEvalJson> | undefined;
  const fail = (why: string): never => {
    throw new Error(`${source} is not a digit-strings eval JSON (${why}): make one with \`ladder eval\``);
  };
  if (run?.format !== 'ladder-digit-strings-eval' || run.version !== 1) fail('format');
  if (!Array.isArray(run!.results)) fail('no results');
  for (const r of run!.results!) {
    if (!Number.isInteger(r.steps) || !Array.isArray(r.lengths)) fail('a result without steps or lengths');
    for (const l of r.lengths) {
      if (![l.length, l.digitAccuracy, l.stringAccuracy, l.cellFid].every(Number.isFinite))
        fail(`length ${l.length} lacks its numbers`);
    }
  }
  return run as DigitStringEvalJson;
}

/**
 * Images of `prompts` (one length), generated chunk by chunk as `imageChunks` makes them (NaN checked) and read
 * back: `count` strings from `start` on, NHWC pixels.
 */
async function* stringChunks(
  model: LoadedDiffusionModel,
  prompts: readonly string[],
  settings: Pick<GenerateSettings, 'steps' | 'cfg' | 'sampler' | 'seed' | 'batchSize'>,
): AsyncGenerator<{ start: number; pixels: Float32Array; count: number }> {
  const [h, w] = promptLatentSize(model, prompts[0]!);
  for (const { start, tensor } of imageChunks(model, {
    ...settings,
    prompts,
    modelName: model.dir,
    checkFinite: true,
    latentSize: [h, w],
  })) {
    let pixels: Float32Array;
    try {
      pixels = (await tensor.data()) as Float32Array;
    } finally {
      tensor.dispose();
    }
    yield { start, pixels, count: tensor.shape[0] };
  }
}

/** A grid with a row per string length: the first strings of each, left-aligned on grey canvases as wide as the longest. */
class StringGrid {
  private readonly longest: number;
  private readonly values: Float32Array;

  constructor(
    private readonly lengths: readonly number[],
    private readonly perLength: number,
  ) {
    this.longest = Math.max(...lengths);
    this.values = new Float32Array(lengths.length * perLength * DIGIT_CELL * DIGIT_CELL * this.longest);
  }

  /** Takes strings `start` .. `start + count` of row `row` (strings of `length` cells) that have a slot. */
  add(row: number, length: number, pixels: Float32Array, start: number, count: number): void {
    const width = DIGIT_CELL * length;
    const canvas = DIGIT_CELL * this.longest;
    for (let i = start; i < Math.min(start + count, this.perLength); i++) {
      const base = (row * this.perLength + i) * DIGIT_CELL * canvas;
      for (let y = 0; y < DIGIT_CELL; y++) {
        const from = ((i - start) * DIGIT_CELL + y) * width;
        this.values.set(pixels.subarray(from, from + width), base + y * canvas);
      }
    }
  }

  png(): Uint8Array {
    return imageGridPng(
      this.values,
      this.lengths.length * this.perLength,
      DIGIT_CELL,
      DIGIT_CELL * this.longest,
      1,
      { rows: this.lengths.length, cols: this.perLength, scale: 2 },
    );
  }
}

// `digits 97.3% [96.1, 98.2], strings 90.0%, cell FID 12.31 (floor 9.70), 4.2 ms/image (unseen length)`
function summaryLine(r: DigitStringLengthResult, trainedLengths: readonly number[]): string {
  const interval = r.digitAccuracyInterval
    ? ` [${r.digitAccuracyInterval.map((v) => (100 * v).toFixed(1)).join(', ')}]`
    : '';
  const floor = r.cellFidFloor === undefined ? '' : ` (floor ${r.cellFidFloor.toFixed(2)})`;
  const unseen = trainedLengths.includes(r.length) ? '' : ' (length not trained)';
  return (
    `digits ${(100 * r.digitAccuracy).toFixed(1)}%${interval}, strings ${(100 * r.stringAccuracy).toFixed(1)}%, ` +
    `cell FID ${r.cellFid.toFixed(2)}${floor}, ${r.msPerImage.toFixed(2)} ms/image${unseen}`
  );
}
