// Image datasets by name: MNIST, Fashion-MNIST and Twemoji, as NHWC float arrays in [-1, 1].
import { loadEmoji } from './emoji.js';
import {
  DATASET_NAMES,
  type DatasetName,
  type ImageDataset,
  type LoadDatasetOptions,
  type Split,
} from './image-dataset.js';
import { loadFashionMnist, loadMnist } from './mnist.js';

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
