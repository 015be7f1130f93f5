import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../core/rng.js';
import { makeFormulation } from '../../diffusion/formulation.js';
import {
  defaultStudentTimeSchedule,
  sampleStudentTimes,
  studentTimeProbs,
  studentTimes,
  trainedStepCounts,
  validateStudentTimeSchedule,
} from './student-times.js';

const flow = makeFormulation({ kind: 'flow', logitMean: 0, logitStd: 1 });
const vp = makeFormulation({
  kind: 'vp',
  prediction: 'v',
  zeroTerminalSnr: true,
  betaStart: 0.00085,
  betaEnd: 0.012,
});

describe('student times', () => {
  it('are the trailing times of each formulation', () => {
    assert.deepEqual(studentTimes(flow, 4), [1, 0.75, 0.5, 0.25]);
    assert.deepEqual(studentTimes(flow, 1), [1]);
    assert.deepEqual(
      studentTimes(vp, 4).map((t) => Math.round(t * 999)),
      [999, 749, 499, 249],
    );
  });

  it('a student trained on N times samples with every divisor of N', () => {
    assert.deepEqual(trainedStepCounts(4), [4, 2, 1]);
    assert.deepEqual(trainedStepCounts(2), [2, 1]);
    assert.deepEqual(trainedStepCounts(1), [1]);
    assert.deepEqual(trainedStepCounts(6), [6, 3, 2, 1]);
  });

  it('the default 4-step schedule is the public port: [0, 0, .5, .5] in warm-up, then [.7, .1, .1, .1]', () => {
    const s = defaultStudentTimeSchedule(4, 100);
    assert.deepEqual(s.warmupProbs, [0, 0, 0.5, 0.5]);
    for (const [i, p] of s.probs.entries()) assert.ok(Math.abs(p - [0.7, 0.1, 0.1, 0.1][i]!) < 1e-12);
    assert.equal(studentTimeProbs(s, 99), s.warmupProbs);
    assert.equal(studentTimeProbs(s, 100), s.probs);
    assert.deepEqual(defaultStudentTimeSchedule(2, 5).warmupProbs, [0, 1]);
    assert.deepEqual(defaultStudentTimeSchedule(1, 5).probs, [1]);
    for (const n of [1, 2, 3, 4, 8]) validateStudentTimeSchedule(defaultStudentTimeSchedule(n, 10), n);
  });

  it('draws each time with its probability and never a zero-probability one', () => {
    const times = [1, 0.75, 0.5, 0.25];
    const draws = sampleStudentTimes(new Rng(1), times, [0.7, 0.1, 0.1, 0.1], 20_000);
    const share = (t: number): number => draws.filter((x) => x === t).length / draws.length;
    assert.ok(Math.abs(share(1) - 0.7) < 0.02, `share of t = 1: ${share(1)}`);
    assert.ok(Math.abs(share(0.25) - 0.1) < 0.015, `share of t = .25: ${share(0.25)}`);
    const warm = sampleStudentTimes(new Rng(2), times, [0, 0, 0.5, 0.5], 2000);
    assert.ok(warm.every((t) => t === 0.5 || t === 0.25));
    assert.deepEqual(
      Array.from(sampleStudentTimes(new Rng(3), times, [0, 1, 0, 0], 5)),
      [0.75, 0.75, 0.75, 0.75, 0.75],
    );
  });

  it('rejects schedules that do not fit the times', () => {
    const ok = defaultStudentTimeSchedule(4, 10);
    assert.throws(
      () => validateStudentTimeSchedule({ ...ok, probs: [0.5, 0.5] }, 4),
      /probs has 2 entries .* 4 times/,
    );
    assert.throws(
      () => validateStudentTimeSchedule({ ...ok, warmupProbs: [0.5, 0.5, 0.5, 0] }, 4),
      /warmupProbs .* sum to 1/,
    );
    assert.throws(() => validateStudentTimeSchedule({ ...ok, probs: [1.2, -0.2, 0, 0] }, 4), /non-negative/);
    assert.throws(() => validateStudentTimeSchedule({ ...ok, warmupIterations: -1 }, 4), /warmupIterations/);
  });
});
