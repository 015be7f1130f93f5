import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { BatchLoader } from '../data/loader.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { disposeParams, type Params } from '../nn/params.js';
import { expectNoLeak, maxAbsDiff, testBackend } from '../test-utils/backend.js';
import {
  TINY_UNET as TINY_TEACHER_UNET,
  tinyUNetParams as tinyTeacherParams,
} from '../test-utils/tiny-models.js';
import { moved, trainTwoSteps, values } from '../test-utils/train-steps.js';
import { TINY_LADD } from './fixtures/tiny-teacher.js';
import {
  type LaddSetup,
  laddPlayers,
  laddRound,
  laddStep,
  sampleLogitNormal,
  simulatedStudentInputs,
} from './ladd.js';
import { type LaddConfig, laddHeadsConfig, resolveLaddConfig } from './ladd-config.js';
import { discriminatorObjective, generatorObjective } from './shared/adversarial.js';

before(testBackend);

const sumSquares = (ts: readonly tf.Tensor[]): number =>
  tf.tidy(() => tf.addN(ts.map((t) => t.square().sum())).dataSync()[0]!);

let teacherParams: Params = {};
const setupWith = (overrides: Partial<LaddConfig> = {}): LaddSetup => {
  const config = resolveLaddConfig({ ...TINY_LADD, iterations: 3, ...overrides });
  const rng = new Rng(11);
  const count = 8;
  const data = rng.fillNormal(new Float32Array(count * 7 * 7 * 4));
  const labels = Int32Array.from({ length: count }, (_, i) => i % 10);
  return {
    config,
    formulation: makeFormulation({ kind: 'flow', logitMean: 0, logitStd: 1 }),
    unet: TINY_TEACHER_UNET,
    teacherParams,
    heads: laddHeadsConfig(TINY_TEACHER_UNET, config),
    data: new BatchLoader({ data, labels, shape: [7, 7, 4] }, { batchSize: config.batchSize, seed: 0 }),
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

  it('gives every head and the whole student a non-zero gradient, through the frozen teacher', () => {
    const setup = setupWith();
    const players = laddPlayers(setup, new Rng(3));
    const round = laddRound(setup, { step: 5, rng: new Rng(4) }, 'generator', 0);
    // Student: L_G through the teacher's encoder and the heads, down to the student's first convolution.
    const studentNames = Object.keys(players.generator.params);
    const studentGrads = tf.grads((...xs: tf.Tensor[]) => {
      const p = Object.fromEntries(studentNames.map((n, i) => [n, xs[i]!]));
      return generatorObjective(round, 'hinge', p, players.discriminator.params).loss;
    })(studentNames.map((n) => players.generator.params[n]!));
    assert.ok(
      sumSquares([studentGrads[studentNames.indexOf('in.w')]!]) > 0,
      'no gradient reached the student input layer',
    );
    tf.dispose(studentGrads);
    // Heads: L_D on real vs. a fake made outside the loss; each head gets its own gradient.
    const fake = tf.tidy(() => round.fake(players.generator.params));
    const headNames = Object.keys(players.discriminator.params);
    const headGrads = tf.grads((...xs: tf.Tensor[]) => {
      const p = Object.fromEntries(headNames.map((n, i) => [n, xs[i]!]));
      return discriminatorObjective(round, 'hinge', p, fake).loss;
    })(headNames.map((n) => players.discriminator.params[n]!));
    for (const head of ['down0.', 'down1.', 'mid.']) {
      const norm = sumSquares(headGrads.filter((_, i) => headNames[i]!.startsWith(head)));
      assert.ok(norm > 0, `head ${head} got no gradient`);
    }
    tf.dispose([...headGrads, fake]);
    round.dispose();
    for (const p of Object.values(players)) {
      disposeParams(p.params);
      p.ema?.dispose();
    }
  });

  it('leaves the teacher unchanged while the student and the heads train', async () => {
    const setup = setupWith({ r1Weight: 1, discriminatorUpdates: 2 });
    const players = laddPlayers(setup, new Rng(3));
    const teacherBefore = values(teacherParams);
    const headsBefore = values(players.discriminator.params);
    const logged = await trainTwoSteps(players, laddStep(setup, players));
    assert.deepEqual(values(teacherParams), teacherBefore, 'the frozen teacher changed');
    assert.ok(moved(teacherBefore, players.generator.params), 'the student did not train');
    assert.ok(moved(headsBefore, players.discriminator.params), 'the heads did not train');
    for (const key of ['generatorLoss', 'discriminatorLoss', 'realLogit', 'fakeLogit', 'r1']) {
      assert.ok(
        logged.every((m) => Number.isFinite(m[key])),
        `${key} missing or not finite`,
      );
    }
    assert.ok(logged.every((m) => m.r1! > 0));
    for (const p of Object.values(players)) {
      disposeParams(p.params);
      p.optimizer.dispose();
      p.ema?.dispose();
    }
  });

  it('works on a VP (zero terminal SNR, v-prediction) teacher too: finite losses at every student time', () => {
    const vp = {
      ...setupWith({ warmupIterations: 0, probs: [0.25, 0.25, 0.25, 0.25] }),
      formulation: makeFormulation({
        kind: 'vp',
        prediction: 'v',
        zeroTerminalSnr: true,
        betaStart: 0.00085,
        betaEnd: 0.012,
      }),
    };
    const players = laddPlayers(vp, new Rng(3));
    for (let step = 0; step < 3; step++) {
      const round = laddRound(vp, { step, rng: new Rng(step) }, 'generator', 0);
      const [d, g] = tf.tidy(() => {
        const fake = round.fake(players.generator.params);
        return [
          discriminatorObjective(round, 'hinge', players.discriminator.params, fake).loss.dataSync()[0]!,
          generatorObjective(
            round,
            'hinge',
            players.generator.params,
            players.discriminator.params,
          ).loss.dataSync()[0]!,
        ];
      });
      round.dispose();
      assert.ok(Number.isFinite(d) && Number.isFinite(g), `losses ${d}, ${g}`);
    }
    for (const p of Object.values(players)) {
      disposeParams(p.params);
      p.ema?.dispose();
    }
  });

  it("backward simulation: each later time's input is the sampler path (predict, re-noise) from pure noise", () => {
    const f = makeFormulation({ kind: 'flow', logitMean: 0, logitStd: 1 });
    const times = [1, 0.75, 0.5, 0.25];
    const start = randn(new Rng(2), [4, 2, 2, 1]) as tf.Tensor4D;
    const seen: number[][] = [];
    // A stand-in student whose x0 prediction is half its input, so the path's chaining shows in the values.
    const halve = (x: tf.Tensor4D, t: tf.Tensor1D): tf.Tensor4D => {
      seen.push(Array.from(t.dataSync()));
      return x.mul(0.5) as tf.Tensor4D;
    };
    const rng = new Rng(9);
    const replay = Rng.fromState(rng.state());
    const inputs = simulatedStudentInputs(halve, f, times, Int32Array.from([0, 1, 2, 3]), start, rng);
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
    const none = simulatedStudentInputs(halve, f, times, Int32Array.from([0, 0, 0, 0]), start, rng);
    assert.equal(seen.length, 3);
    assert.equal(maxAbsDiff(none, start), 0);
    tf.dispose([inputs, none, ...expected, ...got]);
  });

  it('backward simulation trains: finite losses and a moving student', async () => {
    const setup = setupWith({
      backwardSimulation: true,
      warmupIterations: 0,
      probs: [0.25, 0.25, 0.25, 0.25],
    });
    const players = laddPlayers(setup, new Rng(3));
    assert.throws(
      () => laddRound(setup, { step: 0, rng: new Rng(1) }, 'generator', 0),
      /backward simulation needs the current student weights/,
    );
    const before = values(players.generator.params);
    const logged = await trainTwoSteps(players, laddStep(setup, players));
    assert.ok(logged.every((m) => Number.isFinite(m.generatorLoss) && Number.isFinite(m.discriminatorLoss)));
    assert.ok(moved(before, players.generator.params), 'the student did not train');
    for (const p of Object.values(players)) {
      disposeParams(p.params);
      p.optimizer.dispose();
      p.ema?.dispose();
    }
  });

  it('frees every tensor of a round and its losses (with and without backward simulation)', async () => {
    const setup = setupWith({ r1Weight: 0.5 });
    const simulating = setupWith({
      backwardSimulation: true,
      warmupIterations: 0,
      probs: [0.1, 0.3, 0.3, 0.3],
    });
    const players = laddPlayers(setup, new Rng(3));
    await expectNoLeak(() => {
      for (const [phase, s] of [
        ['discriminator', setup],
        ['generator', setup],
        ['discriminator', simulating],
        ['generator', simulating],
      ] as const) {
        const round = laddRound(s, { step: 0, rng: new Rng(1) }, phase, 0, players.generator.params);
        tf.tidy(() => {
          const fake = round.fake(players.generator.params);
          discriminatorObjective(round, 'hinge', players.discriminator.params, fake);
          generatorObjective(round, 'hinge', players.generator.params, players.discriminator.params);
        });
        round.dispose();
      }
    });
    for (const p of Object.values(players)) {
      disposeParams(p.params);
      p.ema?.dispose();
    }
  });
});
