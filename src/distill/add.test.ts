// Behaviour particular to ADD. What every method must do (finite losses, frozen teacher, decoder and F, gradient
// routing, no leaks, exact resume) is checked once for all of them in methods.test.ts.
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { BatchLoader } from '../data/loader.js';
import { type FormulationConfig, makeFormulation, VP_STEPS, vpAlphaBars } from '../diffusion/formulation.js';
import { initAutoencoder } from '../nn/autoencoder.js';
import { type FeatureNetConfig, initFeatureNet } from '../nn/feature-net.js';
import { disposeParams, type Params } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import {
  FLOW,
  jittered,
  TINY_AE_CONFIG,
  TINY_UNET,
  tinyTeacherConfig,
  tinyUNetParams,
} from '../test-utils/tiny-models.js';
import { moved, trainTwoSteps, values } from '../test-utils/train-steps.js';
import type { StepContext } from '../train/loop.js';
import {
  ADD_DEFAULTS,
  type AddConfig,
  type AddSetup,
  addHeadsConfig,
  addPlayers,
  addRound,
  addStep,
  distillationTarget,
  distillationTimeWeight,
  resolveAddConfig,
} from './add.js';
import { methodDenoisers } from './shared/denoisers.js';
import { disposePlayers } from './shared/players.js';

before(testBackend);

/** A feature net small enough for finite differences over all its maps (14x14x2 and 7x7x4 per image). */
const FEATURES: FeatureNetConfig = {
  imageShape: [28, 28, 1],
  numClasses: 10,
  channels: [2, 4],
  kernel: 3,
  featureDim: 8,
};
const TINY_ADD: Partial<AddConfig> = { batchSize: 2, headChannels: 4, headGroups: 2, headEmbedDim: 4 };
const VP: FormulationConfig = {
  kind: 'vp',
  prediction: 'v',
  zeroTerminalSnr: true,
  betaStart: 0.00085,
  betaEnd: 0.012,
};

let teacherParams: Params = {};
let aeParams: Params = {};
let featureParams: Params = {};
before(() => {
  teacherParams = tinyUNetParams(new Rng(5));
  aeParams = initAutoencoder(TINY_AE_CONFIG.autoencoder, new Rng(6));
  featureParams = jittered(initFeatureNet(FEATURES, new Rng(7)), new Rng(8), 0.05);
});
after(() => {
  for (const p of [teacherParams, aeParams, featureParams]) disposeParams(p);
});

function setupWith(
  overrides: Partial<AddConfig> = {},
  opts: { dataSeed?: number; label?: number; formulation?: FormulationConfig } = {},
): AddSetup {
  const config = resolveAddConfig({ ...TINY_ADD, iterations: 3, ...overrides });
  const count = 8;
  const data = new Rng(opts.dataSeed ?? 11).fillNormal(new Float32Array(count * 7 * 7 * 4));
  const labels = Int32Array.from({ length: count }, (_, i) => opts.label ?? i % 10);
  const formulation = opts.formulation ?? FLOW;
  const denoisers = methodDenoisers(
    { config: tinyTeacherConfig({ formulation }), params: teacherParams },
    { cfg: 2 },
  );
  return {
    config,
    formulation: makeFormulation(formulation),
    teacher: denoisers.teacher,
    student: denoisers.student,
    teacherParams,
    autoencoder: { params: aeParams, config: TINY_AE_CONFIG.autoencoder },
    featureNet: { params: featureParams, config: FEATURES },
    heads: addHeadsConfig(FEATURES, TINY_UNET.numClasses, config),
    data: new BatchLoader({ data, labels, shape: [7, 7, 4] }, { batchSize: config.batchSize, seed: 0 }),
  };
}

/** The loss of each update of `setup`'s first step, by player (the players' weights are left unchanged). */
function stepLosses(setup: AddSetup): Record<string, number> {
  const players = addPlayers(setup, new Rng(3));
  const losses: Record<string, number> = {};
  const ctx: StepContext = {
    step: 0,
    rng: new Rng(4),
    shard: (t) => t,
    shardValues: (values) => values,
    update(name, loss) {
      losses[name] = tf.tidy(() => {
        const out = loss(players[name as keyof typeof players].params);
        return (out instanceof tf.Tensor ? out : out.loss).dataSync()[0]!;
      });
      return {};
    },
  };
  addStep(setup, players)(ctx);
  disposePlayers(players);
  return losses;
}

