// Sample-quality metrics on classifier features: Frechet distance (FID-like), KID (Binkowski et al. 2018),
// improved precision/recall (Kynkaanniemi et al. 2019) and class accuracy. Pure JS, float64.
import { Rng } from '../core/rng.js';
import type { TensorRecord } from '../io/safetensors.js';
import {
  type FeatureArray,
  matMul,
  meanAndCovariance,
  rowDots,
  rowSquaredNorms,
  sqrtmPsd,
  symmetricEigen,
  toFloat64Features,
  trace,
} from './linalg.js';

/** Gaussian summary of a feature set: mean [d], unbiased covariance [d, d] (row-major) and the sample count. */
export interface FeatureStats {
  readonly mu: Float64Array;
  readonly cov: Float64Array;
  readonly n: number;
}

/** Rows per tile in the blocked pairwise loops (a 256 x 128 float64 tile is 256 KiB, cache-sized). */
const TILE_ROWS = 256;

// ---
// Frechet distance between Gaussians.

/**
 * ||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2). The symmetric form needs only symmetric
 * eigendecompositions; negative eigenvalues from round-off are clamped to 0.
 */
export function frechetDistance(
  mu1: Float64Array,
  cov1: Float64Array,
  mu2: Float64Array,
  cov2: Float64Array,
): number {
  const d = mu1.length;
  if (mu2.length !== d) throw new Error(`frechetDistance: means differ in length (${d} vs ${mu2.length})`);
  for (const [name, cov] of [
    ['cov1', cov1],
    ['cov2', cov2],
  ] as const) {
    if (cov.length !== d * d)
      throw new Error(`frechetDistance: ${name} has ${cov.length} entries, expected ${d}x${d}`);
  }
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (mu1[i]! - mu2[i]!) ** 2;
  const root1 = sqrtmPsd(cov1, d);
  const middle = matMul(matMul(root1, cov2, d, d, d), root1, d, d, d);
  let traceSqrt = 0;
  for (const value of symmetricEigen(middle, d).values) traceSqrt += Math.sqrt(Math.max(value, 0));
  const traces = trace(cov1, d) + trace(cov2, d);
  const distance = meanTerm + traces - 2 * traceSqrt;
  // Equal distributions can land a hair below zero through round-off; larger negatives are left visible.
  return distance < 0 && distance > -1e-9 * (traces + 1) ? 0 : distance;
}

/** Mean and unbiased covariance of row-major [n, d] features (n >= 2). */
export function featureStats(features: FeatureArray, n: number, d: number): FeatureStats {
  const { mean, cov } = meanAndCovariance(features, n, d);
  return { mu: mean, cov, n };
}

/** Frechet distance between two feature summaries. */
export function frechetDistanceFromStats(a: FeatureStats, b: FeatureStats): number {
  return frechetDistance(a.mu, a.cov, b.mu, b.cov);
}

// ---
// Reference-statistics cache: JSON (exact float64) or safetensors records (float32 value + float32 residual).

/** JSON form of FeatureStats; `cov` is row-major [d, d]. */
export interface FeatureStatsJson {
  readonly n: number;
  readonly d: number;
  readonly mu: number[];
  readonly cov: number[];
}

export function featureStatsToJson(stats: FeatureStats): FeatureStatsJson {
  return { n: stats.n, d: stats.mu.length, mu: Array.from(stats.mu), cov: Array.from(stats.cov) };
}

function checkedStats(
  mu: ArrayLike<number>,
  cov: ArrayLike<number>,
  n: number,
  source: string,
): FeatureStats {
  const d = mu.length;
  if (!Number.isInteger(n) || n < 2)
    throw new Error(`${source}: sample count n must be an integer >= 2, got ${n}`);
  if (d < 1 || cov.length !== d * d) {
    throw new Error(
      `${source}: cov has ${cov.length} entries but mu has ${d}; expected ${d}x${d}. Recompute the stats`,
    );
  }
  const out = { mu: Float64Array.from(mu), cov: Float64Array.from(cov), n };
  if (![...out.mu, ...out.cov].every(Number.isFinite))
    throw new Error(`${source}: stats contain non-finite values`);
  return out;
}

/** Parses FeatureStatsJson from untrusted input; `source` (e.g. a file path) prefixes every error. */
export function featureStatsFromJson(value: unknown, source: string): FeatureStats {
  const record = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const { n, d, mu, cov } = record;
  const isNumbers = (x: unknown): x is number[] => Array.isArray(x) && x.every((v) => typeof v === 'number');
  if (typeof n !== 'number' || typeof d !== 'number' || !isNumbers(mu) || !isNumbers(cov)) {
    throw new Error(`${source}: expected {n: number, d: number, mu: number[], cov: number[]} feature stats`);
  }
  if (mu.length !== d) throw new Error(`${source}: d is ${d} but mu has ${mu.length} values`);
  return checkedStats(mu, cov, n, source);
}

