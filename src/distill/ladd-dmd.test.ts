// LADD-DMD's own parts (the conformance suite in methods.test.ts covers what every method must do: frozen teacher,
// one player per update, no reads, no leaks, exact resume): the distribution-matching gradient against two
// Gaussians whose denoisers are known in closed form, and a fake score that learns from the student's samples only.
import * as assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { BatchLoader, classBatches } from '../data/loader.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { testBackend } from '../test-utils/backend.js';
import { FLOW } from '../test-utils/tiny-models.js';
import { values } from '../test-utils/train-steps.js';
import {
  disposeTinyWorld,
  makeTinyWorld,
  type TinyWorld,
  tinyLaddDmdSetup,
} from './fixtures/method-cases.js';
import { observeTraining } from './fixtures/observe-training.js';
import { FAKE_SCORE, laddDmdPlayers, laddDmdStep } from './ladd-dmd.js';
import { resolveLaddDmdConfig } from './ladd-dmd-config.js';
import { distributionMatchingGradient, distributionMatchingLoss } from './shared/distribution-matching.js';
import { disposePlayers } from './shared/players.js';

const flow = makeFormulation(FLOW);

/**
 * The exact denoiser of N(mu, s^2 I) under the flow forward process (alpha = 1 - t, sigma = t):
 * E[x0 | x_t] = mu + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha mu).
 */
function gaussianDenoiser(mu: number, s: number): Denoiser {
  return (x, t) =>
    tf.tidy(() => {
      const alpha = tf.sub(1, t).reshape([-1, 1, 1, 1]);
      const sigma = t.reshape([-1, 1, 1, 1]);
      const gain = alpha.mul(s * s).div(
        alpha
          .square()
          .mul(s * s)
          .add(sigma.square()),
      );
      return x.sub(alpha.mul(mu)).mul(gain).add(mu) as tf.Tensor4D;
    });
}

/** The same denoiser on plain numbers (float64), for the hand computation. */
const gaussianX0 = (mu: number, s: number, xt: number, t: number): number =>
  mu + (((1 - t) * s * s) / ((1 - t) ** 2 * s * s + t * t)) * (xt - (1 - t) * mu);

before(async () => {
  await testBackend();
});

describe('distribution matching', () => {
  const real = { mu: 1, s: 0.5 };
  const fake = { mu: -1, s: 1 };

  it('is (D_fake - D_real) / mean|x - D_real| at the re-noised sample, computed by hand for two Gaussians', () => {
    const x = [0.3, -1.2, 2.0, 0.1]; // two samples of two values
    const eps = [0.5, -0.7, 1.1, 0.2];
    const t = [0.5, 0.25];
    const expected = [0, 1].flatMap((i) => {
      const xt = [0, 1].map((j) => (1 - t[i]!) * x[2 * i + j]! + t[i]! * eps[2 * i + j]!);
      const dReal = xt.map((v) => gaussianX0(real.mu, real.s, v, t[i]!));
      const dFake = xt.map((v) => gaussianX0(fake.mu, fake.s, v, t[i]!));
      const scale = (Math.abs(x[2 * i]! - dReal[0]!) + Math.abs(x[2 * i + 1]! - dReal[1]!)) / 2;
      return [0, 1].map((j) => (dFake[j]! - dReal[j]!) / scale);
    });
    const xs = tf.tensor4d(x, [2, 1, 1, 2]);
    const draw = {
      t: tf.tensor1d(t),
      eps: tf.tensor4d(eps, [2, 1, 1, 2]),
      labels: tf.tensor1d([0, 0], 'int32'),
    };
    const g = distributionMatchingGradient(
      flow,
      xs,
      draw,
      gaussianDenoiser(real.mu, real.s),
      gaussianDenoiser(fake.mu, fake.s),
    );
    const got = Array.from(g.dataSync());
    for (const [i, v] of got.entries()) assert.ok(Math.abs(v - expected[i]!) < 1e-5, `${got} vs ${expected}`);

    // The surrogate loss hands x exactly g / x.size, and no gradient to anything else.
    const dx = tf.grad((v) => distributionMatchingLoss(v as tf.Tensor4D, g))(xs);
    const want = expected.map((v) => v / x.length);
    for (const [i, v] of Array.from(dx.dataSync()).entries()) assert.ok(Math.abs(v - want[i]!) < 1e-6);
    tf.dispose([xs, g, dx, draw.t, draw.eps, draw.labels]);
  });

  it("moves samples of another Gaussian onto the real one's mean", () => {
    // 16 samples of 64 values from N(-1, 0.5^2), stepped along -g with fresh t and noise. The fake denoiser is the
    // Gaussian of the samples' current mean (a fake score that keeps up with the student), so with equal spreads
    // D_fake - D_real = sigma^2 / (alpha^2 s^2 + sigma^2) (mu_now - mu_real): a pull that vanishes at the real mean.
    const [n, d] = [16, 64];
    const rng = new Rng(5);
    let x = tf.tensor4d(
      rng.fillNormal(new Float32Array(n * d)).map((v) => fake.mu + real.s * v),
      [n, 1, 1, d],
    );
    const labels = tf.zeros([n], 'int32') as tf.Tensor1D;
    const start = x.mean().dataSync()[0]!;
    for (let k = 0; k < 60; k++) {
      const t = tf.tensor1d(Float32Array.from({ length: n }, () => 0.02 + 0.96 * rng.uniform()));
      const eps = tf.tensor4d(rng.fillNormal(new Float32Array(n * d)), [n, 1, 1, d]);
      const mean = x.mean().dataSync()[0]!;
      const g = distributionMatchingGradient(
        flow,
        x,
        { t, eps, labels },
        gaussianDenoiser(real.mu, real.s),
        gaussianDenoiser(mean, real.s),
      );
      const next = x.sub(g.mul(0.2)) as tf.Tensor4D;
      tf.dispose([x, t, eps, g]);
      x = next;
    }
    const end = x.mean().dataSync()[0]!;
    tf.dispose([x, labels]);
    assert.ok(Math.abs(start - fake.mu) < 0.1);
    assert.ok(
      Math.abs(end - real.mu) < 0.05,
      `the samples' mean went from ${start} to ${end}, the real mean is ${real.mu}`,
    );
  });
});

