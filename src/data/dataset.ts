// Image datasets: built-in ones by name (MNIST, Fashion-MNIST, Twemoji, Noto emoji) and folders of the user's
// images, as NHWC float arrays in [-1, 1].
import { loadEmoji } from './emoji.js';
import { loadFolderBuckets, loadFolderDataset } from './folder.js';
import {
  DATASET_NAMES,
  type DatasetName,
  type DatasetSpec,
  type ImageDataset,
  type LoadDatasetOptions,
  type Split,
} from './image-dataset.js';
import { loadFashionMnist, loadMnist } from './mnist.js';

export const isDatasetName = (name: string): name is DatasetName =>
  (DATASET_NAMES as readonly string[]).includes(name);

/** Loads a dataset split (a built-in name or a folder spec); the error for a missing dataset says what to install. */
export async function loadDataset(
  spec: DatasetSpec | string,
  split: Split,
  opts: LoadDatasetOptions = {},
): Promise<ImageDataset> {
  if (typeof spec === 'string' && !isDatasetName(spec))
    throw new Error(
      `unknown dataset "${spec}": choose one of ${DATASET_NAMES.join(', ')}, or a folder of images`,
    );
  if (split !== 'train' && split !== 'test')
    throw new Error(`unknown split "${String(split)}": use train or test`);
  const { limit } = opts;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new Error(`dataset limit must be a positive integer, got ${limit}`);
  }
  if (typeof spec !== 'string') return loadFolderDataset(spec, split, opts);
  switch (spec) {
    case 'mnist':
      return loadMnist(split, limit);
    case 'fashion-mnist':
      return loadFashionMnist(split, limit);
    case 'emoji':
    case 'emoji-noto':
      return loadEmoji(spec, split, opts);
  }
}

/**
 * A dataset split as training sets of one image size each: a folder's aspect-ratio buckets when `sizes` are given
 * ([height, width] each; see `loadFolderBuckets`), otherwise the one set of `loadDataset`.
 */
export async function loadDatasetBuckets(
  spec: DatasetSpec,
  sizes: readonly (readonly [number, number])[] | undefined,
  split: Split,
  opts: LoadDatasetOptions = {},
): Promise<ImageDataset[]> {
  if (sizes === undefined) return [await loadDataset(spec, split, opts)];
  if (typeof spec === 'string')
    throw new Error(`${spec} has one image size: aspect-ratio buckets are for folders`);
  return loadFolderBuckets(spec, sizes, split, opts);
}