// float64 = float32 value + float32 residual keeps ~48 of 53 mantissa bits in a float32-only format.
function splitFloat64(x: Float64Array): [Float32Array, Float32Array] {
  const high = Float32Array.from(x);
  return [high, Float32Array.from(x, (v, i) => v - high[i]!)];
}

/** Safetensors records `mu`, `mu_residual` [d], `cov`, `cov_residual` [d, d] and `n` [1] (I32). */
export function featureStatsToTensors(stats: FeatureStats): Record<string, TensorRecord> {
  const d = stats.mu.length;
  const [mu, muResidual] = splitFloat64(stats.mu);
  const [cov, covResidual] = splitFloat64(stats.cov);
  return {
    mu: { dtype: 'F32', shape: [d], data: mu },
    mu_residual: { dtype: 'F32', shape: [d], data: muResidual },
    cov: { dtype: 'F32', shape: [d, d], data: cov },
    cov_residual: { dtype: 'F32', shape: [d, d], data: covResidual },
    n: { dtype: 'I32', shape: [1], data: Int32Array.of(stats.n) },
  };
}

/** Inverse of `featureStatsToTensors`; the residual records are optional (plain float32 stats also load). */
export function featureStatsFromTensors(tensors: Record<string, TensorRecord>, source: string): FeatureStats {
  const { mu, cov, n } = tensors;
  if (mu === undefined || cov === undefined || n === undefined) {
    throw new Error(
      `${source}: feature stats need tensors mu, cov and n; found ${Object.keys(tensors).join(', ')}`,
    );
  }
  const join = (value: TensorRecord, residual: TensorRecord | undefined): Float64Array =>
    Float64Array.from(value.data, (v, i) => v + (residual?.data[i] ?? 0));
  return checkedStats(join(mu, tensors.mu_residual), join(cov, tensors.cov_residual), n.data[0] ?? 0, source);
}

// ---
// KID: unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over subsets.

export interface KidOptions {
  /** Number of random subsets to average over (default 100). */
  readonly subsets?: number;
  /** Rows drawn (without replacement) from each set per subset; clamped to min(n, m) (default 1000). */
  readonly subsetSize?: number;
  /** Seed of the subset draws. */
  readonly seed: number;
}

function gatherRows(x: Float64Array, rows: Int32Array, count: number, d: number): Float64Array {
  const out = new Float64Array(count * d);
  for (let r = 0; r < count; r++) out.set(x.subarray(rows[r]! * d, rows[r]! * d + d), r * d);
  return out;
}

// Sum of k(a_i, b_j) over all pairs, or over pairs i != j when `a` and `b` are the same set.
function kernelSum(
  a: Float64Array,
  na: number,
  b: Float64Array,
  nb: number,
  d: number,
  same: boolean,
): number {
  const dots = new Float64Array(TILE_ROWS * TILE_ROWS);
  let sum = 0;
  for (let i0 = 0; i0 < na; i0 += TILE_ROWS) {
    const ni = Math.min(TILE_ROWS, na - i0);
    for (let j0 = same ? i0 : 0; j0 < nb; j0 += TILE_ROWS) {
      const nj = Math.min(TILE_ROWS, nb - j0);
      rowDots(a, i0, ni, b, j0, nj, d, dots);
      const weight = same && j0 !== i0 ? 2 : 1; // off-diagonal tiles stand for both (i, j) and (j, i)
      let tile = 0;
      for (let i = 0; i < ni; i++) {
        for (let j = 0; j < nj; j++) {
          if (same && j0 === i0 && i === j) continue;
          const base = dots[i * nj + j]! / d + 1;
          tile += base * base * base;
        }
      }
      sum += weight * tile;
    }
  }
  return sum;
}

/**
 * Kernel Inception Distance on row-major features a [n, d] and b [m, d]: the unbiased MMD^2 estimate per
 * random subset, returned as the mean and the (population) standard deviation over subsets. Can be slightly
 * negative for equal distributions. Cost: about subsets * 4 * subsetSize^2 * d multiply-adds.
 */
export function kid(
  featsA: FeatureArray,
  featsB: FeatureArray,
  n: number,
  m: number,
  d: number,
  opts: KidOptions,
): { kid: number; kidStd: number } {
  const a = toFloat64Features(featsA, n, d, 'kid (first set)');
  const b = toFloat64Features(featsB, m, d, 'kid (second set)');
  const subsets = opts.subsets ?? 100;
  const size = Math.min(opts.subsetSize ?? 1000, n, m);
  if (!Number.isInteger(subsets) || subsets < 1)
    throw new Error(`kid: subsets must be an integer >= 1, got ${subsets}`);
  if (!Number.isInteger(size) || size < 2) {
    throw new Error(
      `kid: need subsets of at least 2 rows from each set, got subsetSize=${size} (n=${n}, m=${m})`,
    );
  }
  const rng = new Rng(opts.seed);
  const estimates: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const x = gatherRows(a, rng.permutation(n), size, d);
    const y = gatherRows(b, rng.permutation(m), size, d);
    const within =
      (kernelSum(x, size, x, size, d, true) + kernelSum(y, size, y, size, d, true)) / (size * (size - 1));
    estimates.push(within - (2 * kernelSum(x, size, y, size, d, false)) / (size * size));
  }
  const mean = estimates.reduce((acc, v) => acc + v, 0) / subsets;
  const variance = estimates.reduce((acc, v) => acc + (v - mean) ** 2, 0) / subsets;
  return { kid: mean, kidStd: Math.sqrt(variance) };
}

