// Prompted data that any runtime can read (no Node APIs): the digit-string prompt format and its image sizes, and
// the batch contract of prompted, multi-aspect training data.
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import {
  BatchLoader,
  type BatchLoaderOptions,
  BucketBatches,
  type ConditionedBatches,
  copyRows,
  derivedSeed,
} from './loader.js';

/** String lengths the shipped digit-string models train on (widths 28 to 112). */
export const DIGIT_STRING_TRAIN_LENGTHS: readonly number[] = [1, 2, 3, 4];
/** Side of one digit's cell, in pixels (MNIST's). */
export const DIGIT_CELL = 28;

/** One batch of prompted images of a single shape (an aspect-ratio bucket). */
export interface PromptedBatch {
  /** NHWC values in [-1, 1], back to back: prompts.length * height * width * channels. */
  readonly images: Float32Array;
  readonly prompts: readonly string[];
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/** Prompted images in aspect-ratio buckets, batch by batch: each batch is one bucket's shape. */
export interface PromptedSource {
  /** The dataset as configs and errors name it. */
  readonly name: string;
  readonly channels: number;
  /** [height, width] of every bucket, in bucket order. */
  readonly buckets: readonly (readonly [number, number])[];
  /** Batch `step` of `batchSize` images. */
  batchAt(step: number, batchSize: number): PromptedBatch;
}

/** The image size of a digit string of `length` digits: [28, 28 * length]. */
export const digitStringSize = (length: number): [number, number] => [DIGIT_CELL, DIGIT_CELL * length];

/** Checks that `prompt` is a digit string and returns its digits. */
export function parseDigitString(prompt: string): number[] {
  if (!/^[0-9]+$/.test(prompt)) {
    throw new Error(
      `"${prompt}" is not a digit string: a digit-strings prompt is 1 or more digits, e.g. "407"`,
    );
  }
  return [...prompt].map(Number);
}

/**
 * `count` prompts of `length` digits with every digit equally often over all cells (so the cells' classes match a
 * balanced reference), in a seeded order that differs per length.
 */
export function balancedDigitStrings(length: number, count: number, seed: number): string[] {
  const cells = length * count;
  const order = new Rng(derivedSeed(seed, length)).permutation(cells);
  const digitAt = (cell: number): number => Math.floor((order[cell]! * 10) / cells);
  return Array.from({ length: count }, (_, i) =>
    Array.from({ length }, (_, j) => String(digitAt(i * length + j))).join(''),
  );
}

/**
 * The bucket of batch `step` among `buckets`: steps go in rounds of one batch per bucket, each round in a seeded
 * order, so every bucket trains equally often and no two nearby batches follow a fixed pattern.
 */
export function bucketAt(seed: number, step: number, buckets: number): number {
  if (!Number.isSafeInteger(step) || step < 0)
    throw new Error(`batch step must be a non-negative integer, got ${step}`);
  const order = new Rng(derivedSeed(seed ^ 0x5bd1e995, Math.floor(step / buckets))).permutation(buckets);
  return order[step % buckets]!;
}

/** Images with a caption each (a folder's metadata.jsonl texts), as the view of them prompted training needs. */
export interface CaptionedSet {
  readonly name: string;
  readonly images: Float32Array;
  readonly texts: readonly string[];
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
}

/**
 * Captioned images as prompted data, in aspect-ratio buckets (one set per bucket, or one set: the folder's size).
 * Each batch is one bucket's (`bucketSchedule`: buckets of different sizes in proportion to them), every image once
 * per epoch, each with its caption. Stateless: batch k depends only on (seed, k).
 */
export class CaptionedImages implements PromptedSource {
  readonly name: string;
  readonly channels: number;
  readonly buckets: readonly (readonly [number, number])[];
  private readonly schedules = new Map<number, BucketSchedule>();

  constructor(
    private readonly sets: readonly CaptionedSet[],
    private readonly seed: number,
  ) {
    if (sets.length === 0) throw new Error('no captioned images');
    for (const set of sets) {
      if (set.texts.length !== set.count) {
        throw new Error(`${set.name}: ${set.count} images but ${set.texts.length} captions`);
      }
    }
    this.name = sets[0]!.name;
    this.channels = sets[0]!.channels;
    if (sets.some((set) => set.channels !== this.channels))
      throw new Error(`${this.name}: every bucket needs ${this.channels} channels`);
    this.buckets = sets.map((set) => [set.height, set.width] as const);
  }

