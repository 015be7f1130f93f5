// Conformance suite of the distillation methods (STYLE.md section 11; after diffusers' SchedulerCommonTest and
// FastGen's per-method tiny tests). Every method (fixtures/method-cases.ts: LADD, ADD, PADD, LADD-DMD), on a tiny flow
// teacher and a tiny VP one (v-prediction, zero terminal SNR), must: log finite losses in every phase; leave its
// frozen networks unchanged while the student and the discriminator train; give gradients to, and change, only the
// player being updated; leave no tensor behind; and resume bit-identically. What is particular to one method
// (its losses, R1, its discriminator's inputs, its runner's folders) is tested in <method>.test.ts.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { FormulationConfig } from '../diffusion/formulation.js';
import { decodeSafetensors } from '../io/safetensors.js';
import { cloneParams, disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { FLOW } from '../test-utils/tiny-models.js';
import { values } from '../test-utils/train-steps.js';
import type { TrainStep } from '../train/loop.js';
import {
  ADD,
  disposeTinyWorld,
  LADD,
  LADD_DMD,
  type MethodUnderTest,
  makeTinyWorld,
  PADD,
  type TinyWorld,
  tinyLaddSetup,
} from './fixtures/method-cases.js';
import {
  checkDiscriminatorUpdates,
  checkFiniteMetrics,
  checkFrozen,
  checkGeneratorUpdates,
  checkNoLeak,
  checkUpdateOrder,
  type MethodInstance,
  type Observation,
  observeTraining,
  readsOverSteps,
} from './fixtures/observe-training.js';
import { laddPlayers, laddRound, laddStep } from './ladd.js';
import { type AdversarialRound, adversarialStep } from './shared/adversarial.js';
import { disposePlayers } from './shared/players.js';

const VP: FormulationConfig = {
  kind: 'vp',
  prediction: 'v',
  zeroTerminalSnr: true,
  betaStart: 0.00085,
  betaEnd: 0.012,
};

let root = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-methods-'));
});

/** A tiny world of `formulation`, made before the enclosing suite's tests and freed after them. */
function tinyWorld(formulation: FormulationConfig): () => TinyWorld {
  let world: TinyWorld | undefined;
  before(async () => {
    world = await makeTinyWorld(root, formulation);
  });
  after(() => world && disposeTinyWorld(world));
  return () => world!;
}

/** The weights of a safetensors file by name. */
const weightsIn = async (file: string) => decodeSafetensors(await readFile(file)).tensors;

// ---------------------------------------------------------------------------------------------------------------

/**
 * The checks for `method` on the teacher of `world`: each variant trained in memory, and, with `withRunner`, tiny
 * runs of its runner (resume goes through the loop, checkpoints, the RNG state and PADD's phase files, none of
 * which depends on the formulation, so one teacher's runs cover it).
 */