// ---
// Improved precision and recall: k-NN balls around each sample approximate each distribution's support.

// Squared distance to the k-th nearest other row, for every row (duplicates count, the row itself does not).
function kthNeighbourRadii(
  x: Float64Array,
  norms: Float64Array,
  n: number,
  d: number,
  k: number,
): Float64Array {
  const nearest = new Float64Array(n * k).fill(Number.POSITIVE_INFINITY); // per row, ascending
  const insert = (row: number, dist: number): void => {
    const base = row * k;
    if (dist >= nearest[base + k - 1]!) return;
    let slot = k - 1;
    while (slot > 0 && nearest[base + slot - 1]! > dist) {
      nearest[base + slot] = nearest[base + slot - 1]!;
      slot--;
    }
    nearest[base + slot] = dist;
  };
  const dots = new Float64Array(TILE_ROWS * TILE_ROWS);
  for (let i0 = 0; i0 < n; i0 += TILE_ROWS) {
    const ni = Math.min(TILE_ROWS, n - i0);
    for (let j0 = i0; j0 < n; j0 += TILE_ROWS) {
      const nj = Math.min(TILE_ROWS, n - j0);
      rowDots(x, i0, ni, x, j0, nj, d, dots);
      for (let i = 0; i < ni; i++) {
        for (let j = j0 === i0 ? i + 1 : 0; j < nj; j++) {
          const dist = Math.max(0, norms[i0 + i]! + norms[j0 + j]! - 2 * dots[i * nj + j]!);
          insert(i0 + i, dist);
          insert(j0 + j, dist);
        }
      }
    }
  }
  return Float64Array.from({ length: n }, (_, row) => nearest[row * k + k - 1]!);
}

/**
 * Improved precision (share of fakes inside some real k-NN ball) and recall (share of reals inside some fake
 * k-NN ball), with exact pairwise Euclidean distances. real [n, d], fake [m, d], row-major; n, m > k.
 */
export function precisionRecall(
  real: FeatureArray,
  fake: FeatureArray,
  n: number,
  m: number,
  d: number,
  k = 3,
): { precision: number; recall: number } {
  if (!Number.isInteger(k) || k < 1) throw new Error(`precisionRecall: k must be an integer >= 1, got ${k}`);
  if (n <= k || m <= k)
    throw new Error(`precisionRecall: need more than k=${k} samples per set, got n=${n}, m=${m}`);
  const x = toFloat64Features(real, n, d, 'precisionRecall (real)');
  const y = toFloat64Features(fake, m, d, 'precisionRecall (fake)');
  const xNorms = rowSquaredNorms(x, n, d);
  const yNorms = rowSquaredNorms(y, m, d);
  const realRadii = kthNeighbourRadii(x, xNorms, n, d, k);
  const fakeRadii = kthNeighbourRadii(y, yNorms, m, d, k);
  const fakeCovered = new Uint8Array(m);
  const realCovered = new Uint8Array(n);
  const dots = new Float64Array(TILE_ROWS * TILE_ROWS);
  for (let i0 = 0; i0 < n; i0 += TILE_ROWS) {
    const ni = Math.min(TILE_ROWS, n - i0);
    for (let j0 = 0; j0 < m; j0 += TILE_ROWS) {
      const nj = Math.min(TILE_ROWS, m - j0);
      rowDots(x, i0, ni, y, j0, nj, d, dots);
      for (let i = 0; i < ni; i++) {
        const realRadius = realRadii[i0 + i]!;
        for (let j = 0; j < nj; j++) {
          const dist = Math.max(0, xNorms[i0 + i]! + yNorms[j0 + j]! - 2 * dots[i * nj + j]!);
          if (dist <= realRadius) fakeCovered[j0 + j] = 1;
          if (dist <= fakeRadii[j0 + j]!) realCovered[i0 + i] = 1;
        }
      }
    }
  }
  const share = (flags: Uint8Array): number => flags.reduce((acc, v) => acc + v, 0) / flags.length;
  return { precision: share(fakeCovered), recall: share(realCovered) };
}

// ---

/** Share of samples whose predicted class equals the class they were generated for. */
export function classAccuracy(predicted: Int32Array, asked: Int32Array): number {
  if (predicted.length !== asked.length || predicted.length === 0) {
    throw new Error(
      `classAccuracy: need equal, non-empty label arrays, got ${predicted.length} predicted and ${asked.length} asked`,
    );
  }
  let hits = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === asked[i]) hits++;
  return hits / predicted.length;
}