describe('ADD config and weighting', () => {
  it('resolves from the defaults (uniform student times) and names a bad value', () => {
    const c = resolveAddConfig({ steps: 4 });
    assert.deepEqual(c.probs, [0.25, 0.25, 0.25, 0.25]);
    assert.equal(c.distillationWeight, 2.5);
    assert.deepEqual([c.tMin, c.tMax], [0.02, 0.98]);
    assert.deepEqual(c.discriminatorBetas, [0, 0.99]);
    assert.equal(ADD_DEFAULTS.distillationWeighting, 'alpha');
    assert.throws(() => resolveAddConfig({ batchSize: 1 }), /batchSize = 1 is invalid: use an integer >= 2/);
    assert.throws(
      () => resolveAddConfig({ adversarialWeight: 0, distillationWeight: 0 }),
      /nothing would train/,
    );
    assert.throws(() => resolveAddConfig({ tMin: 0.5, tMax: 0.4 }), /tMin\/tMax = \[0.5,0.4\] is invalid/);
    assert.throws(() => resolveAddConfig({ teacherCfg: -1 }), /teacherCfg = -1/);
    assert.equal(c.x0Conditioning, 'always');
    assert.throws(
      () => resolveAddConfig({ x0Conditioning: 'never' as 'always' }),
      /x0Conditioning = "never" is invalid: use "always" or "signal-only"/,
    );
    assert.throws(
      () => resolveAddConfig({ steps: 2, probs: [1, 0, 0] }),
      /probs = \[1,0,0\] is invalid: give 2 non-negative probabilities/,
    );
    assert.throws(
      () => addHeadsConfig(FEATURES, 10, resolveAddConfig({ featureLayers: [0, 2] })),
      /featureLayers has 2, but the feature net has blocks 0, 1/,
    );
  });

  it("c(t) is alpha_t ('alpha') or alpha_t / (2 sigma_t) ('sds'), for flow and VP teachers", () => {
    const flow = makeFormulation(FLOW);
    // Flow: alpha = 1 - t, sigma = t.
    for (const [t, alpha, sds] of [
      [0.25, 0.75, 1.5],
      [0.5, 0.5, 0.5],
      [0.9, 0.1, 0.1 / 1.8],
    ] as const) {
      assert.ok(Math.abs(distillationTimeWeight(flow, t, 'alpha') - alpha) < 1e-12);
      assert.ok(Math.abs(distillationTimeWeight(flow, t, 'sds') - sds) < 1e-12);
    }
    // VP at its discrete steps: alpha = sqrt(abar), sigma = sqrt(1 - abar).
    const vp = makeFormulation(VP);
    const abar = vpAlphaBars(VP as Parameters<typeof vpAlphaBars>[0]);
    for (const step of [20, 499, 900]) {
      const t = step / (VP_STEPS - 1);
      const a = Math.sqrt(abar[step]!);
      const s = Math.sqrt(1 - abar[step]!);
      assert.ok(Math.abs(distillationTimeWeight(vp, t, 'alpha') - a) < 1e-9);
      assert.ok(Math.abs(distillationTimeWeight(vp, t, 'sds') - a / (2 * s)) < 1e-9);
    }
  });
});

