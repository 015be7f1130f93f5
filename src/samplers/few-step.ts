// Multistep few-step student sampler: consistency models (Song et al. 2023), Alg. 1; METHODS.md section 0.
import { type Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import type { Formulation } from '../diffusion/formulation.js';
import { gridScales, type SampleOptions, startState, timeVector } from './common.js';

export interface FewStepOptions extends SampleOptions {
  /** Source of the fresh noise drawn at every re-noising (advanced by the sampler). */
  readonly rng: Rng;
}

/**
 * The states of the few-step path from `start` (the state at times[0]): yields x at times[0], then, for each
 * next time, x = alpha_next D(x, t) + sigma_next epsNew with epsNew ~ N(0, I) from `rng`. A yielded state is
 * valid until the next one is asked for; stopping early skips the remaining denoiser calls. The generator owns
 * the states it makes (the caller keeps `start`). Returns the last x0 estimate, which the caller then owns.
 */
export function* fewStepPath(
  denoise: Denoiser,
  f: Formulation,
  start: tf.Tensor4D,
  opts: FewStepOptions,
): Generator<tf.Tensor4D, tf.Tensor4D> {
  const { times, labels, rng } = opts;
  const scales = gridScales(f, start, opts);
  const batch = start.shape[0];
  let x = start;
  try {
    for (let i = 0; ; i++) {
      yield x;
      const state = x;
      const x0Hat = tf.tidy(() => denoise(state, timeVector(times[i]!, batch), labels));
      if (i === times.length - 1) return x0Hat;
      // Re-noise to the next time with fresh noise (never the input noise again).
      const to = scales[i + 1]!;
      const next = tf.tidy(
        () => x0Hat.mul(to.alpha).add(randn(rng, start.shape).mul(to.sigma)) as tf.Tensor4D,
      );
      x0Hat.dispose();
      if (x !== start) x.dispose();
      x = next;
    }
  } finally {
    if (x !== start) x.dispose();
  }
}

/**
 * Consistency-model sampling: the few-step path from x = sigma_t0 noise (`fewStepPath`), returning its last x0
 * estimate; with one time that is D(sigma_t0 noise, t0). Caller keeps `noise`, owns the result.
 */
export function sampleFewStep(
  denoise: Denoiser,
  f: Formulation,
  noise: tf.Tensor4D,
  opts: FewStepOptions,
): tf.Tensor4D {
  const start = startState(noise, gridScales(f, noise, opts)[0]!);
  try {
    const path = fewStepPath(denoise, f, start, opts);
    for (let i = 0; ; i++) {
      const next = path.next();
      if (next.done) return next.value;
      opts.onStep?.({ step: i, t: opts.times[i]!, x: next.value });
    }
  } finally {
    start.dispose();
  }
}
