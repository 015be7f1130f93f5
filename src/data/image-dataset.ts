// What every dataset loader returns: a labelled image set in memory, and the names that select one.
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
