// Tests for the dense linear algebra behind the evaluation metrics.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import {
  applyToEigenvalues,
  matMul,
  meanAndCovariance,
  rowDots,
  rowSquaredNorms,
  sqrtmPsd,
  symmetricEigen,
  symmetricEigenvalues,
  trace,
} from './linalg.js';

function randomSymmetric(rng: Rng, n: number): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const value = rng.normal();
      a[i * n + j] = value;
      a[j * n + i] = value;
    }
  }
  return a;
}

/** B B^T for a random [n, rank] B: symmetric PSD with rank min(n, rank). */
function randomPsd(rng: Rng, n: number, rank: number): Float64Array {
  const b = Float64Array.from({ length: n * rank }, () => rng.normal());
  const bt = new Float64Array(rank * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < rank; j++) bt[j * n + i] = b[i * rank + j]!;
  return matMul(b, bt, n, rank, n);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe('symmetricEigen', () => {
  it('reconstructs random symmetric matrices with orthonormal eigenvectors', () => {
    const rng = new Rng(1);
    for (const n of [1, 2, 3, 7, 40]) {
      const a = randomSymmetric(rng, n);
      const eigen = symmetricEigen(a, n);
      assert.ok(
        maxAbsDiff(
          applyToEigenvalues(eigen, (v) => v),
          a,
        ) < 1e-12,
        `reconstruction at n=${n}`,
      );
      const vvt = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += eigen.vectors[i * n + k]! * eigen.vectors[j * n + k]!;
          vvt[i * n + j] = s;
        }
      }
      const identity = Float64Array.from({ length: n * n }, (_, idx) => (idx % (n + 1) === 0 ? 1 : 0));
      assert.ok(maxAbsDiff(vvt, identity) < 1e-12, `orthonormality at n=${n}`);
      for (let k = 1; k < n; k++) assert.ok(eigen.values[k - 1]! <= eigen.values[k]!, 'ascending order');
    }
  });

  it('finds known eigenpairs', () => {
    // [[2, 1], [1, 2]] has eigenvalues 1 (vector (1, -1)/sqrt 2) and 3 (vector (1, 1)/sqrt 2).
    const { values, vectors } = symmetricEigen(Float64Array.of(2, 1, 1, 2), 2);
    assert.ok(maxAbsDiff(values, [1, 3]) < 1e-14);
    assert.ok(Math.abs(Math.abs(vectors[0]! * vectors[1]!) - 0.5) < 1e-14);
    assert.ok(vectors[0]! * vectors[1]! < 0, 'eigenvalue 1 has vector (1, -1)');
    const diagonal = symmetricEigen(Float64Array.of(5, 0, 0, 0, -1, 0, 0, 0, 2), 3);
    assert.deepEqual(Array.from(diagonal.values), [-1, 2, 5]);
  });

  it('handles repeated and zero eigenvalues', () => {
    assert.deepEqual(Array.from(symmetricEigen(new Float64Array(16), 4).values), [0, 0, 0, 0]);
    const rng = new Rng(2);
    const psd = randomPsd(rng, 30, 5);
    const eigen = symmetricEigen(psd, 30);
    assert.ok(
      maxAbsDiff(
        applyToEigenvalues(eigen, (v) => v),
        psd,
      ) < 1e-11,
    );
    const scale = eigen.values[29]!;
    for (let k = 0; k < 25; k++)
      assert.ok(Math.abs(eigen.values[k]!) < 1e-12 * scale, `null-space value ${k}`);
  });

  it('reads only the symmetric part and leaves its input untouched', () => {
    const a = Float64Array.of(1, 4, 0, 1); // symmetric part [[1, 2], [2, 1]]: eigenvalues -1 and 3
    const { values } = symmetricEigen(a, 2);
    assert.ok(maxAbsDiff(values, [-1, 3]) < 1e-14);
    assert.deepEqual(Array.from(a), [1, 4, 0, 1]);
  });

  it('rejects wrong sizes and non-finite entries', () => {
    assert.throws(() => symmetricEigen(new Float64Array(5), 2), /expected 2x2 = 4 entries, got 5/);
    assert.throws(
      () => symmetricEigen(Float64Array.of(1, Number.NaN, Number.NaN, 1), 2),
      /entry \(0, 1\) is NaN/,
    );
  });
});

describe('symmetricEigenvalues', () => {
  it('gives exactly the values of symmetricEigen, without the vectors', () => {
    const rng = new Rng(3);
    for (const n of [1, 2, 5, 40]) {
      const a = randomSymmetric(rng, n);
      assert.deepEqual(symmetricEigenvalues(a, n), symmetricEigen(a, n).values, `n=${n}`);
    }
    const psd = randomPsd(rng, 30, 5);
    assert.deepEqual(symmetricEigenvalues(psd, 30), symmetricEigen(psd, 30).values, 'rank-deficient PSD');
    assert.throws(() => symmetricEigenvalues(new Float64Array(3), 2), /symmetricEigenvalues: expected 2x2/);
  });
});

