import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import { guidedDenoiser, impliedNoise, netDenoiser } from './denoiser.js';
import {
  addNoise,
  alphaSigmaTensors,
  type FlowConfig,
  type Formulation,
  flowFormulation,
  makeFormulation,
  sampleUniformTimes,
  trailingTimes,
  type VpConfig,
  vpAlphaBars,
  vpFormulation,
} from './formulation.js';

const SD_BETAS = { betaStart: 0.00085, betaEnd: 0.012 } as const;
const FLOW: FlowConfig = { kind: 'flow', logitMean: 0, logitStd: 1 };
const VP_EPS: VpConfig = { kind: 'vp', prediction: 'eps', zeroTerminalSnr: false, ...SD_BETAS };
const VP_V: VpConfig = { kind: 'vp', prediction: 'v', zeroTerminalSnr: false, ...SD_BETAS };
const VP_V_ZTSNR: VpConfig = { kind: 'vp', prediction: 'v', zeroTerminalSnr: true, ...SD_BETAS };

const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => a.sub(b).abs().max().dataSync()[0]!);

/** Runs `fn` on the backend under test, then on cpu. */
async function onBackends(fn: () => void | Promise<void>): Promise<void> {
  const main = tf.getBackend();
  for (const name of new Set([main, 'cpu'])) {
    await tf.setBackend(name);
    try {
      await fn();
    } finally {
      await tf.setBackend(main);
    }
  }
}

/** Float32 times over all of [0, 1]: ends, every binade down to the subnormals, near 1, the VP steps, midpoints. */
function float32Times(): Float32Array {
  const rng = new Rng(7);
  const ts = [
    0,
    1,
    2 ** -149,
    2 ** -126,
    2 ** -30,
    2 ** -29,
    2 ** -26,
    2 ** -25,
    3 * 2 ** -26,
    2 ** -24,
    1e-8,
  ];
  for (let e = 1; e <= 149; e++) for (let k = 0; k < 8; k++) ts.push((1 + rng.uniform()) * 2 ** -e);
  for (let k = 1; k <= 2000; k++) ts.push(1 - k * 2 ** -24);
  for (let k = 0; k < 999; k++) ts.push(k / 999, (k + 0.5) / 999, (k + 1) / 999 - 2 ** -24);
  for (let k = 0; k < 5000; k++) ts.push(rng.uniform());
  return Float32Array.from(ts);
}

/** The host's scales (the scalar schedule, rounded to float32), as the previous implementation computed them. */
function hostScales(f: Formulation, ts: Float32Array): { alpha: Float32Array; sigma: Float32Array } {
  return {
    alpha: Float32Array.from(ts, (t) => f.alphaSigma(t).alpha),
    sigma: Float32Array.from(ts, (t) => f.alphaSigma(t).sigma),
  };
}

/** Reads back to the host during `fn`: through the engine (dataSync, data, arraySync) and at the backend. */
function countReads(fn: () => void): { engine: number; backend: number } {
  const counts = { engine: 0, backend: 0 };
  const restore: Array<() => void> = [];
  const spy = (target: object, method: 'read' | 'readSync', kind: 'engine' | 'backend') => {
    const original = Reflect.get(target, method) as (...args: unknown[]) => unknown;
    Reflect.set(target, method, (...args: unknown[]) => {
      counts[kind]++;
      return original.apply(target, args);
    });
    restore.push(() => Reflect.deleteProperty(target, method));
  };
  spy(tf.engine(), 'readSync', 'engine');
  spy(tf.engine(), 'read', 'engine');
  spy(tf.backend(), 'readSync', 'backend');
  spy(tf.backend(), 'read', 'backend');
  try {
    fn();
  } finally {
    for (const r of restore) r();
  }
  return counts;
}

