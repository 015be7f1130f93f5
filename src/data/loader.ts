// Seeded, stateless batching: the batch at step k depends only on (seed, k), so a resumed run draws
// exactly the batches an uninterrupted run would have drawn.
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { ImageDataset } from './image-dataset.js';

/** Any set of equally shaped samples with class labels: images, cached latents, ... */
export interface ArraySource {
  /** Samples back to back, each `shape` in HWC order. */
  readonly data: Float32Array;
  readonly labels: Int32Array;
  /** Per-sample [height, width, channels]. */
  readonly shape: readonly [number, number, number];
}

/** One training batch; the caller owns (and disposes) both tensors. */
export interface Batch {
  /** [B, H, W, C] */
  readonly x: tf.Tensor4D;
  /** [B] int32 class labels. */
  readonly labels: tf.Tensor1D;
}

/** A batch and what it is conditioned on; the caller owns both tensors. */
export interface ConditionedBatch {
  /** [B, H, W, C] */
  readonly x: tf.Tensor4D;
  /** Class labels [B] or prompt tokens [B, maxTokens], int32. */
  readonly condition: tf.Tensor1D | tf.Tensor2D;
}

/** Samples `rows` of `data` (`size` values each), back to back in a new array of the same type. */
export function copyRows<T extends Float32Array | Int32Array>(
  data: T,
  size: number,
  rows: ArrayLike<number>,
): T {
  const out = (
    data instanceof Float32Array ? new Float32Array(rows.length * size) : new Int32Array(rows.length * size)
  ) as T;
  for (let i = 0; i < rows.length; i++)
    out.set(data.subarray(rows[i]! * size, (rows[i]! + 1) * size), i * size);
  return out;
}

/** Seeded, stateless batches whose shape may change from batch to batch (aspect-ratio buckets). */
export interface ConditionedBatches {
  batchAt(step: number): ConditionedBatch;
}

/** A class-labelled loader's batches, the labels as the condition. */
export function classBatches(loader: BatchLoader): ConditionedBatches {
  return {
    batchAt: (step) => {
      const { x, labels } = loader.batchAt(step);
      return { x, condition: labels };
    },
  };
}

export interface BatchLoaderOptions {
  readonly batchSize: number;
  readonly seed: number;
}

/** Views a dataset as an ArraySource (no copy). */
export function datasetSource(dataset: ImageDataset): ArraySource {
  return {
    data: dataset.images,
    labels: dataset.labels,
    shape: [dataset.height, dataset.width, dataset.channels],
  };
}

/** A seed for item `index` (an epoch, a batch) of a seeded stream: a hash of both, so nearby seeds share nothing. */
export function derivedSeed(seed: number, index: number): number {
  let h = Math.imul((seed | 0) ^ 0x2545f491, 0x9e3779b1);
  h = Math.imul(h ^ (Math.floor(seed / 2 ** 32) | 0), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ index, 0xc2b2ae35);
  return (h ^ (h >>> 13)) | 0;
}

/**
 * Batches drawn without replacement in a fresh seeded order each epoch. Sample positions run on across
 * epoch boundaries: position p = step * batchSize + i is sample `permutation(floor(p / count))[p % count]`,
 * so every sample appears exactly once per epoch whatever the batch size.
 */
export class BatchLoader {
  readonly count: number;
  readonly batchSize: number;
  readonly seed: number;
  private readonly sampleSize: number;
  // The most recent epochs' orders: a batch touches at most a few, and steps usually move forward.
  private readonly orders = new Map<number, Int32Array>();

