import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { type Denoiser, netDenoiser } from '../diffusion/denoiser.js';
import {
  type Formulation,
  type FormulationConfig,
  makeFormulation,
  trailingTimes,
} from '../diffusion/formulation.js';
import { CLEAN, ddimStep, ddimStepAt, type Scales } from './common.js';
import { sampleEuler } from './euler.js';
import { fewStepPath, sampleFewStep } from './few-step.js';
import { gaussianDenoiser, gaussianRawNet, gaussianTransport } from './gaussian.js';
import { SAMPLER_KINDS, type SamplerKind, sample, samplerTimes } from './sample.js';

// Data x0 ~ N(MEAN, STD^2) per dimension: its ideal denoiser and exact ODE are known in closed form.
const MEAN = 0.5;
const STD = 0.3;
const SD_BETAS = { betaStart: 0.00085, betaEnd: 0.012 } as const;
const CONFIGS: Record<string, FormulationConfig> = {
  flow: { kind: 'flow', logitMean: 0, logitStd: 1 },
  'vp-eps': { kind: 'vp', prediction: 'eps', zeroTerminalSnr: false, ...SD_BETAS },
  'vp-v-ztsnr': { kind: 'vp', prediction: 'v', zeroTerminalSnr: true, ...SD_BETAS },
};
const ODE_KINDS = ['euler', 'heun', 'dpmpp-2m'] as const;

/** The ideal model seen through the formulation's own raw-output conversion (velocity, eps or v). */
const idealDenoiser = (f: Formulation): Denoiser => netDenoiser(gaussianRawNet(f, MEAN, STD), f);

const logSnrHalf = (f: Formulation, t: number): number => {
  const { alpha, sigma } = f.alphaSigma(t);
  return Math.log(alpha / sigma);
};

