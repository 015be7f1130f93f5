// The student's timesteps and how often each is trained: trailing times per formulation (METHODS.md section 0)
// and LADD's warm-up, easy (low-noise) steps first, then most mass on pure noise (section 3).
import type { Rng } from '../../core/rng.js';
import { type Formulation, trailingTimes } from '../../diffusion/formulation.js';

/** Probabilities over the student's times (same order as `studentTimes`: pure noise first). */
export interface StudentTimeSchedule {
  /** Generator updates that draw from `warmupProbs`; later ones draw from `probs`. 0 disables the warm-up. */
  readonly warmupIterations: number;
  readonly warmupProbs: readonly number[];
  readonly probs: readonly number[];
}

/** The N-step student's times, descending from pure noise: flow {1, .75, .5, .25}, VP {999, 749, 499, 249}/999. */
export function studentTimes(f: Formulation, steps: number): number[] {
  return trailingTimes(f, steps);
}

/**
 * Step counts a student trained on the N-step times can be sampled with: the divisors k of N, whose trailing
 * times are a subset of the trained ones ({1, .5} and {1} of {1, .75, .5, .25}). Descending.
 */
export function trainedStepCounts(steps: number): number[] {
  return Array.from({ length: steps }, (_, i) => steps - i).filter((k) => steps % k === 0);
}

/**
 * The default schedule for an N-step student, generalising the public LADD port's 4-step choice: warm-up spreads
 * its mass evenly over the easier (lower-noise) half of the times, [0, 0, .5, .5]; afterwards .7 goes to pure
 * noise and the rest is shared evenly, [.7, .1, .1, .1]. A 1-step student always trains at t = 1.
 */
export function defaultStudentTimeSchedule(steps: number, warmupIterations: number): StudentTimeSchedule {
  if (steps === 1) return { warmupIterations, warmupProbs: [1], probs: [1] };
  const easy = Math.ceil(steps / 2);
  const warmupProbs = Array.from({ length: steps }, (_, i) => (i >= steps - easy ? 1 / easy : 0));
  const probs = Array.from({ length: steps }, (_, i) => (i === 0 ? 0.7 : 0.3 / (steps - 1)));
  return { warmupIterations, warmupProbs, probs };
}

/** Checks a schedule against the number of student times; the error names the bad vector. */
export function validateStudentTimeSchedule(schedule: StudentTimeSchedule, steps: number): void {
  if (!(Number.isInteger(schedule.warmupIterations) && schedule.warmupIterations >= 0)) {
    throw new Error(`warmupIterations must be a non-negative integer, got ${schedule.warmupIterations}`);
  }
  for (const [name, p] of [
    ['warmupProbs', schedule.warmupProbs],
    ['probs', schedule.probs],
  ] as const) {
    if (p.length !== steps) {
      throw new Error(
        `${name} has ${p.length} entries but the student has ${steps} times: give one per time`,
      );
    }
    const sum = p.reduce((a, b) => a + b, 0);
    if (p.some((x) => !(x >= 0)) || Math.abs(sum - 1) > 1e-6) {
      throw new Error(`${name} [${p.join(', ')}] must be non-negative and sum to 1 (sums to ${sum})`);
    }
  }
}

/** The probabilities in force at generator update `iteration` (0-based). */
export function studentTimeProbs(schedule: StudentTimeSchedule, iteration: number): readonly number[] {
  return iteration < schedule.warmupIterations ? schedule.warmupProbs : schedule.probs;
}

/** `n` draws from `times` with probabilities `probs` (categorical, by inverse CDF of one uniform each). */
export function sampleStudentTimes(
  rng: Rng,
  times: readonly number[],
  probs: readonly number[],
  n: number,
): Float32Array {
  if (times.length !== probs.length) {
    throw new Error(`${times.length} student times but ${probs.length} probabilities`);
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    let k = 0;
    let acc = probs[0]!;
    while (k < times.length - 1 && u >= acc) acc += probs[++k]!;
    // Rounding can leave u past a sum just under 1: step back to the last time that can be drawn.
    while (k > 0 && probs[k] === 0) k--;
    out[i] = times[k]!;
  }
  return out;
}