function describeMethod(method: MethodUnderTest, world: () => TinyWorld, withRunner: boolean): void {
  describe(method.name, () => {
    for (const variant of method.variants) {
      describe(variant.name, () => {
        let instance: MethodInstance | undefined;
        let studentAtStart: Record<string, number[]> = {};
        let sharedWithTeacher: string[] = [];
        let obs: Observation;
        before(async () => {
          instance = variant.build(world());
          const student = instance.players.generator!.params;
          studentAtStart = values(student);
          sharedWithTeacher = Object.keys(student).filter((n) => student[n] === world().teacher.params[n]);
          obs = await observeTraining(instance);
        });
        after(() => instance?.dispose());

        it(`updates ${variant.updates.join(', then ')} in a step and logs finite losses`, () => {
          checkUpdateOrder(obs, variant.updates);
          checkFiniteMetrics(obs, variant.metrics);
        });

        it("starts the student as its own copy of the teacher's weights", () => {
          assert.deepEqual(studentAtStart, values(world().teacher.params));
          assert.deepEqual(sharedWithTeacher, [], 'the student holds teacher tensors');
        });

        it('trains every player and never changes a frozen network', () =>
          checkFrozen(obs, Object.keys(instance!.frozen), variant.updates));

        if (variant.discriminatorParts.length > 0) {
          it('a discriminator update changes only the discriminator; each part of it gets a gradient, the student none', () =>
            checkDiscriminatorUpdates(obs, variant.discriminatorParts));
        }

        it('a generator update changes only the student, whose gradient reaches its input layer', () =>
          checkGeneratorUpdates(obs));

        it('reads nothing back to the host between log lines (no GPU sync in a step)', async () =>
          assert.equal(await readsOverSteps(instance!, 3), 0));

        it('leaves no tensor behind over a step', () => checkNoLeak(obs));
      });
    }

    if (!withRunner) return;
    describe('runner', () => {
      const dirs = { whole: '', stopped: '' };
      let leaked = Number.NaN;
      let stoppedRun = { interrupted: false, wroteWeights: true };
      let resumedRun = { interrupted: true };
      before(async () => {
        const base = await mkdtemp(join(root, `${method.name}-`));
        dirs.whole = join(base, 'whole');
        dirs.stopped = join(base, 'stopped');
        const tensors = tf.memory().numTensors;
        await method.run(world(), dirs.whole, {});
        leaked = tf.memory().numTensors - tensors;
        const stopped = await method.run(world(), dirs.stopped, { stopAfter: 1 });
        stoppedRun = {
          interrupted: stopped.interrupted,
          wroteWeights: existsSync(method.weightsFile(dirs.stopped)),
        };
        resumedRun = await method.run(world(), dirs.stopped, { resume: true });
      });

      it('frees every tensor a run made', () => assert.equal(leaked, 0, `a run left ${leaked} tensors`));

      it("a run stopped mid-way and resumed writes the uninterrupted run's weights.safetensors, byte for byte", async () => {
        assert.deepEqual(stoppedRun, { interrupted: true, wroteWeights: false });
        assert.equal(resumedRun.interrupted, false);
        const whole = await readFile(method.weightsFile(dirs.whole));
        assert.ok(whole.equals(await readFile(method.weightsFile(dirs.stopped))), 'the weights differ');
        // Not a vacuous match: the student trained away from the teacher it started from.
        const student = await weightsIn(method.weightsFile(dirs.whole));
        const teacher = await weightsIn(join(world().teacherDir, 'weights.safetensors'));
        assert.ok(
          Object.entries(teacher).some(([n, t]) => !t.data.every((v, i) => v === student[n]!.data[i])),
          'the student equals its teacher',
        );
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The checks above can fail: each is shown a method broken in the way it guards against.

function describeBrokenMethods(world: () => TinyWorld): void {
  it('a step that reads a value back shows up in the read count', async () => {
    const setup = tinyLaddSetup(world());
    const players = laddPlayers(setup, new Rng(3));
    const method = laddStep(setup, players);
    const step: TrainStep = (ctx) => {
      const metrics = method(ctx);
      metrics.generatorLoss?.dataSync(); // e.g. a NaN check in the step
      return metrics;
    };
    const reads = await readsOverSteps({ players, step, frozen: {}, dispose: () => {} }, 2);
    disposePlayers(players);
    assert.equal(reads, 2);
  });

  it('a student sharing its teacher’s tensors (not a copy) shows up as a changed teacher', async () => {
    const teacher = cloneParams(world().teacher.params);
    const setup = { ...tinyLaddSetup(world(), { emaDecay: 0 }), teacherParams: teacher };
    const players = laddPlayers(setup, new Rng(3));
    disposeParams(players.generator.params);
    players.generator.params = teacher; // the optimiser now replaces (and frees) the teacher's own tensors
    const obs = await observeTraining({
      players,
      step: laddStep(setup, players),
      frozen: { teacher },
      dispose: () => {},
    });
    disposePlayers(players);
    disposeParams(teacher);
    assert.throws(() => checkFrozen(obs, ['teacher'], ['generator']), /frozen weights changed: teacher/);
    assert.throws(() => checkGeneratorUpdates(obs), /a generator update changed other weights/);
  });

  it('a discriminator loss that makes its fake from the student’s weights (no stop-gradient) is caught', async () => {
    const setup = tinyLaddSetup(world());
    const players = laddPlayers(setup, new Rng(3));
    const step: TrainStep = (ctx) =>
      adversarialStep(ctx, players, { loss: 'hinge', discriminatorUpdates: 1 }, (phase, batch) => {
        const round = laddRound(setup, ctx, batch);
        if (phase === 'generator') return round;
        return { ...round, fakeLogits: (dp) => round.fakeLogits(dp, round.fake(players.generator.params)) };
      });
    const obs = await observeTraining({ players, step, frozen: {}, dispose: () => {} });
    disposePlayers(players);
    assert.throws(() => checkDiscriminatorUpdates(obs, []), /the discriminator's loss reaches the student/);
  });

  it('a round that is never freed shows up as a leak', async () => {
    const setup = tinyLaddSetup(world());
    const players = laddPlayers(setup, new Rng(3));
    const kept: AdversarialRound[] = [];
    const step: TrainStep = (ctx) =>
      adversarialStep(ctx, players, { loss: 'hinge', discriminatorUpdates: 1 }, (_, batch) => {
        const round = laddRound(setup, ctx, batch);
        return { ...round, dispose: () => kept.push(round) }; // forgets to free it
      });
    const obs = await observeTraining({ players, step, frozen: {}, dispose: () => {} });
    for (const round of kept) round.dispose();
    disposePlayers(players);
    assert.throws(() => checkNoLeak(obs), /the step left [1-9]\d* tensors behind/);
  });
}

// ---------------------------------------------------------------------------------------------------------------

const METHODS = [LADD, ADD, PADD, LADD_DMD];

describe('distillation methods on a tiny flow teacher', () => {
  const world = tinyWorld(FLOW);
  for (const method of METHODS) describeMethod(method, world, true);
  describe('the checks catch a broken method', () => describeBrokenMethods(world));
});

describe('distillation methods on a tiny VP teacher (v-prediction, zero terminal SNR)', () => {
  const world = tinyWorld(VP);
  for (const method of METHODS) describeMethod(method, world, false);
});
