// Prompted data that any runtime can read (no Node APIs): the digit-string prompt format and its image sizes, and
// the batch contract of prompted, multi-aspect training data.

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
