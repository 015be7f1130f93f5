// Reference features of a real data split through a feature net, cached on disk under
// `.cache/fid-ref/<dataset>-<split>[-first<N>]-<featureNetHash>.safetensors` (Gaussian stats plus the raw
// features, which KID and precision/recall need), and the finite-sample FID floor against such a reference,
// cached next to it as `<dataset>-floor-train<samples>-vs-<split>[-first<N>]-<featureNetHash>.json`.

import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic, writeJsonAtomic } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import { loadDataset } from '../data/dataset.js';
import { type DatasetSpec, datasetId, datasetLabel, type Split } from '../data/image-dataset.js';
import { copyRows } from '../data/loader.js';
import { decodeSafetensors, encodeSafetensors, type TensorRecord } from '../io/safetensors.js';
import type { LoadedFeatureNet } from '../models/feature-net.js';
import { extractFeatures } from './features.js';
import {
  type FeatureStats,
  featureStats,
  featureStatsFromTensors,
  featureStatsToTensors,
  frechetDistanceFromStats,
} from './metrics.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Bump when the file layout or what is stored changes, so stale caches are rebuilt.
const CACHE_FORMAT = 'ladder-fid-ref-1';
const FLOOR_FORMAT = 'ladder-fid-floor-1';
// Fixed, not the eval seed: every eval of one size and reference meets the same floor.
const FLOOR_ROWS_SEED = 0;

/** Real images of one split seen through a feature net. */
export interface ReferenceSet {
  readonly dataset: DatasetSpec;
  readonly split: Split;
  /** Mean and covariance of `features`. */
  readonly stats: FeatureStats;
  /** Row-major [count, dim]. */
  readonly features: Float32Array;
  /** True class of each row. */
  readonly labels: Int32Array;
  readonly count: number;
  readonly dim: number;
  /** The cache file it was read from or written to. */
  readonly path: string;
}

export interface ReferenceOptions {
  /** Parent of the `fid-ref/` cache folder (default: `.cache/` in the repository root). */
  readonly cacheDir?: string;
  /** Use only the first N images of the split (quick runs and tests); part of the cache key. */
  readonly limit?: number;
}

const cacheFolder = (opts: ReferenceOptions): string =>
  join(opts.cacheDir ?? join(REPO_ROOT, '.cache'), 'fid-ref');
const limitPart = (opts: ReferenceOptions): string => (opts.limit === undefined ? '' : `-first${opts.limit}`);

/** The cache file for (net's dataset, split, limit, net weights). */
export function referenceCachePath(net: LoadedFeatureNet, split: Split, opts: ReferenceOptions = {}): string {
  return join(
    cacheFolder(opts),
    `${datasetId(net.config.dataset)}-${split}${limitPart(opts)}-${net.hash}.safetensors`,
  );
}

/**
 * The reference set of `split` of the net's own dataset: read from the cache when it is there and matches,
 * otherwise computed (every image of the split, or the first `limit`) and cached.
 */
export async function loadReference(
  net: LoadedFeatureNet,
  split: Split,
  opts: ReferenceOptions = {},
): Promise<ReferenceSet> {
  const path = referenceCachePath(net, split, opts);
  const dataset = net.config.dataset;
  const cached = await readCache(path, net, dataset, split);
  if (cached !== undefined) return cached;
  const data = await loadDataset(dataset, split, opts.limit === undefined ? {} : { limit: opts.limit });
  const extracted = await extractFeatures(net, data.images, data.count);
  const reference: ReferenceSet = {
    dataset,
    split,
    // As the cache stores them (float32 pairs), so this run scores exactly as the runs that read the cache.
    stats: featureStatsFromTensors(
      featureStatsToTensors(featureStats(extracted.features, extracted.count, extracted.dim)),
      path,
    ),
    features: extracted.features,
    labels: data.labels,
    count: extracted.count,
    dim: extracted.dim,
    path,
  };
  await writeCache(reference, net);
  return reference;
}

async function writeCache(ref: ReferenceSet, net: LoadedFeatureNet): Promise<void> {
  const records: Record<string, TensorRecord> = {
    ...featureStatsToTensors(ref.stats),
    features: { dtype: 'F32', shape: [ref.count, ref.dim], data: ref.features },
    labels: { dtype: 'I32', shape: [ref.count], data: ref.labels },
  };
  const metadata = {
    format: CACHE_FORMAT,
    dataset: datasetId(ref.dataset),
    split: ref.split,
    featureNet: net.name,
  };
  await writeFileAtomic(ref.path, encodeSafetensors(records, metadata));
}

