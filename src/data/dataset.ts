// Image datasets by name: MNIST, Fashion-MNIST and Twemoji, as NHWC float arrays in [-1, 1].
import { loadEmoji } from './emoji.js';
import { loadFashionMnist, loadMnist } from './mnist.js';

export type DatasetName = 'mnist' | 'fashion-mnist' | 'emoji';
export type Split = 'train' | 'test';

export const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist', 'emoji'];

/** A labelled image set held in memory. */
export interface ImageDataset {
  readonly name: DatasetName;
  readonly split: Split;
  /** NHWC pixel values scaled to [-1, 1]; length count * height * width * channels. */
  readonly images: Float32Array;
  /** Class index per image, in 0..numClasses-1. */
  readonly labels: Int32Array;
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  /** Attribution the data's licence asks for, when it asks for one. */
  readonly credit?: string;
}

export interface LoadDatasetOptions {
  /** Keep only the first `limit` images of the split (for quick tests and smoke runs). */
  readonly limit?: number;
  /** Folder for decoded-image caches (emoji); defaults to `.cache/` in the repository root. */
  readonly cacheDir?: string;
}

export const isDatasetName = (name: string): name is DatasetName =>
  (DATASET_NAMES as readonly string[]).includes(name);

/** Loads a dataset split by name; the error for a missing dataset says what to install. */
export async function loadDataset(
  name: string,
  split: Split,
  opts: LoadDatasetOptions = {},
): Promise<ImageDataset> {
  if (!isDatasetName(name))
    throw new Error(`unknown dataset "${name}": choose one of ${DATASET_NAMES.join(', ')}`);
  if (split !== 'train' && split !== 'test')
    throw new Error(`unknown split "${String(split)}": use train or test`);
  const { limit } = opts;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new Error(`dataset limit must be a positive integer, got ${limit}`);
  }
  switch (name) {
    case 'mnist':
      return loadMnist(split, limit);
    case 'fashion-mnist':
      return loadFashionMnist(split, limit);
    case 'emoji':
      return loadEmoji(split, opts);
  }
}
