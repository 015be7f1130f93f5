// What every dataset loader returns: a labelled image set in memory, and the specs that select one.
export type DatasetName = 'mnist' | 'fashion-mnist' | 'emoji' | 'emoji-noto';
export type Split = 'train' | 'test';

export const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist', 'emoji', 'emoji-noto'];

/** How `resize` fits an image of another aspect ratio: crop the centre, or pad with the background. */
export type FitMode = 'cover' | 'contain';
export const FIT_MODES: readonly FitMode[] = ['cover', 'contain'];

/** A folder of images (PNG, JPEG, WebP), one subfolder per class or none, and how it is decoded. */
export interface FolderDatasetSpec {
  /** Absolute path of the folder. */
  readonly folder: string;
  /** [height, width] every image is resized to. */
  readonly size: readonly [number, number];
  readonly fit: FitMode;
  /** RGB (0..255) that transparency is flattened onto and that `contain` pads with. */
  readonly background: readonly [number, number, number];
  /** 1 (grey) or 3 (RGB); undefined when loading means "as the images are". */
  readonly channels?: 1 | 3;
}

/** A dataset: a built-in one by name, or a folder of images with its decoding options. */
export type DatasetSpec = DatasetName | FolderDatasetSpec;

/** A dataset as loaded and as model configs record it: a folder's channel count is settled. */
export type ResolvedDatasetSpec = DatasetName | Required<FolderDatasetSpec>;

/** A short, file-name-safe label: the built-in name, or the folder's base name with a hash of the whole spec. */
export function datasetId(spec: DatasetSpec): string {
  if (typeof spec === 'string') return spec;
  const base = spec.folder.split(/[\\/]/).filter(Boolean).pop() ?? 'folder';
  const safe = base.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 40) || 'folder';
  return `${safe}-${fnv1a(JSON.stringify([spec.folder, spec.size, spec.fit, spec.background, spec.channels]))}`;
}

/** How a dataset is named to a user: the built-in name or the folder's path. */
export const datasetLabel = (spec: DatasetSpec): string => (typeof spec === 'string' ? spec : spec.folder);

export const sameDataset = (a: DatasetSpec, b: DatasetSpec): boolean => datasetId(a) === datasetId(b);

function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, '0');
}

/** A labelled image set held in memory. */
export interface ImageDataset {
  /** What was loaded, with a folder's channel count resolved: a model config records it to reload the data. */
  readonly spec: ResolvedDatasetSpec;
  /** `datasetLabel(spec)`. */
  readonly name: string;
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
  /** Caption per image from a folder's metadata.jsonl ('' where it has none); absent without one. */
  readonly texts?: readonly string[];
  /** Attribution the data's licence asks for, when it asks for one. */
  readonly credit?: string;
}

export interface LoadDatasetOptions {
  /** Keep only the first `limit` images of the split (for quick tests and smoke runs). */
  readonly limit?: number;
  /** Folder for decoded-image caches (emoji, folders); defaults to `.cache/` in the repository root. */
  readonly cacheDir?: string;
  /** Progress lines on stderr while a folder is decoded (default true). */
  readonly progress?: boolean;
}

const hexByte = (v: number): string => v.toString(16).padStart(2, '0');

/** The `--data` flags that select this dataset again, e.g. for a command an error message suggests. */
export function datasetFlags(spec: DatasetSpec): string[] {
  if (typeof spec === 'string') return ['--data', spec];
  const [height, width] = spec.size;
  return [
    '--data',
    spec.folder,
    '--size',
    height === width ? String(height) : `${width}x${height}`,
    '--fit',
    spec.fit,
    '--background',
    `#${spec.background.map(hexByte).join('')}`,
    ...(spec.channels === undefined ? [] : ['--image-channels', String(spec.channels)]),
  ];
}
