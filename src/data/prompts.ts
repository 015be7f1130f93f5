// Prompted data that any runtime can read (no Node APIs): the digit-string prompt format and its image sizes, and
// the batch contract of prompted, multi-aspect training data.
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import {
  BatchLoader,
  type BatchLoaderOptions,
  BucketBatches,
  type ConditionedBatches,
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
 * Each batch is one bucket's, buckets drawn in proportion to their sizes and every image once per epoch
 * (`BucketBatches`), each image with its caption. Stateless: batch k depends only on (seed, k).
 */
export class CaptionedImages implements PromptedSource {
  readonly name: string;
  readonly channels: number;
  readonly buckets: readonly (readonly [number, number])[];
  private readonly schedules = new Map<number, BucketBatches>();

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
      schedule = new BucketBatches(
        this.sets.map((set) => set.count),
        batchSize,
        this.seed,
      );
      this.schedules.set(batchSize, schedule);
    }
    const { bucket, rows } = schedule.at(step);
    const set = this.sets[bucket]!;
    const size = set.height * set.width * set.channels;
    const images = new Float32Array(rows.length * size);
    rows.forEach((row, i) => {
      images.set(set.images.subarray(row * size, (row + 1) * size), i * size);
    });
    return {
      images,
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

/**
 * Batches over aspect-ratio buckets: batch k is bucket `bucketAt(seed, k)`'s, drawn from that bucket without
 * replacement epoch by epoch (its own BatchLoader, stepping once per round), with the prompts' tokens as the
 * condition. Stateless like BatchLoader: batch k depends only on (seed, k).
 */
export class BucketedLoader implements ConditionedBatches {
  private readonly loaders: BatchLoader[];

  constructor(
    private readonly buckets: readonly PromptBucket[],
    private readonly maxTokens: number,
    private readonly opts: BatchLoaderOptions,
  ) {
    if (buckets.length === 0) throw new Error('no aspect-ratio buckets to batch');
    this.loaders = buckets.map((bucket, k) => {
      const count = bucket.tokens.length / maxTokens;
      if (!Number.isInteger(count)) {
        throw new Error(
          `bucket ${bucket.shape.join('x')}: ${bucket.tokens.length} token ids are not rows of ${maxTokens}`,
        );
      }
      // Only the loader's sample order is used; its labels are row numbers.
      const rows = Int32Array.from({ length: count }, (_, i) => i);
      return new BatchLoader(
        { data: bucket.data, labels: rows, shape: bucket.shape },
        { batchSize: opts.batchSize, seed: derivedSeed(opts.seed, k) },
      );
    });
  }

  batchAt(step: number) {
    const k = bucketAt(this.opts.seed, step, this.buckets.length);
    const rows = this.loaders[k]!.indicesAt(Math.floor(step / this.buckets.length));
    const { shape, data, tokens } = this.buckets[k]!;
    const size = shape[0] * shape[1] * shape[2];
    const x = new Float32Array(rows.length * size);
    const ids = new Int32Array(rows.length * this.maxTokens);
    rows.forEach((row, i) => {
      x.set(data.subarray(row * size, (row + 1) * size), i * size);
      ids.set(tokens.subarray(row * this.maxTokens, (row + 1) * this.maxTokens), i * this.maxTokens);
    });
    return {
      x: tf.tensor4d(x, [rows.length, ...shape]),
      condition: tf.tensor2d(ids, [rows.length, this.maxTokens], 'int32'),
    };
  }
}