  batchAt(step: number, batchSize: number): PromptedBatch {
    let schedule = this.schedules.get(batchSize);
    if (schedule === undefined) {
      if (this.sets.length === 1) {
        // One size: a BatchLoader's batches, as before buckets existed (so such runs resume exactly).
        const only = orderLoader(this.sets[0]!.count, batchSize, this.seed);
        schedule = (step) => ({ bucket: 0, rows: only.indicesAt(step) });
      } else {
        schedule = bucketSchedule(
          this.sets.map((set) => set.count),
          batchSize,
          this.seed,
        );
      }
      this.schedules.set(batchSize, schedule);
    }
    const { bucket, rows } = schedule(step);
    const set = this.sets[bucket]!;
    return {
      images: copyRows(set.images, set.height * set.width * set.channels, rows),
      prompts: Array.from(rows, (row) => set.texts[row]!),
      height: set.height,
      width: set.width,
      channels: set.channels,
    };
  }
}

/** One aspect-ratio bucket of prompted samples (latents, say): samples of one shape and their prompts' tokens. */
export interface PromptBucket {
  /** Per-sample [height, width, channels]. */
  readonly shape: readonly [number, number, number];
  /** Samples back to back. */
  readonly data: Float32Array;
  /** Token ids, `maxTokens` per sample. */
  readonly tokens: Int32Array;
}

/** The bucket of batch `step` and its samples' indices within that bucket. */
type BucketSchedule = (step: number) => { readonly bucket: number; readonly rows: Int32Array };

/** A BatchLoader over `count` samples whose sample order alone is used (its data are placeholders). */
const orderLoader = (count: number, batchSize: number, seed: number): BatchLoader =>
  new BatchLoader(
    { data: new Float32Array(count), labels: new Int32Array(count), shape: [1, 1, 1] },
    { batchSize, seed },
  );

/**
 * Which bucket's samples batch k holds, over buckets of `counts` samples. Buckets of one size: each bucket once per
 * round (`bucketAt`), its own samples without replacement epoch by epoch (a BatchLoader stepping once a round).
 * Buckets of different sizes: in proportion to their sizes (`BucketBatches`), so a rare aspect ratio is not
 * trained as often as a common one. Stateless: batch k depends only on (seed, k).
 */
function bucketSchedule(counts: readonly number[], batchSize: number, seed: number): BucketSchedule {
  if (counts.every((n) => n === counts[0])) {
    const loaders = counts.map((n, k) => orderLoader(n, batchSize, derivedSeed(seed, k)));
    return (step) => {
      const bucket = bucketAt(seed, step, counts.length);
      return { bucket, rows: loaders[bucket]!.indicesAt(Math.floor(step / counts.length)) };
    };
  }
  const batches = new BucketBatches(counts, batchSize, seed);
  return (step) => batches.at(step);
}

/**
 * Batches over aspect-ratio buckets of prompted samples (a synthetic set's latents), each batch one bucket's, with
 * the prompts' tokens as the condition; buckets drawn as `bucketSchedule` says. Stateless: batch k depends only on
 * (seed, k).
 */
export class BucketedLoader implements ConditionedBatches {
  private readonly schedule: BucketSchedule;

  constructor(
    private readonly buckets: readonly PromptBucket[],
    private readonly maxTokens: number,
    opts: BatchLoaderOptions,
  ) {
    if (buckets.length === 0) throw new Error('no aspect-ratio buckets to batch');
    const counts = buckets.map((bucket) => {
      const count = bucket.tokens.length / maxTokens;
      if (!Number.isInteger(count)) {
        throw new Error(
          `bucket ${bucket.shape.join('x')}: ${bucket.tokens.length} token ids are not rows of ${maxTokens}`,
        );
      }
      return count;
    });
    this.schedule = bucketSchedule(counts, opts.batchSize, opts.seed);
  }

  batchAt(step: number) {
    const { bucket, rows } = this.schedule(step);
    const { shape, data, tokens } = this.buckets[bucket]!;
    const x = copyRows(data, shape[0] * shape[1] * shape[2], rows);
    const ids = copyRows(tokens, this.maxTokens, rows);
    return {
      x: tf.tensor4d(x, [rows.length, ...shape]),
      condition: tf.tensor2d(ids, [rows.length, this.maxTokens], 'int32'),
    };
  }
}