/** The time where log(alpha / sigma) = lambda (bisection; it decreases in t). */
function timeAtLogSnrHalf(f: Formulation, lambda: number): number {
  let lo = 0;
  let hi = 1;
  for (let k = 0; k < 60; k++) {
    const mid = (lo + hi) / 2;
    if (logSnrHalf(f, mid) > lambda) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Standardised to mean 0 and std 1 exactly, so sample statistics carry no sampling error. */
function standardNormals(seed: number, n: number): Float32Array {
  const z = new Rng(seed).fillNormal(new Float32Array(n));
  const mean = z.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(z.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  return z.map((v) => (v - mean) / std);
}

/**
 * Exact start x_t0 ~ N(alpha mu, alpha^2 s^2 + sigma^2) from standard normals z, passed to the samplers as
 * x_t0 / sigma_t0 (they start from sigma_t0 * noise). Also returns the exact answer: the ODE transported to
 * the last time, then denoised there (every sampler's last step to t = 0 returns x0Hat at the last time).
 */
function exactCase(f: Formulation, times: readonly number[], z: Float32Array) {
  const first = f.alphaSigma(times[0]!);
  const last: Scales = f.alphaSigma(times[times.length - 1]!);
  const spread = Math.sqrt(first.alpha ** 2 * STD ** 2 + first.sigma ** 2);
  const start = z.map((v) => first.alpha * MEAN + spread * v);
  const gain = (last.alpha * STD ** 2) / (last.alpha ** 2 * STD ** 2 + last.sigma ** 2);
  const expected = Array.from(
    start,
    (x) => MEAN + gain * (gaussianTransport(MEAN, STD, x, first, last) - last.alpha * MEAN),
  );
  return { noiseValues: start.map((v) => v / first.sigma), expected };
}

function maxAbsError(kind: SamplerKind, f: Formulation, times: readonly number[], z: Float32Array): number {
  const { noiseValues, expected } = exactCase(f, times, z);
  const noise = tf.tensor4d(noiseValues, [z.length, 1, 1, 1]);
  const labels = tf.zeros([z.length], 'int32') as tf.Tensor1D;
  const out = sample(kind, idealDenoiser(f), f, noise, { times, labels });
  const got = out.dataSync();
  tf.dispose([noise, labels, out]);
  return expected.reduce((worst, e, i) => Math.max(worst, Math.abs(e - got[i]!)), 0);
}

function meanStd(values: Float32Array): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return { mean, std: Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length) };
}

describe('samplers', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const [name, config] of Object.entries(CONFIGS)) {
    const f = makeFormulation(config);

    it(`${name}: ODE samplers draw N(mu, s^2) from pure noise with the ideal denoiser`, () => {
      const z = standardNormals(1, 2000);
      const labels = tf.zeros([2000], 'int32') as tf.Tensor1D;
      for (const kind of ODE_KINDS) {
        // t_i = ((N - i) / N)^2: from t = 1 down to 1 / N^2, near clean data; first-order Euler needs more
        // steps.
        const steps = kind === 'euler' ? 200 : 64;
        const times = Array.from({ length: steps }, (_, i) => ((steps - i) / steps) ** 2);
        const noise = tf.tensor4d(exactCase(f, times, z).noiseValues, [2000, 1, 1, 1]);
        const out = sample(kind, idealDenoiser(f), f, noise, { times, labels });
        const { mean, std } = meanStd(out.dataSync() as Float32Array);
        tf.dispose([noise, out]);
        assert.ok(Math.abs(mean - MEAN) < 0.002, `${kind}: mean ${mean}, want ${MEAN}`);
        assert.ok(Math.abs(std - STD) < 0.005, `${kind}: std ${std}, want ${STD}`);
      }
      labels.dispose();
    });

    it(`${name}: Euler is first order, Heun and DPM-Solver++(2M) second order (log-SNR-uniform grid)`, () => {
      const z = new Rng(2).fillNormal(new Float32Array(64));
      const grid = (n: number) =>
        Array.from({ length: n + 1 }, (_, i) => timeAtLogSnrHalf(f, -2.5 + (5.5 * i) / n));
      const error = (kind: SamplerKind, n: number) => maxAbsError(kind, f, grid(n), z);
      const [euler32, euler64] = [error('euler', 32), error('euler', 64)];
      assert.ok(euler32 / euler64 > 1.7 && euler32 / euler64 < 2.3, `euler: ${euler32} -> ${euler64}`);
      for (const kind of ['heun', 'dpmpp-2m'] as const) {
        const [e32, e64] = [error(kind, 32), error(kind, 64)];
        assert.ok(e32 / e64 > 3.3, `${kind}: error ${e32} at 32 steps -> ${e64} at 64, want ~4x smaller`);
        assert.ok(e64 < euler64 / 10, `${kind}: error ${e64}, euler ${euler64}`);
      }
    });

    it(`${name}: from pure noise on the trailing grid, Heun and DPM-Solver++(2M) beat Euler`, () => {
      const z = new Rng(3).fillNormal(new Float32Array(64));
      const times = samplerTimes(f, 128);
      const euler = maxAbsError('euler', f, times, z);
      assert.ok(euler > 1e-3 && euler < 0.03, `euler error ${euler}`);
      for (const kind of ['heun', 'dpmpp-2m'] as const) {
        const err = maxAbsError(kind, f, times, z);
        assert.ok(err < euler / 4, `${kind}: error ${err}, euler ${euler}`);
      }
    });

    it(`${name}: one step of any sampler returns the denoised start`, () => {
      const z = new Rng(4).fillNormal(new Float32Array(16));
      const times = [0.6];
      const { alpha, sigma } = f.alphaSigma(0.6);
      const gain = (alpha * STD ** 2) / (alpha ** 2 * STD ** 2 + sigma ** 2);
      const noise = tf.tensor4d(z, [4, 2, 2, 1]);
      const labels = tf.zeros([4], 'int32') as tf.Tensor1D;
      for (const kind of SAMPLER_KINDS) {
        const out = sample(kind, idealDenoiser(f), f, noise, { times, labels, rng: new Rng(0) });
        const got = out.dataSync();
        out.dispose();
        z.forEach((v, i) => {
          const want = MEAN + gain * (sigma * v - alpha * MEAN);
          assert.ok(Math.abs(got[i]! - want) < 1e-5, `${kind}[${i}]: ${got[i]} vs ${want}`);
        });
      }
      tf.dispose([noise, labels]);
    });
  }

  it('few-step: one step from pure noise returns D(noise) = mu exactly (flow, zero terminal SNR)', () => {
    for (const config of [CONFIGS.flow!, CONFIGS['vp-v-ztsnr']!]) {
      const f = makeFormulation(config);
      const noise = tf.tensor4d(new Rng(5).fillNormal(new Float32Array(64)), [16, 2, 2, 1]);
      const labels = tf.zeros([16], 'int32') as tf.Tensor1D;
      const out = sampleFewStep(idealDenoiser(f), f, noise, { times: [1], labels, rng: new Rng(0) });
      for (const v of out.dataSync()) assert.ok(Math.abs(v - MEAN) < 1e-6, `${config.kind}: ${v}`);
      tf.dispose([noise, labels, out]);
    }
  });

  it('few-step: re-noises with fresh noise from the rng, then denoises again', () => {
    const f = makeFormulation(CONFIGS['vp-v-ztsnr']!);
    const denoise = gaussianDenoiser(f, MEAN, STD);
    const times = trailingTimes(f, 2);
    const noise = randn(new Rng(6), [8, 2, 2, 1]) as tf.Tensor4D;
    const labels = tf.zeros([8], 'int32') as tf.Tensor1D;
    const rng = new Rng(7);
    const got = sampleFewStep(denoise, f, noise, { times, labels, rng });
    // By hand: x0a = D(sigma_0 noise, t0); x1 = alpha_1 x0a + sigma_1 epsNew; result D(x1, t1).
    const expected = tf.tidy(() => {
      const s0 = f.alphaSigma(times[0]!);
      const s1 = f.alphaSigma(times[1]!);
      const x0a = denoise(noise.mul(s0.sigma), tf.fill([8], times[0]!) as tf.Tensor1D, labels);
      const x1 = x0a.mul(s1.alpha).add(randn(new Rng(7), [8, 2, 2, 1]).mul(s1.sigma)) as tf.Tensor4D;
      return denoise(x1, tf.fill([8], times[1]!) as tf.Tensor1D, labels);
    });
    const diff = tf.tidy(() => got.sub(expected).abs().max().dataSync()[0]!);
    assert.ok(diff < 1e-6, `differs from the hand computation by ${diff}`);
    assert.notDeepEqual(rng.state(), new Rng(7).state(), 'the rng must advance');
    const other = sampleFewStep(denoise, f, noise, { times, labels, rng: new Rng(8) });
    const change = tf.tidy(() => got.sub(other).abs().max().dataSync()[0]!);
    assert.ok(change > 1e-3, 'another seed must change the re-noised result');
    tf.dispose([noise, labels, got, expected, other]);
  });

  it('leaks no tensors and leaves noise and labels to the caller', () => {
    for (const config of Object.values(CONFIGS)) {
      const f = makeFormulation(config);
      const noise = randn(new Rng(9), [3, 2, 2, 1]) as tf.Tensor4D;
      const labels = tf.tensor1d([0, 1, 2], 'int32');
      const denoise = idealDenoiser(f);
      for (const kind of SAMPLER_KINDS) {
        const before = tf.memory().numTensors;
        const out = sample(kind, denoise, f, noise, { times: samplerTimes(f, 4), labels, rng: new Rng(0) });
        assert.equal(tf.memory().numTensors, before + 1, `${kind} on ${config.kind}: only the result is new`);
        out.dispose();
      }
      assert.ok(!noise.isDisposed && !labels.isDisposed);
      tf.dispose([noise, labels]);
    }
  });

  it('reports every step with its time and state', () => {
    const f = makeFormulation(CONFIGS.flow!);
    const noise = randn(new Rng(10), [2, 2, 2, 1]) as tf.Tensor4D;
    const labels = tf.tensor1d([3, 4], 'int32');
    const seen: { step: number; t: number; first: number }[] = [];
    const times = samplerTimes(f, 4);
    const out = sampleEuler(idealDenoiser(f), f, noise, {
      times,
      labels,
      onStep: ({ step, t, x }) => seen.push({ step, t, first: x.dataSync()[0]! }),
    });
    assert.deepEqual(
      seen.map(({ step, t }) => [step, t]),
      times.map((t, i) => [i, t]),
    );
    assert.equal(seen[0]!.first, noise.dataSync()[0]); // t0 = 1: the start is the noise itself
    tf.dispose([noise, labels, out]);
  });

  it('per-sample DDIM steps (ddimStepAt) equal the grid step run for each sample alone; t = 0 gives x0', () => {
    for (const config of Object.values(CONFIGS)) {
      const f = makeFormulation(config);
      const denoise = idealDenoiser(f);
      const x = randn(new Rng(11), [3, 2, 2, 1]) as tf.Tensor4D;
      const labels = tf.zeros([3], 'int32') as tf.Tensor1D;
      const from = Float32Array.from([1, 0.75, 0.5]);
      const to = Float32Array.from([0.5, 0.25, 0]);
      const got = ddimStepAt(denoise, f, x, from, to, labels);
      const rows = tf.split(x, 3) as tf.Tensor4D[];
      rows.forEach((row, i) => {
        const one = tf.zeros([1], 'int32') as tf.Tensor1D;
        const x0Hat = denoise(row, tf.tensor1d([from[i]!]), one);
        const expected = ddimStep(
          row,
          f.alphaSigma(from[i]!),
          to[i] === 0 ? CLEAN : f.alphaSigma(to[i]!),
          x0Hat,
        );
        const diff = tf.tidy(() => got.slice([i], [1]).sub(expected).abs().max().dataSync()[0]!);
        assert.ok(diff < 1e-6, `${config.kind} sample ${i}: differs by ${diff}`);
        if (to[i] === 0) assert.ok(tf.tidy(() => expected.sub(x0Hat).abs().max().dataSync()[0]!) === 0);
        tf.dispose([one, x0Hat, expected]);
      });
      tf.dispose([x, labels, got, ...rows]);
    }
  });

  it("few-step path: its states are the sampler's, and stopping early skips the remaining denoiser calls", () => {
    const f = makeFormulation(CONFIGS.flow!);
    let calls = 0;
    const ideal = idealDenoiser(f);
    const denoise: Denoiser = (x, t, l) => {
      calls++;
      return ideal(x, t, l);
    };
    const noise = randn(new Rng(12), [2, 2, 2, 1]) as tf.Tensor4D;
    const labels = tf.zeros([2], 'int32') as tf.Tensor1D;
    const times = samplerTimes(f, 4);
    const seen: Float32Array[] = [];
    const out = sampleFewStep(denoise, f, noise, {
      times,
      labels,
      rng: new Rng(13),
      onStep: ({ x }) => seen.push(x.dataSync() as Float32Array),
    });
    assert.equal(calls, 4);
    calls = 0;
    const before = tf.memory().numTensors;
    const path = fewStepPath(denoise, f, noise, { times, labels, rng: new Rng(13) });
    for (let k = 0; k < 3; k++) {
      const state = path.next().value;
      assert.deepEqual(state.dataSync(), seen[k], `state ${k}`);
    }
    path.return(undefined as never);
    assert.equal(calls, 2, 'three states need two denoiser calls');
    assert.equal(tf.memory().numTensors, before, 'the path frees its states when stopped');
    assert.ok(!noise.isDisposed, 'the caller keeps the start');
    tf.dispose([noise, labels, out]);
  });

  it('samplerTimes is the trailing grid; bad times, labels and options are refused', () => {
    const f = makeFormulation(CONFIGS['vp-eps']!);
    assert.deepEqual(samplerTimes(f, 4), trailingTimes(f, 4));
    const noise = tf.zeros([2, 1, 1, 1]) as tf.Tensor4D;
    const labels = tf.zeros([2], 'int32') as tf.Tensor1D;
    const denoise = idealDenoiser(f);
    const run = (times: number[], l: tf.Tensor1D = labels) =>
      sample('euler', denoise, f, noise, { times, labels: l });
    assert.throws(() => run([0.5, 0.5]), /strictly descend/);
    assert.throws(() => run([1, 0]), /outside \(0, 1\]/);
    assert.throws(() => run([]), /empty/);
    const three = tf.zeros([3], 'int32') as tf.Tensor1D;
    assert.throws(() => run([1], three), /labels have 3 entries/);
    assert.throws(() => sample('few-step', denoise, f, noise, { times: [1], labels }), /opts\.rng/);
    tf.dispose([noise, labels, three]);
  });
});