describe('formulation', () => {
  before(testBackend);

  for (const [name, config] of [
    ['flow', FLOW],
    ['vp eps', VP_EPS],
    ['vp v', VP_V],
    ['vp v zero-terminal-SNR', VP_V_ZTSNR],
  ] as const) {
    it(`${name}: toX0(target(x0, eps, t), addNoise(x0, eps, t), t) recovers x0`, () => {
      const f = makeFormulation(config);
      const rng = new Rng(1);
      const x0 = randn(rng, [16, 2, 2, 3]) as tf.Tensor4D;
      const eps = randn(rng, [16, 2, 2, 3]) as tf.Tensor4D;
      // Random times plus both ends (eps-prediction at t = 1 is fine here: without ZTSNR alpha_999 ~ 0.07 >
      // 0).
      const times = Array.from({ length: 16 }, () => rng.uniform());
      times[0] = 0;
      times[1] = 1;
      const t = tf.tensor1d(times);
      const before = tf.memory().numTensors;
      const back = tf.tidy(() => f.toX0(f.target(x0, eps, t), addNoise(f, x0, eps, t), t));
      assert.equal(tf.memory().numTensors, before + 1);
      assert.ok(maxAbsDiff(back, x0) < 1e-4, `max error ${maxAbsDiff(back, x0)}`);
      tf.dispose([x0, eps, t, back]);
    });
  }

  it('flow: alpha = 1 - t, sigma = t, velocity target eps - x0, net time 1000 t', () => {
    const f = flowFormulation(FLOW);
    assert.deepEqual(f.alphaSigma(0.25), { alpha: 0.75, sigma: 0.25 });
    assert.equal(f.netTime(0.5), 500);
    const x0 = tf.tensor4d([1, 2], [2, 1, 1, 1]);
    const eps = tf.tensor4d([0.5, -1], [2, 1, 1, 1]);
    const t = tf.tensor1d([0.2, 0.6]);
    const v = f.target(x0, eps, t);
    assert.deepEqual(Array.from(v.dataSync()), [-0.5, -3]);
    const xt = addNoise(f, x0, eps, t);
    assert.ok(Math.abs(xt.dataSync()[0]! - 0.9) < 1e-6); // 0.8 * 1 + 0.2 * 0.5
    assert.ok(Math.abs(xt.dataSync()[1]! - 0.2) < 1e-6); // 0.4 * 2 - 0.6 * 1
    tf.dispose([x0, eps, t, v, xt]);
  });

  it("vp: SD's scaled-linear schedule, alpha^2 + sigma^2 = 1, net time 999 t", () => {
    const f = vpFormulation(VP_EPS);
    const abar = vpAlphaBars(VP_EPS);
    assert.ok(Math.abs(abar[0]! - 0.99915) < 1e-12); // 1 - betaStart
    assert.ok(Math.abs(abar[999]! - 0.0046601) < 1e-6); // SD's alphas_cumprod[-1]
    for (let i = 1; i < 1000; i++) assert.ok(abar[i]! < abar[i - 1]!);
    for (const t of [0, 0.3, 0.77, 1]) {
      const { alpha, sigma } = f.alphaSigma(t);
      assert.ok(Math.abs(alpha ** 2 + sigma ** 2 - 1) < 1e-12);
    }
    assert.equal(f.alphaSigma(1).alpha, Math.sqrt(abar[999]!));
    assert.equal(f.netTime(1), 999);
  });

  it('zero terminal SNR: alpha(1) = 0 exactly, alpha(0) unchanged; eps-prediction refused', () => {
    const plain = vpFormulation(VP_V);
    const ztsnr = vpFormulation(VP_V_ZTSNR);
    assert.deepEqual(ztsnr.alphaSigma(1), { alpha: 0, sigma: 1 });
    assert.ok(Math.abs(ztsnr.alphaSigma(0).alpha - plain.alphaSigma(0).alpha) < 1e-12);
    assert.ok(Math.abs(ztsnr.alphaSigma(0).sigma - plain.alphaSigma(0).sigma) < 1e-9);
    const abar = vpAlphaBars(VP_V_ZTSNR);
    for (let i = 1; i < 1000; i++) assert.ok(abar[i]! < abar[i - 1]!);
    assert.throws(() => vpFormulation({ ...VP_V_ZTSNR, prediction: 'eps' }), /needs prediction "v"/);
  });

  it('trailing times: flow {1, .75, .5, .25}; vp {999, 749, 499, 249} / 999, {999, 499}, {999}', () => {
    const flow = makeFormulation(FLOW);
    const vp = makeFormulation(VP_EPS);
    assert.deepEqual(trailingTimes(flow, 4), [1, 0.75, 0.5, 0.25]);
    assert.deepEqual(trailingTimes(flow, 2), [1, 0.5]);
    assert.deepEqual(trailingTimes(flow, 1), [1]);
    const indices = (f: Formulation, n: number) => trailingTimes(f, n).map((t) => t * 999);
    assert.deepEqual(indices(vp, 4), [999, 749, 499, 249]);
    assert.deepEqual(indices(vp, 2), [999, 499]);
    assert.deepEqual(indices(vp, 1), [999]);
    assert.deepEqual(indices(vp, 3), [999, 666, 332]);
    assert.throws(() => trailingTimes(vp, 0), /positive integer, got 0/);
    assert.throws(() => trailingTimes(vp, 2.5), /positive integer, got 2.5/);
  });

  it('flow training times are logit-normal with the configured moments', () => {
    const f = makeFormulation({ kind: 'flow', logitMean: 0.5, logitStd: 1.5 });
    const t = f.sampleTrainingTimes(new Rng(2), 20000);
    assert.ok(t.every((v) => v > 0 && v < 1));
    const logits = Array.from(t, (v) => Math.log(v / (1 - v)));
    const mean = logits.reduce((a, b) => a + b, 0) / logits.length;
    const std = Math.sqrt(logits.reduce((a, b) => a + (b - mean) ** 2, 0) / logits.length);
    assert.ok(Math.abs(mean - 0.5) < 0.03, `mean of logit(t) ${mean}`);
    assert.ok(Math.abs(std - 1.5) < 0.03, `std of logit(t) ${std}`);
  });

  it('vp training times are uniform over the 1000 discrete steps', () => {
    const t = makeFormulation(VP_EPS).sampleTrainingTimes(new Rng(3), 20000);
    const steps = Array.from(t, (v) => Math.round(v * 999));
    steps.forEach((s, i) => {
      assert.ok(Math.abs(s - t[i]! * 999) < 1e-3 && s >= 0 && s <= 999);
    });
    const mean = steps.reduce((a, b) => a + b, 0) / steps.length;
    assert.ok(Math.abs(mean - 499.5) < 5, `mean step ${mean}`);
    assert.ok(steps.includes(0) && steps.includes(999));
  });

  it('alphaSigmaTensors gives per-sample [B, 1, 1, 1] scales', () => {
    const f = makeFormulation(VP_V_ZTSNR);
    const t = tf.tensor1d([1, 0.5]);
    const { alpha, sigma } = alphaSigmaTensors(f, t);
    assert.deepEqual(alpha.shape, [2, 1, 1, 1]);
    const want = [f.alphaSigma(1), f.alphaSigma(0.5)];
    want.forEach((s, i) => {
      assert.ok(Math.abs(alpha.dataSync()[i]! - s.alpha) < 1e-7);
      assert.ok(Math.abs(sigma.dataSync()[i]! - s.sigma) < 1e-7);
    });
    tf.dispose([t, alpha, sigma]);
  });

  it('flow: alphaSigmaTensors gives the float32 bits of the host schedule, without leaks', async () => {
    const f = flowFormulation(FLOW);
    const ts = float32Times();
    const want = hostScales(f, ts);
    await onBackends(() =>
      expectNoLeak(() => {
        const t = tf.tensor1d(ts);
        const { alpha, sigma } = alphaSigmaTensors(f, t);
        assert.deepEqual(alpha.shape, [ts.length, 1, 1, 1]);
        assert.equal(alpha.dtype, 'float32');
        for (const [name, got, exp] of [
          ['alpha', alpha.dataSync(), want.alpha],
          ['sigma', sigma.dataSync(), want.sigma],
        ] as const) {
          const i = got.findIndex((v, j) => !Object.is(v, exp[j]));
          assert.equal(i, -1, `${tf.getBackend()}: ${name}(${ts[i]}) = ${got[i]}, host ${exp[i]}`);
        }
        tf.dispose([t, alpha, sigma]);
      }),
    );
  });

  for (const [name, config] of [
    ['vp', VP_EPS],
    ['vp zero-terminal-SNR', VP_V_ZTSNR],
  ] as const) {
    it(`${name}: alphaSigmaTensors interpolates like the host to 2e-6, clamping t, without leaks`, async () => {
      const f = vpFormulation(config);
      const ts = Float32Array.from([...float32Times(), -0.5, 1.5]);
      const want = hostScales(f, ts);
      await onBackends(() =>
        expectNoLeak(() => {
          const t = tf.tensor1d(ts);
          const { alpha, sigma } = alphaSigmaTensors(f, t);
          assert.deepEqual(sigma.shape, [ts.length, 1, 1, 1]);
          assert.equal(sigma.dtype, 'float32');
          const a = alpha.dataSync();
          const s = sigma.dataSync();
          ts.forEach((ti, i) => {
            const err = Math.max(Math.abs(a[i]! - want.alpha[i]!), Math.abs(s[i]! - want.sigma[i]!));
            assert.ok(
              err < 2e-6,
              `${tf.getBackend()}: t = ${ti}: (${a[i]}, ${s[i]}) vs host (${want.alpha[i]}, ${want.sigma[i]})`,
            );
          });
          // t = 1 (and beyond, clamped) is the last step exactly; with zero terminal SNR pure noise.
          for (const i of [ts.indexOf(1), ts.length - 1]) {
            assert.equal(a[i], want.alpha[i]);
            if (config.zeroTerminalSnr) assert.deepEqual([a[i], s[i]], [0, 1]);
          }
          tf.dispose([t, alpha, sigma]);
        }),
      );
    });
  }

  it('addNoise, toX0, target, impliedNoise and the denoisers read nothing back to the host', async () => {
    for (const config of [FLOW, VP_EPS, VP_V, VP_V_ZTSNR]) {
      const f = makeFormulation(config);
      const rng = new Rng(4);
      const x0 = randn(rng, [4, 2, 2, 3]) as tf.Tensor4D;
      const eps = randn(rng, [4, 2, 2, 3]) as tf.Tensor4D;
      const t = tf.tensor1d([0, 0.3, 0.9, 1]);
      const labels = tf.tensor1d([0, 1, 2, 3], 'int32');
      const denoise = guidedDenoiser(
        netDenoiser((x) => x.mul(0.5), f),
        2,
        (b) => tf.fill([b], 10, 'int32') as tf.Tensor1D,
      );
      await expectNoLeak(() => {
        const reads = countReads(() =>
          tf.tidy(() => {
            const xt = addNoise(f, x0, eps, t);
            f.toX0(f.target(x0, eps, t), xt, t);
            impliedNoise(f, xt, denoise(xt, t, labels), t);
          }),
        );
        assert.equal(reads.engine, 0, `${config.kind}: dataSync/data/arraySync calls`);
        // wasm and cpu kernels read their inputs from host memory through the backend; a device backend must not.
        if (!['wasm', 'cpu'].includes(tf.getBackend()))
          assert.equal(reads.backend, 0, `${config.kind}: backend reads`);
      });
      tf.dispose([x0, eps, t, labels]);
    }
  });

  it('the read counter sees a read', () => {
    const t = tf.tensor1d([0.5]);
    assert.deepEqual(countReads(() => t.dataSync()).engine, 1);
    assert.ok(countReads(() => t.dataSync()).backend >= 1);
    t.dispose();
  });
});

describe('uniform times', () => {
  it('sampleUniformTimes draws times uniformly in [tMin, tMax]; VP times land on its discrete steps', () => {
    const flow = sampleUniformTimes(makeFormulation(FLOW), new Rng(1), 5000, 0.02, 0.98);
    assert.ok(flow.every((t) => t >= 0.02 && t <= 0.98));
    const mean = flow.reduce((a, b) => a + b, 0) / flow.length;
    assert.ok(Math.abs(mean - 0.5) < 0.02, `mean ${mean}`);
    const vp = sampleUniformTimes(makeFormulation(VP_V), new Rng(1), 200, 0.02, 0.98);
    assert.ok(vp.every((t) => Math.abs(t * 999 - Math.round(t * 999)) < 1e-3 && t >= 0.019 && t <= 0.981));
  });
});
