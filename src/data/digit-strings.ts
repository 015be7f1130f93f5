// Digit strings: the prompt "407" is a 28x84 image of MNIST digits 4, 0 and 7 side by side in 28-px cells, each
// drawn from MNIST's training split (its test split for reference images). Prompts and aspect ratios vary, and
// what an image shows can be checked exactly, cell by cell: the test bed of prompt conditioning and multi-aspect
// training. Batches are stateless like BatchLoader's: batch k depends only on (seed, k).
import { Rng } from '../core/rng.js';
import type { ImageDataset, Split } from './image-dataset.js';
import { derivedSeed } from './loader.js';
import { loadMnist } from './mnist.js';
import {
  bucketAt,
  DIGIT_CELL,
  DIGIT_STRING_TRAIN_LENGTHS,
  digitStringSize,
  type PromptedBatch,
  type PromptedSource,
  parseDigitString,
} from './prompts.js';

export interface DigitStringsOptions {
  /** String lengths, one bucket each (default DIGIT_STRING_TRAIN_LENGTHS). */
  readonly lengths?: readonly number[];
  readonly seed: number;
  /** Draw digits from only the first `limit` images of the split (tests and smoke runs). */
  readonly limit?: number;
}

export class DigitStrings implements PromptedSource {
  readonly name = 'digit-strings';
  readonly channels = 1;
  readonly lengths: readonly number[];
  readonly buckets: readonly (readonly [number, number])[];
  private readonly seed: number;
  // Indices of the split's images per digit.
  private readonly byDigit: Int32Array[];
  private readonly cellSize = DIGIT_CELL * DIGIT_CELL;

  constructor(
    private readonly mnist: ImageDataset,
    opts: DigitStringsOptions,
  ) {
    const lengths = opts.lengths ?? DIGIT_STRING_TRAIN_LENGTHS;
    if (lengths.length === 0 || !lengths.every((n) => Number.isInteger(n) && n >= 1)) {
      throw new Error(`digit-string lengths must be integers >= 1, got [${lengths}]`);
    }
    if (mnist.height !== DIGIT_CELL || mnist.width !== DIGIT_CELL || mnist.channels !== 1) {
      throw new Error(
        `digit strings need 28x28 grey digits, got ${mnist.height}x${mnist.width}x${mnist.channels}`,
      );
    }
    if (!Number.isSafeInteger(opts.seed))
      throw new Error(`digit-strings seed must be an integer, got ${opts.seed}`);
    this.lengths = [...lengths];
    this.buckets = this.lengths.map(digitStringSize);
    this.seed = opts.seed;
    this.byDigit = Array.from({ length: 10 }, (_, digit) => {
      const indices: number[] = [];
      mnist.labels.forEach((label, i) => {
        if (label === digit) indices.push(i);
      });
      return Int32Array.from(indices);
    });
    const missing = this.byDigit.findIndex((indices) => indices.length === 0);
    if (missing >= 0) throw new Error(`the ${mnist.split} digits hold no ${missing}: raise the limit`);
  }

  static async load(split: Split, opts: DigitStringsOptions): Promise<DigitStrings> {
    return new DigitStrings(await loadMnist(split, opts.limit), opts);
  }

  /**
   * The length (bucket) of batch `step`. Steps go in rounds of one batch per bucket, each round in a seeded order:
   * every bucket trains equally often and no two nearby batches follow a fixed pattern.
   */
  lengthAt(step: number): number {
    return this.lengths[bucketAt(this.seed, step, this.lengths.length)]!;
  }

  batchAt(step: number, batchSize: number): PromptedBatch {
    const length = this.lengthAt(step);
    const rng = new Rng(derivedSeed(this.seed, step));
    const prompts = Array.from({ length: batchSize }, () =>
      Array.from({ length }, () => String(rng.int(10))).join(''),
    );
    return this.render(prompts, rng);
  }

  /** Images of `prompts` (all of one length), each digit a random image of that digit drawn with `rng`. */
  render(prompts: readonly string[], rng: Rng): PromptedBatch {
    const digits = prompts.map(parseDigitString);
    const length = digits[0]?.length ?? 0;
    if (digits.some((d) => d.length !== length)) {
      throw new Error('render: the prompts of one batch must have one length (one aspect-ratio bucket)');
    }
    const [height, width] = digitStringSize(length);
    const images = new Float32Array(prompts.length * height * width);
    digits.forEach((string, n) => {
      string.forEach((digit, cell) => {
        const pool = this.byDigit[digit]!;
        const source = pool[rng.int(pool.length)]!;
        const pixels = this.mnist.images.subarray(source * this.cellSize, (source + 1) * this.cellSize);
        for (let row = 0; row < DIGIT_CELL; row++) {
          const at = n * height * width + row * width + cell * DIGIT_CELL;
          images.set(pixels.subarray(row * DIGIT_CELL, (row + 1) * DIGIT_CELL), at);
        }
      });
    });
    return { images, prompts, height, width, channels: 1 };
  }
}