describe('ADD', () => {
  it('R1 is the squared gradient norm of the summed heads w.r.t. their inputs on real data (finite differences)', () => {
    const gamma = 0.5;
    const setup = setupWith({ r1Weight: gamma });
    const players = addPlayers(setup, new Rng(3));
    const dp = players.discriminator.params;
    const round = addRound(setup, { step: 0, rng: new Rng(4) }, 'discriminator', 0);
    const r1 =
      tf.tidy(() => round.discriminatorPenalties!(dp, round.realLogits(dp)).r1!.dataSync()[0]!) / gamma;
    const inputs = round.realFeatures;
    const total = (maps: readonly tf.Tensor4D[]): number =>
      tf.tidy(
        () =>
          tf
            .addN([...round.judge(dp, maps)])
            .sum()
            .dataSync()[0]!,
      );
    const h = 1e-2;
    let squaredNorm = 0;
    inputs.forEach((x, which) => {
      const base = x.dataSync();
      for (let i = 0; i < base.length; i++) {
        const at = (delta: number): number => {
          const v = Float32Array.from(base);
          v[i]! += delta;
          const shifted = tf.tensor4d(v, x.shape);
          const out = total(inputs.map((z, j) => (j === which ? shifted : z)));
          shifted.dispose();
          return out;
        };
        squaredNorm += ((at(h) - at(-h)) / (2 * h)) ** 2;
      }
    });
    const expected = squaredNorm / setup.config.batchSize;
    round.dispose();
    disposePlayers(players);
    assert.ok(expected > 1e-6, `degenerate check: squared gradient norm ${expected}`);
    assert.ok(Math.abs(r1 - expected) / expected < 0.02, `R1 ${r1} vs finite differences ${expected}`);
  });

  it('the distillation target is a stop-gradient: d L_distill / d xhat = 2 lambda c(t) (xhat - target) / n', () => {
    const setup = setupWith({ distillationWeight: 2.5 });
    const players = addPlayers(setup, new Rng(3));
    const gp = players.generator.params;
    const round = addRound(setup, { step: 0, rng: new Rng(5) }, 'generator', 0);
    const d = round.distillation!;
    const [diff, scale] = tf.tidy(() => {
      const xhat = round.fake(gp);
      const auto = tf.grad((x: tf.Tensor) => round.generatorTerms!(gp, x as tf.Tensor4D).distill!)(xhat);
      const target = distillationTarget(setup, xhat, d.t, d.noise, round.labels);
      const [b, ...rest] = xhat.shape;
      const n = rest.reduce((p, q) => p * q, 1);
      // L = (1/B) sum_b w_b (1/n) sum_e (xhat - T)^2 with w_b = lambda c(t_b) and T held fixed.
      const analytic = xhat
        .sub(target)
        .mul(d.weights.reshape([-1, 1, 1, 1]))
        .mul(2 / (b * n));
      return [auto.sub(analytic).abs().max().dataSync()[0]!, analytic.abs().max().dataSync()[0]!];
    });
    const weights = Array.from(d.weights.dataSync());
    const t = Array.from(d.t.dataSync());
    round.dispose();
    disposePlayers(players);
    // The weights are lambda * alpha_t (flow: 1 - t) at the drawn teacher times.
    for (const [i, w] of weights.entries()) assert.ok(Math.abs(w - 2.5 * (1 - t[i]!)) < 1e-5);
    assert.ok(scale > 1e-4, `degenerate check: gradient scale ${scale}`);
    assert.ok(
      diff <= 1e-4 * scale,
      `autodiff differs from the stop-gradient form by ${diff} (scale ${scale})`,
    );
  });

  /** Each head's logits on one round's real maps, judged with two rounds' x0 (other images, same classes). */
  function logitsUnderTwoX0(overrides: Partial<AddConfig>): [number[][], number[][]] {
    const players = addPlayers(setupWith(overrides), new Rng(3));
    const dp = players.discriminator.params;
    const round = (dataSeed: number) =>
      addRound(
        setupWith(overrides, { dataSeed, label: 3 }),
        { step: 0, rng: new Rng(4) },
        'discriminator',
        0,
      );
    const a = round(1);
    const b = round(2);
    const logits = tf.tidy(() => [
      a.judge(dp, a.realFeatures).map((l) => Array.from(l.dataSync())),
      b.judge(dp, a.realFeatures).map((l) => Array.from(l.dataSync())),
    ]);
    a.dispose();
    b.dispose();
    disposePlayers(players);
    return [logits[0]!, logits[1]!];
  }

  it('conditions the heads on the real x0: the same maps get other logits when x0 differs (same classes)', () => {
    for (const probs of [undefined, [1, 0, 0, 0]]) {
      const [la, lb] = logitsUnderTwoX0(probs ? { probs } : {});
      for (const [k, head] of la.entries()) {
        for (const [i, v] of head.entries()) {
          assert.ok(Math.abs(v - lb[k]![i]!) > 1e-6, `head ${k} sample ${i} ignores x0 (probs ${probs})`);
        }
      }
    }
  });

  it("with x0Conditioning 'signal-only' ignores x0 at the pure-noise student time only", () => {
    const [noiseA, noiseB] = logitsUnderTwoX0({ x0Conditioning: 'signal-only', probs: [1, 0, 0, 0] });
    assert.deepEqual(noiseA, noiseB);
    const [laterA, laterB] = logitsUnderTwoX0({ x0Conditioning: 'signal-only', probs: [0, 0, 0, 1] });
    for (const [k, head] of laterA.entries()) {
      for (const [i, v] of head.entries()) {
        assert.ok(Math.abs(v - laterB[k]![i]!) > 1e-6, `head ${k} sample ${i} ignores x0 at s = 0.25`);
      }
    }
  });

  it('weights L_adv_G by adversarialWeight in the generator update, and leaves the discriminator loss alone', () => {
    const losses = (adversarialWeight: number): Record<string, number> =>
      stepLosses(setupWith({ distillationWeight: 0, r1Weight: 0, adversarialWeight }));
    const one = losses(1);
    const two = losses(2);
    assert.ok(Math.abs(one.generator!) > 1e-6, 'degenerate check: zero generator loss');
    assert.ok(Math.abs(two.generator! - 2 * one.generator!) < 1e-5 * Math.abs(one.generator!));
    assert.equal(two.discriminator, one.discriminator);
  });

  it('with adversarialWeight 0 trains by distillation alone and never updates the discriminator', async () => {
    const setup = setupWith({ adversarialWeight: 0 });
    const players = addPlayers(setup, new Rng(3));
    const headsBefore = values(players.discriminator.params);
    const studentBefore = values(players.generator.params);
    const logged = await trainTwoSteps(players, addStep(setup, players));
    assert.ok(!moved(headsBefore, players.discriminator.params), 'the heads changed');
    assert.ok(moved(studentBefore, players.generator.params), 'the student did not train');
    assert.ok(logged.every((m) => m.distill! > 0 && m.discriminatorLoss === undefined));
    disposePlayers(players);
  });
});
