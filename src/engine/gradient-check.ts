// Numerical gradient checks (central finite differences), used to verify kernels and gradients on a backend.
import * as tf from '../core/tf.js';

/** A scalar function of one tensor, evaluated synchronously; it must not dispose its input. */
export type ScalarFn = (x: tf.Tensor) => tf.Scalar;

/**
 * Central difference (f(x + eps e_i) - f(x - eps e_i)) / 2 eps at each flat index of `indices`.
 * Runs in float32 on the active backend, so pick eps around 1e-2 for smooth functions.
 */
export function centralDifferences(
  f: ScalarFn,
  x: tf.Tensor,
  indices: readonly number[],
  eps: number,
): number[] {
  const base = x.dataSync() as Float32Array;
  return indices.map((i) => {
    const at = (delta: number): number =>
      tf.tidy(() => {
        const shifted = Float32Array.from(base);
        shifted[i] = (shifted[i] ?? 0) + delta;
        return f(tf.tensor(shifted, x.shape)).dataSync()[0] ?? Number.NaN;
      });
    return (at(eps) - at(-eps)) / (2 * eps);
  });
}

/** Analytic gradient of `f` at `x` via tf.grad, as a flat Float32Array. */
export function analyticGradient(f: ScalarFn, x: tf.Tensor): Float32Array {
  return tf.tidy(() => tf.grad(f)(x).dataSync() as Float32Array);
}

/** Largest |a - b| / max(1, |b|) over two equal-length arrays (mixed absolute/relative error). */
export function maxMixedError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const ai = a[i] ?? Number.NaN;
    const bi = b[i] ?? Number.NaN;
    const err = Math.abs(ai - bi) / Math.max(1, Math.abs(bi));
    if (!(err <= worst)) worst = Number.isNaN(err) ? Number.POSITIVE_INFINITY : err;
  }
  return worst;
}