  constructor(
    private readonly source: ArraySource,
    { batchSize, seed }: BatchLoaderOptions,
  ) {
    const [h, w, c] = source.shape;
    this.sampleSize = h * w * c;
    this.count = source.labels.length;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isSafeInteger(seed)) throw new Error(`loader seed must be an integer, got ${seed}`);
    if (!(source.shape.every((d) => Number.isInteger(d) && d > 0) && this.sampleSize > 0)) {
      throw new Error(`sample shape [${source.shape}] must hold positive integers`);
    }
    if (this.count === 0) throw new Error('cannot batch an empty data source');
    if (source.data.length !== this.count * this.sampleSize) {
      throw new Error(
        `data source has ${source.data.length} values but ${this.count} labels of shape [${source.shape}] need ${this.count * this.sampleSize}`,
      );
    }
    this.batchSize = batchSize;
    this.seed = seed;
  }

  /** Batches per pass over the data (fractional when batchSize does not divide count). */
  get stepsPerEpoch(): number {
    return this.count / this.batchSize;
  }

  /** The epoch that the first sample of batch `step` belongs to. */
  epochAt(step: number): number {
    return Math.floor((step * this.batchSize) / this.count);
  }

  /** The sample order of `epoch`, a permutation of 0..count-1. Do not modify the returned array. */
  permutation(epoch: number): Int32Array {
    let order = this.orders.get(epoch);
    if (order === undefined) {
      order = new Rng(derivedSeed(this.seed, epoch)).permutation(this.count);
      if (this.orders.size >= 4) this.orders.delete(this.orders.keys().next().value!);
      this.orders.set(epoch, order);
    }
    return order;
  }

  /** Sample indices of batch `step`. */
  indicesAt(step: number): Int32Array {
    if (!Number.isSafeInteger(step) || step < 0)
      throw new Error(`batch step must be a non-negative integer, got ${step}`);
    const indices = new Int32Array(this.batchSize);
    for (let i = 0; i < this.batchSize; i++) {
      const position = step * this.batchSize + i;
      indices[i] = this.permutation(Math.floor(position / this.count))[position % this.count]!;
    }
    return indices;
  }

  /** Batch `step` as tensors; the caller owns the result. */
  batchAt(step: number): Batch {
    const indices = this.indicesAt(step);
    return {
      x: tf.tensor4d(copyRows(this.source.data, this.sampleSize, indices), [
        this.batchSize,
        ...this.source.shape,
      ]),
      labels: tf.tensor1d(copyRows(this.source.labels, 1, indices), 'int32'),
    };
  }

  /** Batches from `startStep` on, forever; the caller owns (and disposes) each batch. */
  *batches(startStep = 0): Generator<Batch, never> {
    for (let step = startStep; ; step++) yield this.batchAt(step);
  }
}

/**
 * Batches over buckets of different sizes (aspect ratios), each batch from one bucket. Every epoch each bucket's
 * samples are shuffled and cut into batches (the last topped up from the start of the same order), and the batches
 * of all buckets are shuffled together: a bucket trains in proportion to its size and every sample is seen each
 * epoch. Stateless: batch k depends only on (seed, k).
 */
export class BucketBatches {
  private readonly perEpoch: number;
  private epoch = -1;
  private orders: Int32Array[] = [];
  private schedule: [number, number][] = [];

  constructor(
    private readonly counts: readonly number[],
    private readonly batchSize: number,
    private readonly seed: number,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    if (counts.length === 0 || !counts.every((n) => Number.isInteger(n) && n > 0))
      throw new Error(`every bucket needs samples, got counts [${counts}]`);
    this.perEpoch = counts.reduce((a, n) => a + Math.ceil(n / batchSize), 0);
  }

  /** The bucket of batch `step` and its samples' indices within the bucket. */
  at(step: number): { readonly bucket: number; readonly rows: Int32Array } {
    if (!Number.isSafeInteger(step) || step < 0)
      throw new Error(`batch step must be a non-negative integer, got ${step}`);
    const epoch = Math.floor(step / this.perEpoch);
    if (epoch !== this.epoch) this.plan(epoch);
    const [bucket, index] = this.schedule[step % this.perEpoch]!;
    const order = this.orders[bucket]!;
    const rows = Int32Array.from(
      { length: this.batchSize },
      (_, i) => order[(index * this.batchSize + i) % order.length]!,
    );
    return { bucket, rows };
  }

  private plan(epoch: number): void {
    const epochSeed = derivedSeed(this.seed, epoch);
    this.orders = this.counts.map((n, k) => new Rng(derivedSeed(epochSeed, k)).permutation(n));
    const batches = this.counts.flatMap((n, k) =>
      Array.from({ length: Math.ceil(n / this.batchSize) }, (_, j): [number, number] => [k, j]),
    );
    const shuffle = new Rng(derivedSeed(epochSeed, -1)).permutation(batches.length);
    this.schedule = Array.from(shuffle, (i) => batches[i]!);
    this.epoch = epoch;
  }
}
