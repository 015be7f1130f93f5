// Heun's second-order sampler: Karras et al. 2022 (EDM), Alg. 1 without churn, in (x / alpha, sigma / alpha).
import * as tf from '../core/tf.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import type { Formulation } from '../diffusion/formulation.js';
import { ddimStep, gridScales, type SampleOptions, startState, timeVector } from './common.js';

/**
 * With y = x / alpha and s = sigma / alpha the probability-flow ODE is dy/ds = (y - D) / s = eps (EDM's ODE
 * with scale 1 and sigma(t) = t), so each step is: 1. an Euler (DDIM) predictor to the next time; 2. the
 * trapezoidal correction averaging the slopes eps at both ends. Two denoiser calls per step. As in EDM Alg. 1
 * the step to sigma = 0 is plain Euler; so is a step from alpha = 0 (flow t = 1, zero-terminal-SNR VP), where
 * y and s are infinite (its local error is still O(h^2)). Caller keeps `noise`, owns the result.
 */
export function sampleHeun(
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
    const from = scales[i]!;
    const to = scales[i + 1]!;
    const next = tf.tidy(() => {
      // 1. Euler predictor.
      const x0Hat = denoise(x, timeVector(t, batch), labels);
      const xEuler = ddimStep(x, from, to, x0Hat);
      if (to.sigma === 0 || from.alpha === 0) return xEuler;
      // 2. Trapezoidal corrector: y_next = y + (s_next - s) (eps + epsNext) / 2, then x_next = alpha_next
      // y_next.
      const x0Next = denoise(xEuler, timeVector(times[i + 1]!, batch), labels);
      const eps = x.sub(x0Hat.mul(from.alpha)).div(from.sigma);
      const epsNext = xEuler.sub(x0Next.mul(to.alpha)).div(to.sigma);
      const ratio = to.alpha / from.alpha;
      return x.mul(ratio).add(eps.add(epsNext).mul(0.5 * (to.sigma - ratio * from.sigma))) as tf.Tensor4D;
    });
    x.dispose();
    x = next;
  });
  return x;
}