describe('LADD-DMD on a tiny teacher', () => {
  let world: TinyWorld | undefined;
  before(async () => {
    world = await makeTinyWorld(await mkdtemp(join(tmpdir(), 'ladder-ladd-dmd-')), FLOW);
  });
  after(() => world && disposeTinyWorld(world));

  it('trains the fake score on the student’s samples: no gradient reaches the student, only the fake score changes', async () => {
    const setup = tinyLaddDmdSetup(world!, { warmupIterations: 0, probs: [0.25, 0.25, 0.25, 0.25] });
    const players = laddDmdPlayers(setup, new Rng(3));
    const obs = await observeTraining({
      players,
      step: laddDmdStep(setup, players),
      frozen: { teacher: world!.teacher.params },
      dispose: () => {},
    });
    disposePlayers(players);
    const updates = obs.updates.filter((u) => u.player === FAKE_SCORE);
    assert.equal(updates.length, 2);
    for (const u of updates) {
      assert.deepEqual(u.changed, [FAKE_SCORE]);
      assert.equal(u.studentGradient, 0, "the fake score's loss reaches the student");
      assert.ok(Object.values(u.gradients).some((g) => g > 0));
    }
  });

  it('never sees a latent of the data: other data, same classes, the same fake score update (1-step student)', async () => {
    // A 1-step student starts from pure noise, so its samples do not depend on the latents; the discriminator's
    // real side does. Two worlds that differ only in their latents' values must train the same fake score.
    const world2 = (seed: number) => {
      const setup = tinyLaddDmdSetup(world!, { steps: 1, probs: [1], warmupProbs: [1], fakeScoreUpdates: 1 });
      const count = 8;
      const data = new Rng(seed).fillNormal(new Float32Array(count * 7 * 7 * 4));
      const labels = Int32Array.from({ length: count }, (_, i) => i % 10);
      const loader = classBatches(
        new BatchLoader({ data, labels, shape: [7, 7, 4] }, { batchSize: 2, seed: 0 }),
      );
      const players = laddDmdPlayers({ ...setup, data: loader }, new Rng(3));
      return { setup: { ...setup, data: loader }, players };
    };
    const runs = [world2(11), world2(12)];
    const results = [];
    for (const { setup, players } of runs) {
      await observeTraining({ players, step: laddDmdStep(setup, players), frozen: {}, dispose: () => {} });
      results.push({
        fake: values(players[FAKE_SCORE]!.params),
        disc: values(players.discriminator!.params),
      });
      disposePlayers(players);
    }
    assert.deepEqual(results[0]!.fake, results[1]!.fake, 'the fake score saw the data');
    assert.notDeepEqual(results[0]!.disc, results[1]!.disc, 'the data made no difference at all');
  });

  it('refuses settings that cannot train', () => {
    assert.throws(
      () => resolveLaddDmdConfig({ adversarialWeight: 0, matchingWeight: 0 }),
      /at least one of the two terms/,
    );
    assert.throws(() => resolveLaddDmdConfig({ matchingTMin: 0.5, matchingTMax: 0.4 }), /matchingTMin/);
    assert.throws(() => resolveLaddDmdConfig({ fakeScoreUpdates: 0 }), /fakeScoreUpdates/);
  });
});
