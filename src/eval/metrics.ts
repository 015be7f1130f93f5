// Sample-quality metrics on classifier features: Frechet distance (FID-like), KID (Binkowski et al. 2018),
// improved precision/recall (Kynkaanniemi et al. 2019) and class accuracy. Pure JS, float64.
import { Rng } from '../core/rng.js';
import type { TensorRecord } from '../io/safetensors.js';
import {
  type FeatureArray,
  meanAndCovariance,
  rowDots,
  rowSquaredNorms,
  sqrtmPsd,
  symmetricEigenvalues,
  symmetricSandwich,
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
  return frechetDistanceWithRoot(mu1, cov1, sqrtmPsd(cov1, d), mu2, cov2);
}

// The Frechet distance given root1 = cov1^1/2, so that a Gaussian compared many times is factored once.
function frechetDistanceWithRoot(
  mu1: Float64Array,
  cov1: Float64Array,
  root1: Float64Array,
  mu2: Float64Array,
  cov2: Float64Array,
): number {
  const d = mu1.length;
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (mu1[i]! - mu2[i]!) ** 2;
  const middle = symmetricSandwich(root1, cov2, d);
  let traceSqrt = 0;
  for (const value of symmetricEigenvalues(middle, d)) traceSqrt += Math.sqrt(Math.max(value, 0));
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

function checkLabels(predicted: Int32Array, asked: Int32Array, name: string): void {
  if (predicted.length !== asked.length || predicted.length === 0) {
    throw new Error(
      `${name}: need equal, non-empty label arrays, got ${predicted.length} predicted and ${asked.length} asked`,
    );
  }
}

/** Share of samples whose predicted class equals the class they were generated for. */
export function classAccuracy(predicted: Int32Array, asked: Int32Array): number {
  checkLabels(predicted, asked, 'classAccuracy');
  let hits = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === asked[i]) hits++;
  return hits / predicted.length;
}

// ---
// Bootstrap intervals over the generated samples. Rows are split into blocks of consecutive rows within each
// stratum (in an eval, the class each sample was asked for: the class counts are fixed by design, so replicates
// keep them), and a replicate draws as many blocks of each stratum as it has, with replacement. Per-block sums make
// a replicate cost O(blocks d^2) instead of O(N d^2).

/** Coverage of the bootstrap percentile intervals. */
export const BOOTSTRAP_LEVEL = 0.95;

export interface BootstrapOptions {
  /** Resampled replicates (at least 1). */
  readonly replicates: number;
  /** Blocks to split the rows into: ceil(count / blocks) rows each, plus a shorter last block per stratum. */
  readonly blocks: number;
  /** Seed of the block draws: equal seeds and layouts draw the same blocks (paired replicates). */
  readonly seed: number;
  /** The stratum of each row (e.g. its asked class); blocks are drawn within strata. Default: one stratum. */
  readonly strata?: Int32Array;
}

/** A statistic on every bootstrap replicate and its percentile interval at BOOTSTRAP_LEVEL. */
export interface BootstrapInterval {
  /** In draw order, so replicate i of two bootstraps with the same draws can be paired. */
  readonly replicates: number[];
  readonly low: number;
  readonly high: number;
}

/** How rows are grouped for resampling. */
export interface BlockLayout {
  /** The block of each row. */
  readonly blockOfRow: Int32Array;
  /** The blocks of each stratum, in order of first row: a replicate draws each stratum's blocks from its own. */
  readonly strata: readonly Int32Array[];
  readonly blocks: number;
  /**
   * sqrt(k / (k - 1)) for k blocks per stratum: resampling k blocks with replacement understates the variance of
   * their mean by (k - 1) / k, so replicates' deviations are widened by this factor (1 when k = 1).
   */
  readonly spread: number;
}

/**
 * Splits `count` rows into blocks of ceil(count / blocks) consecutive rows of one stratum each (each stratum's
 * last block may be shorter).
 */
export function blockLayout(count: number, blocks: number, strata?: Int32Array): BlockLayout {
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`bootstrap: need rows to resample, got ${count}`);
  if (!Number.isInteger(blocks) || blocks < 1)
    throw new Error(`bootstrap: blocks must be an integer >= 1, got ${blocks}`);
  if (strata !== undefined && strata.length !== count)
    throw new Error(`bootstrap: ${strata.length} strata for ${count} rows`);
  const rowsPerBlock = Math.ceil(count / blocks);
  const blockOfRow = new Int32Array(count);
  const open = new Map<number, { block: number; rows: number }>(); // the block each stratum is filling
  const blocksOf = new Map<number, number[]>();
  let made = 0;
  for (let row = 0; row < count; row++) {
    const stratum = strata?.[row] ?? 0;
    let filling = open.get(stratum);
    if (filling === undefined || filling.rows === rowsPerBlock) {
      filling = { block: made++, rows: 0 };
      open.set(stratum, filling);
      const own = blocksOf.get(stratum) ?? [];
      own.push(filling.block);
      blocksOf.set(stratum, own);
    }
    filling.rows++;
    blockOfRow[row] = filling.block;
  }
  const perStratum = made / blocksOf.size;
  const spread = perStratum > 1 ? Math.sqrt(perStratum / (perStratum - 1)) : 1;
  return {
    blockOfRow,
    strata: Array.from(blocksOf.values(), (b) => Int32Array.from(b)),
    blocks: made,
    spread,
  };
}

