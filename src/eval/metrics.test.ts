// Tests for FID-like, KID, precision/recall and class-accuracy metrics against closed forms and constructions.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import { matMul } from './linalg.js';
import {
  blockLayout,
  classAccuracy,
  classAccuracyBootstrap,
  featureBlockSums,
  featureStats,
  featureStatsFromJson,
  featureStatsFromTensors,
  featureStatsToJson,
  featureStatsToTensors,
  fidBootstrap,
  frechetDistance,
  frechetDistanceFromStats,
  kid,
  percentileInterval,
  precisionRecall,
  statsOfBlocks,
} from './metrics.js';

const identity = (d: number): Float64Array =>
  Float64Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? 1 : 0));
const diagonal = (values: number[]): Float64Array => {
  const d = values.length;
  const out = new Float64Array(d * d);
  values.forEach((v, i) => {
    out[i * d + i] = v;
  });
  return out;
};
const close = (actual: number, expected: number, tol: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (tol ${tol})`);

/** n rows of N(shift, I_d) in float32. */
function gaussianRows(rng: Rng, n: number, d: number, shift = 0): Float32Array {
  return rng.fillNormal(new Float32Array(n * d)).map((v) => v + shift);
}

describe('frechetDistance', () => {
  it('is zero between identical Gaussians', () => {
    const d = 6;
    close(
      frechetDistance(new Float64Array(d), identity(d), new Float64Array(d), identity(d)),
      0,
      1e-12,
      'N(0,I)',
    );
  });

  it('matches the closed form for diagonal covariances', () => {
    // sum (mu1 - mu2)^2 + sum (sqrt a - sqrt b)^2 = (1 + 4) + ((2 - 1)^2 + (3 - 0.5)^2 + 0) = 5 + 7.25
    const fd = frechetDistance(
      Float64Array.of(1, 0, 2),
      diagonal([4, 9, 1]),
      Float64Array.of(0, 0, 0),
      diagonal([1, 0.25, 1]),
    );
    close(fd, 12.25, 1e-12, 'diagonal');
  });

  it('matches the 2x2 closed form for non-commuting covariances', () => {
    // For 2x2 PSD M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); with M = C1^1/2 C2 C1^1/2:
    // tr M = tr(C1 C2) = 2*1 + 2*3 = 8 and det M = det C1 det C2 = 3 * 3, so tr sqrt(M) = sqrt(14).
    const c1 = Float64Array.of(2, 1, 1, 2);
    const c2 = Float64Array.of(1, 0, 0, 3);
    const expected = 4 + 4 - 2 * Math.sqrt(14) + 0.5 ** 2;
    close(
      frechetDistance(Float64Array.of(0.5, 0), c1, Float64Array.of(0, 0), c2),
      expected,
      1e-12,
      'non-commuting',
    );
  });

  it('is symmetric and rotation-invariant for random covariances', () => {
    const rng = new Rng(5);
    const d = 12;
    const randomCov = (): Float64Array => {
      const b = Float64Array.from({ length: d * d }, () => rng.normal());
      const bt = Float64Array.from(b, (_, i) => b[(i % d) * d + Math.floor(i / d)]!);
      return matMul(b, bt, d, d, d);
    };
    const [c1, c2] = [randomCov(), randomCov()];
    const [m1, m2] = [Float64Array.from({ length: d }, () => rng.normal()), new Float64Array(d)];
    const forward = frechetDistance(m1, c1, m2, c2);
    close(frechetDistance(m2, c2, m1, c1), forward, 1e-9 * forward, 'symmetry');
    // Orthogonal R from Gram-Schmidt; FD(R mu, R C R^T) = FD(mu, C).
    const r = Float64Array.from({ length: d * d }, () => rng.normal());
    for (let i = 0; i < d; i++) {
      for (let k = 0; k < i; k++) {
        let dot = 0;
        for (let t = 0; t < d; t++) dot += r[i * d + t]! * r[k * d + t]!;
        for (let t = 0; t < d; t++) r[i * d + t] = r[i * d + t]! - dot * r[k * d + t]!;
      }
      const norm = Math.hypot(...r.subarray(i * d, i * d + d));
      for (let t = 0; t < d; t++) r[i * d + t] = r[i * d + t]! / norm;
    }
    const rt = Float64Array.from(r, (_, i) => r[(i % d) * d + Math.floor(i / d)]!);
    const rotate = (c: Float64Array): Float64Array => matMul(matMul(r, c, d, d, d), rt, d, d, d);
    const rotated = frechetDistance(matMul(r, m1, d, d, 1), rotate(c1), m2, rotate(c2));
    close(rotated, forward, 1e-9 * forward, 'rotation invariance');
  });

  it('rejects mismatched shapes', () => {
    assert.throws(
      () => frechetDistance(new Float64Array(2), identity(2), new Float64Array(3), identity(3)),
      /differ/,
    );
    assert.throws(
      () => frechetDistance(new Float64Array(2), identity(3), new Float64Array(2), identity(2)),
      /cov1/,
    );
  });
});

describe('featureStats', () => {
  const rng = new Rng(6);
  const stats = featureStats(gaussianRows(rng, 50, 4), 50, 4);

  it('gives FD near zero for two large samples of one distribution and near |shift|^2 for a shift', () => {
    const a = featureStats(gaussianRows(rng, 4000, 3), 4000, 3);
    const b = featureStats(gaussianRows(rng, 4000, 3), 4000, 3);
    const shifted = featureStats(gaussianRows(rng, 4000, 3, 1), 4000, 3);
    assert.ok(frechetDistanceFromStats(a, b) < 0.02);
    close(frechetDistanceFromStats(a, shifted), 3, 0.2, 'shift of 1 in 3 dims');
  });

  it('round-trips through JSON exactly', () => {
    const back = featureStatsFromJson(JSON.parse(JSON.stringify(featureStatsToJson(stats))), 'stats.json');
    assert.deepEqual(back, stats);
  });

  it('round-trips through float32 tensor records to ~1e-13 relative, and loads plain float32 records', () => {
    const records = featureStatsToTensors(stats);
    const back = featureStatsFromTensors(records, 'ref.safetensors');
    assert.equal(back.n, 50);
    for (let i = 0; i < stats.cov.length; i++) close(back.cov[i]!, stats.cov[i]!, 1e-13, `cov[${i}]`);
    const { mu_residual: _m, cov_residual: _c, ...plain } = records;
    const coarse = featureStatsFromTensors(plain, 'ref.safetensors');
    assert.ok(
      coarse.cov.some((v, i) => v !== back.cov[i]),
      'residuals carry information',
    );
  });

  it('names the source and the problem in errors', () => {
    assert.throws(() => featureStatsFromJson({ n: 3, d: 2, mu: [0] }, 'ref.json'), /ref\.json: expected \{n/);
    assert.throws(
      () => featureStatsFromJson({ n: 3, d: 2, mu: [0, 0], cov: [1] }, 'ref.json'),
      /cov has 1 entries/,
    );
    assert.throws(() => featureStatsFromTensors({}, 'x.safetensors'), /x\.safetensors: feature stats need/);
  });
});

describe('kid', () => {
  it('equals the naive unbiased MMD^2 when one subset covers both sets', () => {
    const rng = new Rng(7);
    const [n, d] = [9, 3];
    const a = gaussianRows(rng, n, d);
    const b = gaussianRows(rng, n, d, 0.3);
    const k = (x: Float32Array, i: number, y: Float32Array, j: number): number => {
      let dot = 0;
      for (let t = 0; t < d; t++) dot += x[i * d + t]! * y[j * d + t]!;
      return (dot / d + 1) ** 3;
    };
    let xx = 0;
    let yy = 0;
    let xy = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (i !== j) xx += k(a, i, a, j);
        if (i !== j) yy += k(b, i, b, j);
        xy += k(a, i, b, j);
      }
    }
    const expected = (xx + yy) / (n * (n - 1)) - (2 * xy) / (n * n);
    const result = kid(a, b, n, n, d, { subsets: 3, subsetSize: n, seed: 1 });
    close(result.kid, expected, 1e-12 * Math.abs(expected), 'kid');
    close(result.kidStd, 0, 1e-12, 'std over identical subsets');
  });

  it('is near zero for one distribution, clearly positive for a shift, and seeded', () => {
    const rng = new Rng(8);
    const [n, d] = [300, 8];
    const a = gaussianRows(rng, n, d);
    const same = kid(a, gaussianRows(rng, n, d), n, n, d, { subsets: 20, subsetSize: 100, seed: 3 });
    const shifted = kid(a, gaussianRows(rng, n, d, 0.5), n, n, d, { subsets: 20, subsetSize: 100, seed: 3 });
    assert.ok(
      Math.abs(same.kid) < 3 * same.kidStd + 1e-3,
      `same distribution: ${same.kid} +- ${same.kidStd}`,
    );
    assert.ok(shifted.kid > 3 * shifted.kidStd, `shift: ${shifted.kid} +- ${shifted.kidStd}`);
    assert.ok(shifted.kid > 3 * (Math.abs(same.kid) + 3 * same.kidStd), 'shift stands out from the noise');
    const again = kid(a, gaussianRows(new Rng(9), n, d), n, n, d, { subsets: 2, subsetSize: 50, seed: 4 });
    const repeat = kid(a, gaussianRows(new Rng(9), n, d), n, n, d, { subsets: 2, subsetSize: 50, seed: 4 });
    assert.deepEqual(again, repeat);
  });

  it('rejects subsets smaller than two rows', () => {
    assert.throws(
      () => kid(new Float32Array(2), new Float32Array(4), 1, 2, 2, { seed: 0 }),
      /at least 2 rows/,
    );
  });
});

describe('precisionRecall', () => {
  it('gives 1, 1 for identical sets and 0, 0 for a far-away fake set', () => {
    const rng = new Rng(10);
    const real = gaussianRows(rng, 40, 3);
    assert.deepEqual(precisionRecall(real, real, 40, 40, 3), { precision: 1, recall: 1 });
    const far = gaussianRows(rng, 30, 3, 100);
    assert.deepEqual(precisionRecall(real, far, 40, 30, 3), { precision: 0, recall: 0 });
  });

  it('gives precision ~1 and recall ~0.5 when fakes cover one of two real clusters', () => {
    const rng = new Rng(11);
    const real = new Float32Array([...gaussianRows(rng, 100, 2), ...gaussianRows(rng, 100, 2, 50)]);
    const fake = gaussianRows(rng, 100, 2, 50);
    const { precision, recall } = precisionRecall(real, fake, 200, 100, 2);
    assert.ok(precision > 0.9, `precision ${precision}`);
    close(recall, 0.5, 0.05, 'recall');
  });

  it('matches a naive implementation across tile boundaries', () => {
    const rng = new Rng(12);
    const [n, m, d, k] = [300, 270, 4, 3];
    const real = gaussianRows(rng, n, d);
    const fake = gaussianRows(rng, m, d, 0.4);
    const dist = (x: Float32Array, i: number, y: Float32Array, j: number): number => {
      let s = 0;
      for (let t = 0; t < d; t++) s += (x[i * d + t]! - y[j * d + t]!) ** 2;
      return s;
    };
    const radii = (x: Float32Array, count: number): number[] =>
      Array.from({ length: count }, (_, i) => {
        const others = Array.from({ length: count }, (_, j) => (j === i ? Infinity : dist(x, i, x, j)));
        return others.sort((p, q) => p - q)[k - 1]!;
      });
    const [realRadii, fakeRadii] = [radii(real, n), radii(fake, m)];
    const inside = (count: number, test: (i: number) => boolean): number =>
      Array.from({ length: count }, (_, i) => test(i)).filter(Boolean).length / count;
    const precision = inside(m, (j) => realRadii.some((r, i) => dist(real, i, fake, j) <= r));
    const recall = inside(n, (i) => fakeRadii.some((r, j) => dist(real, i, fake, j) <= r));
    assert.deepEqual(precisionRecall(real, fake, n, m, d, k), { precision, recall });
    assert.ok(precision > 0 && precision < 1 && recall > 0 && recall < 1, 'a non-trivial case');
  });

  it('rejects sets too small for k', () => {
    assert.throws(() => precisionRecall(new Float32Array(6), new Float32Array(10), 3, 5, 2), /more than k=3/);
  });
});

describe('classAccuracy', () => {
  it('counts matching labels', () => {
    close(classAccuracy(Int32Array.of(1, 2, 3, 4), Int32Array.of(1, 2, 0, 4)), 0.75, 0, 'accuracy');
    assert.equal(classAccuracy(Int32Array.of(7), Int32Array.of(7)), 1);
    assert.throws(() => classAccuracy(Int32Array.of(1, 2), Int32Array.of(1)), /2 predicted and 1 asked/);
  });
});

describe('bootstrap intervals', () => {
  const d = 4;
  // A large N(0, I) reference; generated rows are shifted by 0.5 per dimension, so the FID is about 1.
  const reference = featureStats(gaussianRows(new Rng(20), 20000, d), 20000, d);

  it('splits rows into blocks of consecutive rows, each of one stratum', () => {
    assert.equal(blockLayout(2000, 100).blocks, 100);
    assert.equal(blockLayout(2001, 100).blocks, 96); // 21 rows each
    assert.equal(blockLayout(150, 100).blocks, 75);
    assert.equal(blockLayout(5, 100).blocks, 5);
    // Two strata, interleaved in pairs; blocks of ceil(10 / 4) = 3 rows fill per stratum: 3 + 2 rows each.
    const layout = blockLayout(10, 4, Int32Array.of(0, 0, 1, 1, 0, 0, 1, 1, 0, 1));
    assert.deepEqual([...layout.blockOfRow], [0, 0, 1, 1, 0, 2, 1, 3, 2, 3]);
    assert.deepEqual(layout.strata, [Int32Array.of(0, 2), Int32Array.of(1, 3)]);
    assert.throws(() => blockLayout(10, 0), /blocks must be an integer >= 1/);
    assert.throws(() => blockLayout(10, 2, new Int32Array(3)), /3 strata for 10 rows/);
  });

  it('widens replicates for the few blocks a stratum resamples: accuracy intervals as wide as the binomial', () => {
    // 2000 rows, 10 classes, 2 blocks per class: resampling 2 blocks understates the variance by half, which
    // sqrt(k / (k - 1)) undoes. Averaged over 12 data sets, the interval's width matches the binomial one.
    const n = 2000;
    const asked = Int32Array.from({ length: n }, (_, i) => Math.floor(i / 200));
    const binomialWidth = 2 * 1.96 * Math.sqrt((0.9 * 0.1) / n);
    const rng = new Rng(31);
    let widths = 0;
    for (let set = 0; set < 12; set++) {
      const predicted = asked.map((c) => (rng.uniform() < 0.9 ? c : (c + 1) % 10));
      const { low, high } = classAccuracyBootstrap(predicted, asked, {
        replicates: 400,
        blocks: 20,
        seed: set,
        strata: asked,
      });
      widths += (high - low) / 12;
    }
    assert.equal(blockLayout(n, 20, asked).spread, Math.SQRT2);
    assert.ok(Math.abs(widths / binomialWidth - 1) < 0.15, `width ${widths} vs binomial ${binomialWidth}`);
  });

  it('takes numpy-style percentiles', () => {
    const values = Array.from({ length: 101 }, (_, i) => 100 - i); // order does not matter
    const { low, high } = percentileInterval(values);
    close(low, 2.5, 1e-12, 'low');
    close(high, 97.5, 1e-12, 'high');
    assert.deepEqual(percentileInterval([3]), { low: 3, high: 3 });
    assert.throws(() => percentileInterval([]), /no values/);
  });

  it('block sums give the stats of the rows taken, each as often as its block (uneven last block)', () => {
    const [n, dim] = [23, 3];
    const rows = gaussianRows(new Rng(21), n, dim, 2);
    const sums = featureBlockSums(rows, n, dim, blockLayout(n, 5)); // blocks of 5, 5, 5, 5 and 3 rows
    assert.deepEqual([...sums.rows], [5, 5, 5, 5, 3]);
    const all = statsOfBlocks(sums, [1, 1, 1, 1, 1]);
    const direct = featureStats(rows, n, dim);
    for (let i = 0; i < dim * dim; i++) close(all.cov[i]!, direct.cov[i]!, 1e-12, `cov[${i}]`);
    for (let i = 0; i < dim; i++) close(all.mu[i]!, direct.mu[i]!, 1e-12, `mu[${i}]`);
    assert.equal(all.n, n);
    // Block 0 twice, block 2 once, block 4 three times, as explicit rows.
    const taken = [2, 0, 1, 0, 3];
    const picked: number[] = [];
    taken.forEach((times, b) => {
      for (let t = 0; t < times; t++)
        picked.push(...rows.subarray(b * 5 * dim, Math.min(n, b * 5 + 5) * dim));
    });
    const expected = featureStats(Float32Array.from(picked), picked.length / dim, dim);
    const resampled = statsOfBlocks(sums, taken);
    assert.equal(resampled.n, 5 * 2 + 5 + 3 * 3);
    for (let i = 0; i < dim * dim; i++)
      close(resampled.cov[i]!, expected.cov[i]!, 1e-12, `resampled cov[${i}]`);
    for (let i = 0; i < dim; i++) close(resampled.mu[i]!, expected.mu[i]!, 1e-12, `resampled mu[${i}]`);
  });

  it('a replicate taking every block once scores the full-sample FID', () => {
    const n = 300;
    const rows = gaussianRows(new Rng(22), n, d, 0.5);
    const full = frechetDistanceFromStats(featureStats(rows, n, d), reference);
    const once = frechetDistanceFromStats(
      statsOfBlocks(featureBlockSums(rows, n, d, blockLayout(n, 30)), new Array(30).fill(1)),
      reference,
    );
    close(once, full, 1e-10 * full, 'FID of the un-resampled blocks');
  });

  it('covers the full-sample FID, and narrows as 1/sqrt(N) (blocks of one row)', () => {
    const widths = [400, 3200].map((n) => {
      const rows = gaussianRows(new Rng(23), n, d, 0.5);
      const full = frechetDistanceFromStats(featureStats(rows, n, d), reference);
      const boot = fidBootstrap(rows, n, d, reference, { replicates: 200, blocks: n, seed: 1 });
      assert.equal(boot.replicates.length, 200);
      assert.ok(boot.low < full && full < boot.high, `N=${n}: [${boot.low}, ${boot.high}] misses ${full}`);
      const mean = boot.replicates.reduce((sum, v) => sum + v, 0) / 200;
      close(mean, full, 1e-9 * full, 'the shifted replicates centre on the full-sample FID');
      return boot.high - boot.low;
    });
    const ratio = widths[1]! / widths[0]!;
    assert.ok(
      ratio > 0.5 / Math.sqrt(8) && ratio < 1.6 / Math.sqrt(8),
      `width ratio ${ratio}, ~${1 / Math.sqrt(8)}`,
    );
  });

  it('in 64 dimensions, removes the bias that would put the raw interval above the FID it describes', () => {
    const [n, dim] = [1000, 64];
    const rng = new Rng(26);
    const wide = featureStats(gaussianRows(rng, 10000, dim), 10000, dim);
    const rows = gaussianRows(rng, n, dim, 0.2);
    const full = frechetDistanceFromStats(featureStats(rows, n, dim), wide);
    const boot = fidBootstrap(rows, n, dim, wide, { replicates: 100, blocks: 100, seed: 3 });
    assert.ok(boot.low + boot.bias > full, `raw interval [${boot.low + boot.bias}, ...] above ${full}`);
    assert.ok(boot.low < full && full < boot.high, `[${boot.low}, ${boot.high}] misses ${full}`);
  });

  it('is deterministic for a seed, and another seed draws other blocks', () => {
    const n = 200;
    const rows = gaussianRows(new Rng(24), n, d, 0.5);
    const opts = { replicates: 20, blocks: 100, seed: 5 };
    assert.deepEqual(fidBootstrap(rows, n, d, reference, opts), fidBootstrap(rows, n, d, reference, opts));
    const other = fidBootstrap(rows, n, d, reference, { ...opts, seed: 6 });
    assert.notDeepEqual(other.replicates, fidBootstrap(rows, n, d, reference, opts).replicates);
    assert.throws(
      () => fidBootstrap(rows, n, d, reference, { ...opts, replicates: 0 }),
      /replicates must be/,
    );
    assert.throws(
      () => fidBootstrap(rows, n, 2, reference, opts),
      /features have 2 dimensions, the reference 4/,
    );
  });

  it('keeps the strata: class-sorted rows of distant classes vary little when blocks stay in their class', () => {
    const n = 400;
    const classes = Int32Array.from({ length: n }, (_, i) => (i < n / 2 ? 0 : 1));
    const rng = new Rng(27);
    const rows = Float32Array.from(gaussianRows(rng, n, d), (v, i) => v + 4 * classes[Math.floor(i / d)]!);
    const opts = { replicates: 100, blocks: 20, seed: 4 };
    const width = (boot: { low: number; high: number }): number => boot.high - boot.low;
    const mixed = fidBootstrap(rows, n, d, reference, opts);
    const kept = fidBootstrap(rows, n, d, reference, { ...opts, strata: classes });
    assert.ok(width(kept) < width(mixed) / 3, `within classes ${width(kept)}, across ${width(mixed)}`);
  });

  it('gives a class-accuracy interval around the accuracy, from the counts per block', () => {
    const n = 1000;
    const rng = new Rng(25);
    const asked = Int32Array.from({ length: n }, (_, i) => i % 10);
    const predicted = asked.map((label) => (rng.uniform() < 0.9 ? label : (label + 1) % 10));
    const accuracy = classAccuracy(predicted, asked);
    const boot = classAccuracyBootstrap(predicted, asked, {
      replicates: 200,
      blocks: 100,
      seed: 2,
      strata: asked,
    });
    assert.ok(boot.low < accuracy && accuracy < boot.high, `[${boot.low}, ${boot.high}] misses ${accuracy}`);
    // Binomial standard error sqrt(0.9 * 0.1 / 1000) ~ 0.0095: the 95% interval spans about 4 of them.
    close(boot.high - boot.low, 4 * Math.sqrt((0.9 * 0.1) / n), 0.015, 'interval width');
    const perfect = classAccuracyBootstrap(asked, asked, { replicates: 10, blocks: 100, seed: 2 });
    assert.deepEqual(perfect, { replicates: new Array(10).fill(1), low: 1, high: 1 });
  });
});
