// Reference features of a real data split through a feature net, cached on disk under
// `.cache/fid-ref/<dataset>-<split>[-first<N>]-<featureNetHash>.safetensors` (Gaussian stats plus the raw
// features, which KID and precision/recall need).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../core/fs.js';
import { loadDataset } from '../data/dataset.js';
import type { DatasetName, Split } from '../data/image-dataset.js';
import { decodeSafetensors, encodeSafetensors, type TensorRecord } from '../io/safetensors.js';
import type { LoadedFeatureNet } from '../models/feature-net.js';
import { extractFeatures } from './features.js';
import {
  type FeatureStats,
  featureStats,
  featureStatsFromTensors,
  featureStatsToTensors,
} from './metrics.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Bump when the file layout or what is stored changes, so stale caches are rebuilt.
const CACHE_FORMAT = 'ladder-fid-ref-1';

/** Real images of one split seen through a feature net. */
export interface ReferenceSet {
  readonly dataset: DatasetName;
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

/** The cache file for (net's dataset, split, limit, net weights). */
export function referenceCachePath(net: LoadedFeatureNet, split: Split, opts: ReferenceOptions = {}): string {
  const part = opts.limit === undefined ? '' : `-first${opts.limit}`;
  const root = opts.cacheDir ?? join(REPO_ROOT, '.cache');
  return join(root, 'fid-ref', `${net.config.dataset}-${split}${part}-${net.hash}.safetensors`);
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
    stats: featureStats(extracted.features, extracted.count, extracted.dim),
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
  const metadata = { format: CACHE_FORMAT, dataset: ref.dataset, split: ref.split, featureNet: net.name };
  await writeFileAtomic(ref.path, encodeSafetensors(records, metadata));
}

// An unreadable or mismatched cache is rebuilt (with a note), never trusted.
async function readCache(
  path: string,
  net: LoadedFeatureNet,
  dataset: DatasetName,
  split: Split,
): Promise<ReferenceSet | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const { tensors, metadata } = decodeSafetensors(await readFile(path));
    const { features, labels } = tensors;
    if (
      metadata.format !== CACHE_FORMAT ||
      metadata.featureNet !== net.name ||
      metadata.dataset !== dataset ||
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