/**
 * The two-sided percentile interval of `values` at `level` (quantiles interpolated linearly between order
 * statistics, as numpy's default).
 */
export function percentileInterval(
  values: readonly number[],
  level = BOOTSTRAP_LEVEL,
): { low: number; high: number } {
  if (values.length === 0) throw new Error('percentileInterval: no values');
  if (!(level > 0 && level < 1)) throw new Error(`percentileInterval: level must be in (0, 1), got ${level}`);
  const sorted = [...values].sort((a, b) => a - b);
  const quantile = (q: number): number => {
    const at = q * (sorted.length - 1);
    const below = Math.floor(at);
    const above = Math.min(below + 1, sorted.length - 1);
    return sorted[below]! + (at - below) * (sorted[above]! - sorted[below]!);
  };
  return { low: quantile((1 - level) / 2), high: quantile((1 + level) / 2) };
}

// How many times each block is taken in each replicate: per stratum, as many draws with replacement as it has blocks.
function* blockDraws(layout: BlockLayout, opts: BootstrapOptions): Generator<Int32Array> {
  if (!Number.isInteger(opts.replicates) || opts.replicates < 1)
    throw new Error(`bootstrap: replicates must be an integer >= 1, got ${opts.replicates}`);
  const rng = new Rng(opts.seed);
  for (let r = 0; r < opts.replicates; r++) {
    const taken = new Int32Array(layout.blocks);
    for (const own of layout.strata)
      for (let i = 0; i < own.length; i++) taken[own[rng.int(own.length)]!]! += 1;
    yield taken;
  }
}

/** Per-block sums of feature rows, centred on the mean of all rows (keeps the second moments well conditioned). */
export interface FeatureBlockSums {
  readonly dim: number;
  /** Rows in each block. */
  readonly rows: Int32Array;
  /** Mean of all rows. */
  readonly centre: Float64Array;
  /** [blocks, dim]: each block's sum of x - centre. */
  readonly sums: Float64Array;
  /** [blocks, dim (dim + 1) / 2]: each block's sum of (x - centre)(x - centre)^T, upper triangle row by row. */
  readonly products: Float64Array;
}

/** Sums the rows of row-major [count, dim] features per block of `layout`. */
export function featureBlockSums(
  features: FeatureArray,
  count: number,
  dim: number,
  layout: BlockLayout,
): FeatureBlockSums {
  const x = toFloat64Features(features, count, dim, 'featureBlockSums');
  if (layout.blockOfRow.length !== count)
    throw new Error(
      `featureBlockSums: the layout has ${layout.blockOfRow.length} rows, the features ${count}`,
    );
  const packed = (dim * (dim + 1)) / 2;
  const centre = new Float64Array(dim);
  for (let r = 0; r < count; r++) for (let j = 0; j < dim; j++) centre[j] = centre[j]! + x[r * dim + j]!;
  for (let j = 0; j < dim; j++) centre[j] = centre[j]! / count;
  const rows = new Int32Array(layout.blocks);
  const sums = new Float64Array(layout.blocks * dim);
  const products = new Float64Array(layout.blocks * packed);
  const centred = new Float64Array(dim);
  for (let r = 0; r < count; r++) {
    const block = layout.blockOfRow[r]!;
    rows[block]! += 1;
    for (let j = 0; j < dim; j++) {
      centred[j] = x[r * dim + j]! - centre[j]!;
      sums[block * dim + j]! += centred[j]!;
    }
    let at = block * packed;
    for (let i = 0; i < dim; i++) {
      const ci = centred[i]!;
      for (let j = i; j < dim; j++) products[at++]! += ci * centred[j]!;
    }
  }
  return { dim, rows, centre, sums, products };
}

