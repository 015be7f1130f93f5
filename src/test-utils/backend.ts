// Test setup: the backend under test is LADDER_BACKEND (wasm when unset), as in the CLI.
import * as tf from '../core/tf.js';
import { type BackendName, initBackend } from '../engine/backend.js';

export async function testBackend(): Promise<BackendName> {
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
