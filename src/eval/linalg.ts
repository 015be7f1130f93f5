// Dense float64 linear algebra for the evaluation metrics: symmetric eigensolver (Householder + implicit QR),
// PSD matrix square root, feature mean/covariance and a blocked row-dot kernel. Matrices are row-major.

/** Features as rows of a row-major [n, d] array. */
export type FeatureArray = Float32Array | Float64Array;

/** Eigenvalues in ascending order; row k of `vectors` ([n, n] row-major) is the unit eigenvector of `values[k]`. */
export interface SymmetricEigen {
  readonly values: Float64Array;
  readonly vectors: Float64Array;
}

const EPS = Number.EPSILON;
const MAX_QR_ITERATIONS_PER_VALUE = 60;

function checkSquare(a: Float64Array, n: number, name: string): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: size must be a positive integer, got ${n}`);
  if (a.length !== n * n) {
    throw new Error(
      `${name}: expected ${n}x${n} = ${n * n} entries, got ${a.length}; pass a row-major square matrix`,
    );
  }
}

// ---
// Householder reduction to tridiagonal form: A = Q T Q^T. Returns T's diagonal and sub-diagonal
// (off[i] couples i and i+1) and, when `withQ`, Q^T, whose rows are later rotated into eigenvectors.

function tridiagonalize(
  a: Float64Array,
  n: number,
  withQ: boolean,
): { diag: Float64Array; off: Float64Array; qt: Float64Array | undefined } {
  const diag = new Float64Array(n);
  const off = new Float64Array(Math.max(n - 1, 0));
  const reflectors: { v: Float64Array; beta: number }[] = [];
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    const o = k + 1; // the reflector acts on indices o..n-1
    const m = n - o;
    const v = new Float64Array(m);
    let tail = 0;
    for (let i = 0; i < m; i++) {
      v[i] = a[(o + i) * n + k]!;
      if (i > 0) tail += v[i]! * v[i]!;
    }
    const x0 = v[0]!;
    if (tail === 0) {
      // Column already tridiagonal: identity reflector.
      off[k] = x0;
      reflectors.push({ v, beta: 0 });
      continue;
    }
    const alpha = (x0 >= 0 ? -1 : 1) * Math.sqrt(x0 * x0 + tail); // sign opposite x0 avoids cancellation
    v[0] = x0 - alpha;
    const beta = 2 / (v[0]! * v[0]! + tail);
    // B <- H B H with H = I - beta v v^T, via p = beta B v, w = p - (beta/2)(v.p) v, B -= v w^T + w v^T.
    let vp = 0;
    for (let i = 0; i < m; i++) {
      const row = (o + i) * n + o;
      // Four partial sums: independent additions keep the multiply-add units busy (the O(n^3) hot loop).
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let j = 0;
      for (; j + 3 < m; j += 4) {
        s0 += a[row + j]! * v[j]!;
        s1 += a[row + j + 1]! * v[j + 1]!;
        s2 += a[row + j + 2]! * v[j + 2]!;
        s3 += a[row + j + 3]! * v[j + 3]!;
      }
      for (; j < m; j++) s0 += a[row + j]! * v[j]!;
      p[i] = beta * (s0 + s1 + s2 + s3);
      vp += v[i]! * p[i]!;
    }
    const half = 0.5 * beta * vp;
    for (let i = 0; i < m; i++) p[i] = p[i]! - half * v[i]!; // p now holds w
    for (let i = 0; i < m; i++) {
      const row = (o + i) * n + o;
      const vi = v[i]!;
      const wi = p[i]!;
      for (let j = 0; j < m; j++) a[row + j] = a[row + j]! - vi * p[j]! - wi * v[j]!;
    }
    off[k] = alpha;
    reflectors.push({ v, beta });
  }
  for (let i = 0; i < n; i++) diag[i] = a[i * n + i]!;
  if (n >= 2) off[n - 2] = a[(n - 1) * n + n - 2]!;
  if (!withQ) return { diag, off, qt: undefined };

  // Q^T = H_{n-3} ... H_0, built right to left so each product only touches its trailing block.
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; i++) qt[i * n + i] = 1;
  for (let k = reflectors.length - 1; k >= 0; k--) {
    const { v, beta } = reflectors[k]!;
    if (beta === 0) continue;
    const o = k + 1;
    for (let r = o; r < n; r++) {
      const row = r * n + o;
      let s = 0;
      for (let j = 0; j < v.length; j++) s += qt[row + j]! * v[j]!;
      s *= beta;
      for (let j = 0; j < v.length; j++) qt[row + j] = qt[row + j]! - s * v[j]!;
    }
  }
  return { diag, off, qt };
}

// ---
// Implicit symmetric QR with Wilkinson shift on the tridiagonal (Golub & Van Loan, Alg. 8.3.2/8.3.3).
// Each sweep chases a bulge down the unreduced block [lo, hi]; rotations are applied to the rows of vt.

function rotateRows(vt: Float64Array, n: number, k: number, c: number, s: number): void {
  const r0 = k * n;
  const r1 = r0 + n;
  for (let j = 0; j < n; j++) {
    const x = vt[r0 + j]!;
    const y = vt[r1 + j]!;
    vt[r0 + j] = c * x + s * y;
    vt[r1 + j] = c * y - s * x;
  }
}

function qrSweep(
  diag: Float64Array,
  off: Float64Array,
  vt: Float64Array | undefined,
  n: number,
  lo: number,
  hi: number,
): void {
  // 1. Wilkinson shift: the eigenvalue of the trailing 2x2 closer to diag[hi].
  const delta = 0.5 * (diag[hi - 1]! - diag[hi]!);
  const b = off[hi - 1]!;
  const shift = diag[hi]! - (b * b) / (delta + (delta >= 0 ? 1 : -1) * Math.hypot(delta, b));
  // 2. Chase the bulge: rotation k zeroes (x, z) -> (r, 0) in column k-1 (or starts the shift at k = lo).
  let x = diag[lo]! - shift;
  let z = off[lo]!;
  for (let k = lo; k < hi; k++) {
    const r = Math.hypot(x, z);
    const c = r === 0 ? 1 : x / r;
    const s = r === 0 ? 0 : z / r;
    if (k > lo) off[k - 1] = r;
    const dk = diag[k]!;
    const dk1 = diag[k + 1]!;
    const e = off[k]!;
    diag[k] = c * c * dk + 2 * c * s * e + s * s * dk1;
    diag[k + 1] = s * s * dk - 2 * c * s * e + c * c * dk1;
    off[k] = c * s * (dk1 - dk) + (c * c - s * s) * e;
    if (k + 1 < hi) {
      const f = off[k + 1]!;
      z = s * f; // the new bulge at (k+2, k)
      off[k + 1] = c * f;
      x = off[k]!;
    }
    if (vt !== undefined) rotateRows(vt, n, k, c, s);
  }
}

/**
 * Eigendecomposition of a symmetric matrix (only its symmetric part (A + A^T)/2 is used; `a` is not modified).
 * Householder tridiagonalisation then implicit-shift QR: O(n^3), tens of milliseconds at n = 128.
 */
export function symmetricEigen(a: Float64Array, n: number): SymmetricEigen {
  const { diag, qt } = tridiagonalQr(a, n, true, 'symmetricEigen');
  // Sort ascending, carrying the eigenvector rows along.
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => diag[i]! - diag[j]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((from, to) => {
    values[to] = diag[from]!;
    vectors.set(qt!.subarray(from * n, from * n + n), to * n);
  });
  return { values, vectors };
}

/**
 * Eigenvalues (ascending) of a symmetric matrix, as `symmetricEigen` finds them but without building the
 * eigenvectors: several times faster, which matters where FIDs are computed by the hundred (bootstraps).
 */
export function symmetricEigenvalues(a: Float64Array, n: number): Float64Array {
  return tridiagonalQr(a, n, false, 'symmetricEigenvalues').diag.sort();
}

// Tridiagonalises the symmetric part of `a`, then runs QR sweeps until every off-diagonal entry deflates;
// returns the eigenvalues on `diag` (unsorted) and, when `withVectors`, the eigenvectors as the rows of `qt`.
function tridiagonalQr(
  a: Float64Array,
  n: number,
  withVectors: boolean,
  name: string,
): { diag: Float64Array; qt: Float64Array | undefined } {
  checkSquare(a, n, name);
  const work = new Float64Array(n * n);
  let norm = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const value = 0.5 * (a[i * n + j]! + a[j * n + i]!);
      if (!Number.isFinite(value))
        throw new Error(`${name}: entry (${i}, ${j}) is ${value}; expected finite`);
      work[i * n + j] = value;
      norm = Math.max(norm, Math.abs(value));
    }
  }
  const { diag, off, qt } = tridiagonalize(work, n, withVectors);
  const floor = EPS * EPS * norm; // absolute deflation floor for blocks of (near-)zero eigenvalues
  const negligible = (i: number): boolean =>
    Math.abs(off[i]!) <= EPS * (Math.abs(diag[i]!) + Math.abs(diag[i + 1]!)) || Math.abs(off[i]!) <= floor;
  let hi = n - 1;
  let sweeps = 0;
  while (hi > 0) {
    if (negligible(hi - 1)) {
      off[hi - 1] = 0;
      hi--;
      sweeps = 0;
      continue;
    }
    let lo = hi - 1;
    while (lo > 0 && !negligible(lo - 1)) lo--;
    if (lo > 0) off[lo - 1] = 0;
    if (++sweeps > MAX_QR_ITERATIONS_PER_VALUE) {
      throw new Error(`${name}: QR did not converge for eigenvalue ${hi} of ${n}; is the matrix finite?`);
    }
    qrSweep(diag, off, qt, n, lo, hi);
  }
  return { diag, qt };
}

/** V f(Λ) V^T for an eigendecomposition: applies `f` to each eigenvalue. */
export function applyToEigenvalues(eigen: SymmetricEigen, f: (value: number) => number): Float64Array {
  const n = eigen.values.length;
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const fk = f(eigen.values[k]!);
    if (fk === 0) continue;
    const row = k * n;
    for (let i = 0; i < n; i++) {
      const vi = fk * eigen.vectors[row + i]!;
      if (vi === 0) continue;
      const outRow = i * n;
      for (let j = 0; j < n; j++) out[outRow + j] = out[outRow + j]! + vi * eigen.vectors[row + j]!;
    }
  }
  return out;
}

/** Principal square root of a symmetric PSD matrix; eigenvalues below zero (round-off) are clamped to 0. */
export function sqrtmPsd(a: Float64Array, n: number): Float64Array {
  return applyToEigenvalues(symmetricEigen(a, n), (value) => Math.sqrt(Math.max(value, 0)));
}

/** Product of row-major [rows, inner] and [inner, cols] matrices. */
export function matMul(
  a: Float64Array,
  b: Float64Array,
  rows: number,
  inner: number,
  cols: number,
): Float64Array {
  if (a.length !== rows * inner || b.length !== inner * cols) {
    throw new Error(
      `matMul: shapes [${rows}, ${inner}] x [${inner}, ${cols}] do not match ${a.length} and ${b.length}`,
    );
  }
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const outRow = i * cols;
    for (let k = 0; k < inner; k++) {
      const aik = a[i * inner + k]!;
      if (aik === 0) continue;
      const bRow = k * cols;
      for (let j = 0; j < cols; j++) out[outRow + j] = out[outRow + j]! + aik * b[bRow + j]!;
    }
  }
  return out;
}

/**
 * S M S for symmetric [n, n] S and M (M's symmetric part), as two passes of the row-dot kernel: with both
 * factors symmetric every product is rows against rows, several times faster than `matMul`.
 */
export function symmetricSandwich(s: Float64Array, m: Float64Array, n: number): Float64Array {
  checkSquare(s, n, 'symmetricSandwich');
  checkSquare(m, n, 'symmetricSandwich');
  const sm = new Float64Array(n * n);
  rowDots(s, 0, n, m, 0, n, n, sm); // (S M^T)_ij = s_i . m_j
  const out = new Float64Array(n * n);
  rowDots(sm, 0, n, s, 0, n, n, out); // (S M^T S)_ij = (SM^T)_i . s_j
  return out;
}

/** Sum of the diagonal of a row-major [n, n] matrix. */
export function trace(a: Float64Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i * n + i]!;
  return sum;
}

/** Checks that `x` holds n*d finite values and returns a float64 copy (or `x` itself if already float64). */
export function toFloat64Features(x: FeatureArray, n: number, d: number, name: string): Float64Array {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(d) || d < 1) {
    throw new Error(`${name}: n and d must be positive integers, got n=${n}, d=${d}`);
  }
  if (x.length !== n * d) {
    throw new Error(
      `${name}: expected n*d = ${n}*${d} = ${n * d} values, got ${x.length}; pass row-major [n, d]`,
    );
  }
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) {
      throw new Error(
        `${name}: value ${x[i]} at row ${Math.floor(i / d)}, column ${i % d}; features must be finite`,
      );
    }
  }
  return x instanceof Float64Array ? x : Float64Array.from(x);
}

/** Mean [d] and unbiased (n-1) covariance [d, d] of row-major [n, d] features, accumulated in float64. */
export function meanAndCovariance(
  x: FeatureArray,
  n: number,
  d: number,
): { mean: Float64Array; cov: Float64Array } {
  if (n < 2)
    throw new Error(`meanAndCovariance: need at least 2 rows for an unbiased covariance, got n=${n}`);
  const rows = toFloat64Features(x, n, d, 'meanAndCovariance');
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) mean[j] = mean[j]! + rows[r * d + j]!;
  for (let j = 0; j < d; j++) mean[j] = mean[j]! / n;
  // Upper triangle of sum (x - mean)(x - mean)^T, one centred row at a time, then mirrored.
  const cov = new Float64Array(d * d);
  const centred = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < d; j++) centred[j] = rows[r * d + j]! - mean[j]!;
    for (let i = 0; i < d; i++) {
      const ci = centred[i]!;
      const covRow = i * d;
      for (let j = i; j < d; j++) cov[covRow + j] = cov[covRow + j]! + ci * centred[j]!;
    }
  }
  for (let i = 0; i < d; i++) {
    for (let j = i; j < d; j++) {
      const value = cov[i * d + j]! / (n - 1);
      cov[i * d + j] = value;
      cov[j * d + i] = value;
    }
  }
  return { mean, cov };
}

/** Squared Euclidean norm of each row of a row-major [n, d] float64 array. */
export function rowSquaredNorms(x: Float64Array, n: number, d: number): Float64Array {
  const out = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += x[r * d + j]! * x[r * d + j]!;
    out[r] = s;
  }
  return out;
}

/**
 * Dot products of rows aStart..aStart+aRows-1 of `a` with rows bStart..bStart+bRows-1 of `b` (both [*, d]),
 * written to out[i * bRows + j]. A 4 x 2 register tile lets each loaded value feed several products.
 */
export function rowDots(
  a: Float64Array,
  aStart: number,
  aRows: number,
  b: Float64Array,
  bStart: number,
  bRows: number,
  d: number,
  out: Float64Array,
): void {
  const fullA = aRows - (aRows % 4);
  const fullB = bRows - (bRows % 2);
  for (let i = 0; i < fullA; i += 4) {
    const a0 = (aStart + i) * d;
    const a1 = a0 + d;
    const a2 = a1 + d;
    const a3 = a2 + d;
    for (let j = 0; j < fullB; j += 2) {
      const b0 = (bStart + j) * d;
      const b1 = b0 + d;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      let s20 = 0;
      let s21 = 0;
      let s30 = 0;
      let s31 = 0;
      for (let t = 0; t < d; t++) {
        const y0 = b[b0 + t]!;
        const y1 = b[b1 + t]!;
        const x0 = a[a0 + t]!;
        const x1 = a[a1 + t]!;
        const x2 = a[a2 + t]!;
        const x3 = a[a3 + t]!;
        s00 += x0 * y0;
        s01 += x0 * y1;
        s10 += x1 * y0;
        s11 += x1 * y1;
        s20 += x2 * y0;
        s21 += x2 * y1;
        s30 += x3 * y0;
        s31 += x3 * y1;
      }
      const o = i * bRows + j;
      out[o] = s00;
      out[o + 1] = s01;
      out[o + bRows] = s10;
      out[o + bRows + 1] = s11;
      out[o + 2 * bRows] = s20;
      out[o + 2 * bRows + 1] = s21;
      out[o + 3 * bRows] = s30;
      out[o + 3 * bRows + 1] = s31;
    }
  }
  // Edges: leftover rows of `a` against all of `b`, and leftover rows of `b` against the tiled rows of `a`.
  const single = (i: number, j: number): void => {
    const ai = (aStart + i) * d;
    const bj = (bStart + j) * d;
    let s = 0;
    for (let t = 0; t < d; t++) s += a[ai + t]! * b[bj + t]!;
    out[i * bRows + j] = s;
  };
  for (let i = fullA; i < aRows; i++) for (let j = 0; j < bRows; j++) single(i, j);
  for (let i = 0; i < fullA; i++) for (let j = fullB; j < bRows; j++) single(i, j);
}
