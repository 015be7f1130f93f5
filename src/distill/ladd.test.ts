// Behaviour particular to LADD. What every method must do (finite losses, frozen teacher, gradient routing, no
// leaks, exact resume) is checked once for all of them in methods.test.ts.
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { BatchLoader, classBatches } from '../data/loader.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { disposeParams, type Params } from '../nn/params.js';
import { maxAbsDiff, testBackend } from '../test-utils/backend.js';
import {
  FLOW,
  TINY_UNET as TINY_TEACHER_UNET,
  tinyTeacherConfig,
  tinyUNetParams as tinyTeacherParams,
} from '../test-utils/tiny-models.js';
import { TINY_LADD } from './fixtures/tiny-teacher.js';
import { type LaddSetup, laddRound, sampleLogitNormal, simulatedStudentInputs } from './ladd.js';
import { type LaddConfig, laddHeadsConfig, resolveLaddConfig } from './ladd-config.js';
import { methodDenoisers } from './shared/denoisers.js';

before(testBackend);

let teacherParams: Params = {};
const setupWith = (overrides: Partial<LaddConfig> = {}): LaddSetup => {
  const config = resolveLaddConfig({ ...TINY_LADD, iterations: 3, ...overrides });
  const rng = new Rng(11);
  const count = 8;
  const data = rng.fillNormal(new Float32Array(count * 7 * 7 * 4));
  const labels = Int32Array.from({ length: count }, (_, i) => i % 10);
  return {
    config,
    formulation: makeFormulation(FLOW),
    student: methodDenoisers({ config: tinyTeacherConfig(), params: teacherParams }, { cfg: 1 }).student,
    unet: TINY_TEACHER_UNET,
    teacherParams,
    heads: laddHeadsConfig(TINY_TEACHER_UNET, config),
    data: classBatches(
      new BatchLoader({ data, labels, shape: [7, 7, 4] }, { batchSize: config.batchSize, seed: 0 }),
    ),
  };
};

before(() => {
  teacherParams = tinyTeacherParams(new Rng(5));
});
after(() => disposeParams(teacherParams));

describe('LADD', () => {
  it('draws t_hat from a logit-normal with the requested moments', () => {
    for (const [m, s] of [
      [1, 1],
      [-0.5, 0.5],
    ] as const) {
      const t = sampleLogitNormal(new Rng(1), 20_000, m, s);
      assert.ok(t.every((x) => x > 0 && x < 1));
      const logits = Array.from(t, (x) => Math.log(x / (1 - x)));
      const mean = logits.reduce((a, b) => a + b, 0) / logits.length;
      const std = Math.sqrt(logits.reduce((a, b) => a + (b - mean) ** 2, 0) / logits.length);
      assert.ok(Math.abs(mean - m) < 0.03, `logit mean ${mean}, want ${m}`);
      assert.ok(Math.abs(std - s) < 0.03, `logit std ${std}, want ${s}`);
      const median = Array.from(t).sort((a, b) => a - b)[t.length / 2]!;
      assert.ok(Math.abs(median - 1 / (1 + Math.exp(-m))) < 0.02, `median ${median}`);
    }
  });

  it('resolves its config from the defaults and names a bad value', () => {
    const c = resolveLaddConfig({ steps: 2 });
    assert.deepEqual(c.warmupProbs, [0, 1]);
    assert.deepEqual(c.probs, [0.7, 0.3]);
    assert.deepEqual(c.discriminatorBetas, [0, 0.99]);
    assert.throws(() => resolveLaddConfig({ batchSize: 1 }), /batchSize = 1 is invalid: use an integer >= 2/);
    assert.throws(
      () => resolveLaddConfig({ headChannels: 8, headGroups: 3 }),
      /headGroups = 3 .* divide headChannels/,
    );
    assert.throws(
      () => resolveLaddConfig({ steps: 2, probs: [0.5, 0.2, 0.3] }),
      /probs has 3 entries but the student has 2/,
    );
  });

  it("backward simulation: each later time's input is the sampler path (predict, re-noise) from pure noise", () => {
    const f = makeFormulation({ kind: 'flow', logitMean: 0, logitStd: 1 });
    const times = [1, 0.75, 0.5, 0.25];
    const start = randn(new Rng(2), [4, 2, 2, 1]) as tf.Tensor4D;
    const labels = tf.tensor1d([0, 1, 2, 3], 'int32');
    const seen: number[][] = [];
    // A stand-in student whose x0 prediction is half its input, so the path's chaining shows in the values.
    const halve = (x: tf.Tensor4D, t: tf.Tensor1D): tf.Tensor4D => {
      seen.push(Array.from(t.dataSync()));
      return x.mul(0.5) as tf.Tensor4D;
    };
    const rng = new Rng(9);
    const replay = Rng.fromState(rng.state());
    const inputs = simulatedStudentInputs(halve, f, times, Int32Array.from([0, 1, 2, 3]), start, labels, rng);
    assert.deepEqual(
      seen.map((t) => t[0]),
      [1, 0.75, 0.5],
      'one prediction per level, at the previous time',
    );
    const expected: tf.Tensor4D[] = [start];
    for (let k = 1; k < 4; k++) {
      const fresh = randn(replay, [4, 2, 2, 1]);
      expected.push(expected[k - 1]!.mul(0.5 * (1 - times[k]!)).add(fresh.mul(times[k]!)) as tf.Tensor4D);
    }
    const got = tf.split(inputs, 4);
    for (let k = 0; k < 4; k++) {
      const want = tf.slice(expected[k]!, [k, 0, 0, 0], [1, 2, 2, 1]);
      assert.ok(maxAbsDiff(got[k]!, want) < 1e-6, `sample at time index ${k}`);
    }
    // Samples at the first time only: no prediction runs and the input is the pure noise itself.
    const none = simulatedStudentInputs(halve, f, times, Int32Array.from([0, 0, 0, 0]), start, labels, rng);
    assert.equal(seen.length, 3);
    assert.equal(maxAbsDiff(none, start), 0);
    tf.dispose([inputs, none, labels, ...expected, ...got]);
  });

  it('backward simulation refuses a round without the student’s current weights', () => {
    const setup = setupWith({
      backwardSimulation: true,
      warmupIterations: 0,
      probs: [0.25, 0.25, 0.25, 0.25],
    });
    assert.throws(
      () => laddRound(setup, { step: 0, rng: new Rng(1) }, 0),
      /backward simulation needs the current student weights/,
    );
  });
});