describe('sqrtmPsd', () => {
  it('squares back to the input for full-rank and rank-deficient PSD matrices', () => {
    const rng = new Rng(3);
    for (const [n, rank] of [
      [1, 1],
      [6, 6],
      [20, 4],
    ] as const) {
      const a = randomPsd(rng, n, rank);
      const root = sqrtmPsd(a, n);
      assert.ok(maxAbsDiff(matMul(root, root, n, n, n), a) < 1e-10, `n=${n}, rank=${rank}`);
      const rootT = Float64Array.from(root, (_, idx) => root[(idx % n) * n + Math.floor(idx / n)]!);
      assert.ok(maxAbsDiff(root, rootT) < 1e-12, 'symmetric');
      assert.ok(symmetricEigen(root, n).values[0]! > -1e-10, 'positive semi-definite');
    }
  });

  it('takes element-wise roots of a diagonal and clamps round-off negatives', () => {
    assert.ok(maxAbsDiff(sqrtmPsd(Float64Array.of(4, 0, 0, 9), 2), [2, 0, 0, 3]) < 1e-15);
    assert.ok(maxAbsDiff(sqrtmPsd(Float64Array.of(4, 0, 0, -1e-18), 2), [2, 0, 0, 0]) < 1e-15);
  });
});

describe('meanAndCovariance', () => {
  it('matches a hand-computed example with the unbiased n-1 normaliser', () => {
    // Rows (1, 2), (3, 4), (5, 9): mean (3, 5); deviations (-2, -3), (0, -1), (2, 4).
    // cov = [[8, 14], [14, 26]] / 2.
    const { mean, cov } = meanAndCovariance(Float32Array.of(1, 2, 3, 4, 5, 9), 3, 2);
    assert.deepEqual(Array.from(mean), [3, 5]);
    assert.deepEqual(Array.from(cov), [4, 7, 7, 13]);
  });

  it('accumulates in float64 for large offsets', () => {
    const n = 1000;
    const x = Float64Array.from({ length: n }, (_, i) => 1e6 + (i % 2)); // variance 0.25 * n / (n - 1)
    const { cov } = meanAndCovariance(x, n, 1);
    assert.ok(Math.abs(cov[0]! - (0.25 * n) / (n - 1)) < 1e-9);
  });

  it('rejects too few rows, wrong lengths and NaN with the location', () => {
    assert.throws(() => meanAndCovariance(new Float32Array(2), 1, 2), /at least 2 rows/);
    assert.throws(
      () => meanAndCovariance(new Float32Array(5), 3, 2),
      /expected n\*d = 3\*2 = 6 values, got 5/,
    );
    assert.throws(() => meanAndCovariance(Float32Array.of(0, 0, 0, Number.NaN), 2, 2), /row 1, column 1/);
  });
});

describe('small helpers', () => {
  it('matMul and trace agree with hand computation', () => {
    // [[1, 2, 3], [4, 5, 6]] x [[1, 0], [0, 1], [1, 1]] = [[4, 5], [10, 11]]
    const product = matMul(Float64Array.of(1, 2, 3, 4, 5, 6), Float64Array.of(1, 0, 0, 1, 1, 1), 2, 3, 2);
    assert.deepEqual(Array.from(product), [4, 5, 10, 11]);
    assert.equal(trace(product, 2), 15);
    assert.throws(() => matMul(new Float64Array(6), new Float64Array(5), 2, 3, 2), /do not match/);
  });

  it('rowDots matches naive dot products for ragged tile edges and offsets', () => {
    const rng = new Rng(4);
    const d = 5;
    const a = Float64Array.from({ length: 11 * d }, () => rng.normal());
    const b = Float64Array.from({ length: 9 * d }, () => rng.normal());
    for (const [aStart, aRows, bStart, bRows] of [
      [0, 11, 0, 9],
      [2, 7, 1, 5],
      [3, 1, 8, 1],
    ] as const) {
      const out = new Float64Array(aRows * bRows);
      rowDots(a, aStart, aRows, b, bStart, bRows, d, out);
      for (let i = 0; i < aRows; i++) {
        for (let j = 0; j < bRows; j++) {
          let s = 0;
          for (let t = 0; t < d; t++) s += a[(aStart + i) * d + t]! * b[(bStart + j) * d + t]!;
          assert.ok(Math.abs(out[i * bRows + j]! - s) < 1e-12, `(${i}, ${j}) of ${aRows}x${bRows}`);
        }
      }
    }
    assert.deepEqual(Array.from(rowSquaredNorms(Float64Array.of(3, 4, 1, 0), 2, 2)), [25, 1]);
  });
});