// An unreadable or mismatched cache is rebuilt (with a note), never trusted.
async function readCache(
  path: string,
  net: LoadedFeatureNet,
  dataset: DatasetSpec,
  split: Split,
): Promise<ReferenceSet | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const { tensors, metadata } = decodeSafetensors(await readFile(path));
    const { features, labels } = tensors;
    if (
      metadata.format !== CACHE_FORMAT ||
      metadata.featureNet !== net.name ||
      metadata.dataset !== datasetId(dataset) ||
      metadata.split !== split
    ) {
      throw new Error('it was made for another feature net, dataset or format');
    }
    if (features === undefined || labels === undefined || features.shape.length !== 2) {
      throw new Error('features or labels are missing');
    }
    const [count, dim] = features.shape as [number, number];
    if (dim !== net.config.featureNet.featureDim || labels.shape[0] !== count) {
      throw new Error(`features are [${features.shape}] with ${labels.shape[0]} labels`);
    }
    const stats = featureStatsFromTensors(tensors, path);
    if (stats.n !== count || stats.mu.length !== dim) throw new Error('stats do not match the features');
    return {
      dataset,
      split,
      stats,
      features: Float32Array.from(features.data),
      labels: Int32Array.from(labels.data),
      count,
      dim,
      path,
    };
  } catch (err) {
    process.stderr.write(`note: rebuilding reference cache ${path} (${(err as Error).message})\n`);
    return undefined;
  }
}

// ---
// The finite-sample floor: even real images score above 0 against the reference at a finite sample size.

/** FID of real training images against a reference, at a generated sample count. */
export interface FidFloor {
  readonly fid: number;
  /** Training images scored: the eval's sample count. */
  readonly samples: number;
  /** Whether they hold each class as often as the eval's labels (else: a random subset, a class ran short). */
  readonly classBalanced: boolean;
}

/** The floor's cache file for (net's dataset, samples, reference split and limit, net weights). */
export function fidFloorCachePath(
  net: LoadedFeatureNet,
  samples: number,
  split: Split,
  opts: ReferenceOptions = {},
): string {
  const name = `${datasetId(net.config.dataset)}-floor-train${samples}-vs-${split}${limitPart(opts)}-${net.hash}.json`;
  return join(cacheFolder(opts), name);
}

/**
 * What a perfect generator would score at this sample size: the FID of `labels.length` training images (as many of
 * each class as `labels` holds, rows drawn with a fixed seed) against `reference` (loaded with the same `opts`),
 * with the same net. Read from the cache, or computed and cached. Undefined, with a note, when the training split
 * holds fewer images than that.
 */
export async function loadFidFloor(
  net: LoadedFeatureNet,
  reference: ReferenceSet,
  labels: Int32Array,
  opts: ReferenceOptions = {},
): Promise<FidFloor | undefined> {
  const samples = labels.length;
  const path = fidFloorCachePath(net, samples, reference.split, opts);
  const cached = await readFloorCache(path, net, samples, reference.count);
  if (cached !== undefined) return cached;
  const train = await loadDataset(net.config.dataset, 'train');
  if (train.count < samples) {
    process.stderr.write(
      `note: no FID floor: the ${datasetLabel(net.config.dataset)} training split has ${train.count} images, fewer than the ${samples} samples\n`,
    );
    return undefined;
  }
  const { rows, classBalanced } = floorRows(train.labels, labels);
  const images = copyRows(train.images, train.height * train.width * train.channels, rows);
  const extracted = await extractFeatures(net, images, samples);
  const fid = frechetDistanceFromStats(
    featureStats(extracted.features, samples, extracted.dim),
    reference.stats,
  );
  const floor: FidFloor = { fid, samples, classBalanced };
  await writeJsonAtomic(path, {
    format: FLOOR_FORMAT,
    featureNet: net.name,
    referenceImages: reference.count,
    ...floor,
  });
  return floor;
}

// Training rows in a seeded random order, each taken while its class still has room in `labels`' class counts;
// when a class runs short, the first rows of that order instead.
function floorRows(
  trainLabels: Int32Array,
  labels: Int32Array,
): { rows: Int32Array; classBalanced: boolean } {
  const order = new Rng(FLOOR_ROWS_SEED).permutation(trainLabels.length);
  const room = new Map<number, number>();
  for (const label of labels) room.set(label, (room.get(label) ?? 0) + 1);
  const rows = new Int32Array(labels.length);
  let taken = 0;
  for (const row of order) {
    const left = room.get(trainLabels[row]!) ?? 0;
    if (left === 0) continue;
    room.set(trainLabels[row]!, left - 1);
    rows[taken++] = row;
    if (taken === labels.length) return { rows, classBalanced: true };
  }
  return { rows: order.slice(0, labels.length), classBalanced: false };
}

// An unreadable or mismatched floor file is recomputed (with a note), never trusted.
async function readFloorCache(
  path: string,
  net: LoadedFeatureNet,
  samples: number,
  referenceImages: number,
): Promise<FidFloor | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const record = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    if (
      record.format !== FLOOR_FORMAT ||
      record.featureNet !== net.name ||
      record.samples !== samples ||
      record.referenceImages !== referenceImages
    ) {
      throw new Error('it was made for another feature net, sample count, reference or format');
    }
    const { fid, classBalanced } = record;
    if (typeof fid !== 'number' || !Number.isFinite(fid) || typeof classBalanced !== 'boolean') {
      throw new Error('fid or classBalanced is missing');
    }
    return { fid, samples, classBalanced };
  } catch (err) {
    process.stderr.write(`note: recomputing FID floor ${path} (${(err as Error).message})\n`);
    return undefined;
  }
}
