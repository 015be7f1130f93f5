import * as assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { BatchLoader } from '../data/loader.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { disposeParams, type Params } from '../nn/params.js';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import {
  TINY_UNET as TINY_TEACHER_UNET,
  tinyUNetParams as tinyTeacherParams,
} from '../test-utils/tiny-models.js';
import { train } from '../train/loop.js';
import { TINY_LADD } from './fixtures/tiny-teacher.js';
import {
  type LaddConfig,
  type LaddSetup,
  laddHeadsConfig,
  laddPlayers,
  laddRound,
  laddStep,
  resolveLaddConfig,
  sampleLogitNormal,
} from './ladd.js';
import { discriminatorObjective, generatorObjective } from './shared/adversarial.js';

before(testBackend);

const values = (p: Params): Record<string, number[]> =>
  Object.fromEntries(Object.entries(p).map(([k, t]) => [k, Array.from(t.dataSync())]));
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
    const logged: Record<string, number>[] = [];
    const step = laddStep(setup, players);
    const dir = await mkdtemp(join(tmpdir(), 'ladder-ladd-'));
    await train(
      players,
      (ctx) => {
        const m = step(ctx);
        logged.push(m);
        return m;
      },
      { outDir: dir, totalSteps: 2, seed: 0, checkpointEvery: 10, logEvery: 1, resume: false },
    );
    assert.deepEqual(values(teacherParams), teacherBefore, 'the frozen teacher changed');
    const moved = (a: Record<string, number[]>, b: Params): boolean =>
      Object.entries(b).some(([k, t]) => t.dataSync().some((v, i) => v !== a[k]![i]));
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

  it('frees every tensor of a round and its losses', async () => {
    const setup = setupWith({ r1Weight: 0.5 });
    const players = laddPlayers(setup, new Rng(3));
    await expectNoLeak(() => {
      for (const phase of ['discriminator', 'generator'] as const) {
        const round = laddRound(setup, { step: 0, rng: new Rng(1) }, phase, 0);
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
