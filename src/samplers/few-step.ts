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
 * Starting from x = sigma_t0 noise, at each time predict x0Hat = D(x, t_i), then re-noise to the next time
 * with fresh noise: x = alpha_next x0Hat + sigma_next epsNew, epsNew ~ N(0, I) from `opts.rng`. Returns the
 * last x0Hat; with one time that is D(sigma_t0 noise, t0). Caller keeps `noise`, owns the result.
 */
export function sampleFewStep(
  denoise: Denoiser,
  f: Formulation,
  noise: tf.Tensor4D,
  opts: FewStepOptions,
): tf.Tensor4D {
  const { times, labels, onStep, rng } = opts;
  const scales = gridScales(f, noise, opts);
  const batch = noise.shape[0];
  let x = startState(noise, scales[0]!);
  for (let i = 0; ; i++) {
    const t = times[i]!;
    onStep?.({ step: i, t, x });
    const state = x;
    const x0Hat = tf.tidy(() => denoise(state, timeVector(t, batch), labels));
    x.dispose();
    if (i === times.length - 1) return x0Hat;
    // Re-noise to the next time with fresh noise (never the input noise again).
    const to = scales[i + 1]!;
    x = tf.tidy(() => x0Hat.mul(to.alpha).add(randn(rng, noise.shape).mul(to.sigma)) as tf.Tensor4D);
    x0Hat.dispose();
  }
}
