// Runs a tensor function over a large set in batches and gathers the results into one typed array.
import * as tf from './tf.js';

/**
 * Calls `fn(start, end)` for consecutive slices of `count` items and concatenates the outputs (each
 * [end - start, ...]) into one Float32Array. `fn`'s result is disposed here.
 */
export async function mapInBatches(
  count: number,
  batchSize: number,
  fn: (start: number, end: number) => tf.Tensor,
  onProgress?: (done: number) => void,
): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  let total = 0;
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    const out = fn(start, end);
    const values = (await out.data()) as Float32Array;
    out.dispose();
    parts.push(values);
    total += values.length;
    onProgress?.(end);
  }
  const all = new Float32Array(total);
  let offset = 0;
  for (const p of parts) {
    all.set(p, offset);
    offset += p.length;
  }
  return all;
}

/** A [end - start, ...shape] tensor viewing items start..end of a flat array; caller owns it. */
export function sliceTensor(
  data: Float32Array,
  shape: readonly number[],
  start: number,
  end: number,
): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(data.subarray(start * size, end * size), [end - start, ...shape]);
}
