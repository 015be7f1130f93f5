// Test setup: the backend under test is LADDER_BACKEND (wasm when unset), as in the CLI.
import * as assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import * as tf from '../core/tf.js';
import { type BackendName, initBackend } from '../engine/backend.js';

export async function testBackend(): Promise<BackendName> {
  // The test runner runs two files at once: one libtorch thread each, as for any two jobs on one machine.
  process.env.LADDER_TORCH_THREADS ??= '1';
  return initBackend(process.env.LADDER_BACKEND ?? 'wasm');
}

/** Runs `fn` and fails if it leaves tensors behind. */
export async function expectNoLeak(fn: () => unknown): Promise<void> {
  const before = tf.memory().numTensors;
  await fn();
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`leaked ${after - before} tensors`);
}

/** Largest absolute difference between two tensors' values. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  if (x.length !== y.length) throw new Error(`sizes differ: ${x.length} vs ${y.length}`);
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/**
 * Whether a generation split into other batch sizes gives the same bits: true on wasm and cpu; libtorch picks its
 * convolution blocking by batch size, so there it agrees only to float rounding.
 */
export const batchInvariant = (process.env.LADDER_BACKEND ?? 'wasm') !== 'torch';

/** Equal bytes (pixels) where `batchInvariant`, else each within `tolerance` of the other. */
export function assertBytesClose(
  actual: Uint8Array,
  expected: Uint8Array,
  message: string,
  tolerance = 2,
): void {
  if (batchInvariant) {
    assert.deepEqual(actual, expected, message);
    return;
  }
  assert.equal(actual.length, expected.length, message);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst <= tolerance, `${message} (largest difference ${worst})`);
}

/**
 * Deep equality, except that numbers may differ by a relative 1e-5: metrics computed from features gathered in
 * other batch sizes sum in another order.
 */
export function assertDeepClose(actual: unknown, expected: unknown, message?: string): void {
  const close = (a: unknown, b: unknown): boolean => {
    if (typeof a === 'number' && typeof b === 'number') {
      return a === b || Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(a), Math.abs(b));
    }
    if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
      const ka = Object.keys(a);
      return (
        ka.length === Object.keys(b).length &&
        ka.every((k) => close((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
      );
    }
    return a === b;
  };
  assert.ok(close(actual, expected), message ?? `${JSON.stringify(actual)} != ${JSON.stringify(expected)}`);
}

/** The RGBA pixels of a PNG file's bytes. */
export function pngPixels(bytes: Buffer): Uint8Array {
  return PNG.sync.read(bytes).data;
}
