// Deterministic Euler / DDIM sampler: Song et al. 2021 (DDIM), eq. 12 with eta = 0.
import * as tf from '../core/tf.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import type { Formulation } from '../diffusion/formulation.js';
import { ddimStep, gridScales, type SampleOptions, startState, timeVector } from './common.js';

/**
 * Euler steps of the probability-flow ODE in (x / alpha, sigma / alpha): x_next = alpha_next x0Hat +
 * sigma_next epsHat with epsHat = (x - alpha x0Hat) / sigma. For flow this is exactly the Euler step on the
 * velocity. One denoiser call per time. Caller keeps `noise` and owns the result.
 */
export function sampleEuler(
  denoise: Denoiser,
  f: Formulation,
  noise: tf.Tensor4D,
  opts: SampleOptions,
): tf.Tensor4D {
  const { times, labels, onStep } = opts;
  const scales = gridScales(f, noise, opts);
  const batch = noise.shape[0];
  let x = startState(noise, scales[0]!);
  times.forEach((t, i) => {
    onStep?.({ step: i, t, x });
    const next = tf.tidy(() =>
      ddimStep(x, scales[i]!, scales[i + 1]!, denoise(x, timeVector(t, batch), labels)),
    );
    x.dispose();
    x = next;
  });
  return x;
}