/** Mean and unbiased covariance of the rows of the blocks, block b taken `taken[b]` times (at least 2 rows). */
export function statsOfBlocks(blockSums: FeatureBlockSums, taken: ArrayLike<number>): FeatureStats {
  const { dim, rows, centre, sums, products } = blockSums;
  if (taken.length !== rows.length)
    throw new Error(`statsOfBlocks: ${taken.length} block counts for ${rows.length} blocks`);
  const packed = (dim * (dim + 1)) / 2;
  let n = 0;
  const sum = new Float64Array(dim);
  const product = new Float64Array(packed);
  for (let b = 0; b < rows.length; b++) {
    const times = taken[b]!;
    if (times === 0) continue;
    n += times * rows[b]!;
    for (let j = 0; j < dim; j++) sum[j] = sum[j]! + times * sums[b * dim + j]!;
    const base = b * packed;
    for (let k = 0; k < packed; k++) product[k] = product[k]! + times * products[base + k]!;
  }
  if (n < 2) throw new Error(`statsOfBlocks: the blocks taken hold ${n} rows; a covariance needs 2`);
  const shift = sum.map((v) => v / n); // mean - centre
  const cov = new Float64Array(dim * dim);
  let k = 0;
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const value = (product[k++]! - n * shift[i]! * shift[j]!) / (n - 1);
      cov[i * dim + j] = value;
      cov[j * dim + i] = value;
    }
  }
  return { mu: centre.map((c, j) => c + shift[j]!), cov, n };
}

/** A FID bootstrap: replicates shifted by `bias`, the bootstrap's estimate of the small-sample bias. */
export interface FidBootstrap extends BootstrapInterval {
  /** Mean of the raw replicate FIDs minus the full-sample FID. */
  readonly bias: number;
}

/**
 * Bootstrap of the FID of generated features [count, dim] against fixed reference statistics (the reference's own
 * sampling noise is not resampled). FID is biased upward at finite sample counts, and resampling adds that bias a
 * second time (repeated rows are extra noise in the mean and covariance): in 64 or more dimensions at a few
 * thousand samples the raw replicates all lie above the full-sample FID. So the replicates are shifted by the
 * bootstrap estimate of the bias (their mean minus the full-sample FID), and the percentile interval describes how
 * much the FID at this sample count varies, centred on the reported value.
 */
export function fidBootstrap(
  features: FeatureArray,
  count: number,
  dim: number,
  reference: FeatureStats,
  opts: BootstrapOptions,
): FidBootstrap {
  if (reference.mu.length !== dim)
    throw new Error(`fidBootstrap: features have ${dim} dimensions, the reference ${reference.mu.length}`);
  const layout = blockLayout(count, opts.blocks, opts.strata);
  const blockSums = featureBlockSums(features, count, dim, layout);
  const referenceRoot = sqrtmPsd(reference.cov, dim); // factored once for every replicate
  const fidOf = (taken: ArrayLike<number>): number => {
    const stats = statsOfBlocks(blockSums, taken);
    return frechetDistanceWithRoot(reference.mu, reference.cov, referenceRoot, stats.mu, stats.cov);
  };
  const full = fidOf(new Int32Array(layout.blocks).fill(1));
  const raw = Array.from(blockDraws(layout, opts), fidOf);
  const mean = raw.reduce((sum, fid) => sum + fid, 0) / raw.length;
  const bias = mean - full;
  // Centred on the FID (the bias shift) and widened for the resampled blocks' count (`spread`); FID stays >= 0.
  const replicates = raw.map((fid) => Math.max(0, full + layout.spread * (fid - mean)));
  return { replicates, ...percentileInterval(replicates), bias };
}

/**
 * Bootstrap of the class accuracy with the block draws of `fidBootstrap` (same options: same blocks), from the
 * number of correct predictions per block.
 */
export function classAccuracyBootstrap(
  predicted: Int32Array,
  asked: Int32Array,
  opts: BootstrapOptions,
): BootstrapInterval {
  checkLabels(predicted, asked, 'classAccuracyBootstrap');
  const layout = blockLayout(predicted.length, opts.blocks, opts.strata);
  const rows = new Int32Array(layout.blocks);
  const correct = new Int32Array(layout.blocks);
  for (let i = 0; i < predicted.length; i++) {
    const block = layout.blockOfRow[i]!;
    rows[block]! += 1;
    if (predicted[i] === asked[i]) correct[block]! += 1;
  }
  const raw: number[] = [];
  for (const taken of blockDraws(layout, opts)) {
    let hits = 0;
    let total = 0;
    taken.forEach((times, b) => {
      hits += times * correct[b]!;
      total += times * rows[b]!;
    });
    raw.push(hits / total);
  }
  const mean = raw.reduce((sum, v) => sum + v, 0) / raw.length;
  const replicates = raw.map((v) => Math.min(1, Math.max(0, mean + layout.spread * (v - mean))));
  return { replicates, ...percentileInterval(replicates) };
}
