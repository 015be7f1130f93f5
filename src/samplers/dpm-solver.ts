// DPM-Solver++(2M) sampler: Lu et al. 2022 (arXiv 2211.01095), Alg. 2, data prediction in log-SNR time.
import * as tf from '../core/tf.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import type { Formulation } from '../diffusion/formulation.js';
import { gridScales, type SampleOptions, type Scales, startState, timeVector } from './common.js';

/** lambda = log(alpha / sigma): -inf at alpha = 0, +inf at sigma = 0. */
const logSnrHalf = ({ alpha, sigma }: Scales): number => Math.log(alpha) - Math.log(sigma);

/**
 * x_next = (sigma_next / sigma) x - alpha_next (e^-h - 1) D, h = lambda_next - lambda, where D = (1 + 1/(2r))
 * x0Hat - 1/(2r) x0HatPrev with r = hPrev / h (second order), or D = x0Hat (first order = DDIM). Starting
 * from alpha = 0, lambda = -inf: h = +inf gives e^-h = 0 and the next step's 1/r = 0, so the first two steps
 * are first order without NaN. The last step, to sigma = 0 (h = +inf), is first order too and returns x0Hat.
 * One denoiser call per time. Caller keeps `noise`, owns the result.
 */
export function sampleDpmSolver2M(
  denoise: Denoiser,
  f: Formulation,
  noise: tf.Tensor4D,
  opts: SampleOptions,
): tf.Tensor4D {
  const { times, labels, onStep } = opts;
  const scales = gridScales(f, noise, opts);
  const batch = noise.shape[0];
  let x = startState(noise, scales[0]!);
  let x0HatPrev: tf.Tensor4D | undefined;
  let hPrev = Number.POSITIVE_INFINITY;
  times.forEach((t, i) => {
    onStep?.({ step: i, t, x });
    const from = scales[i]!;
    const to = scales[i + 1]!;
    const h = logSnrHalf(to) - logSnrHalf(from);
    const next = tf.tidy(() => {
      const x0Hat = denoise(x, timeVector(t, batch), labels);
      let d: tf.Tensor4D = x0Hat;
      if (x0HatPrev !== undefined && to.sigma > 0) {
        const c = 1 / (2 * (hPrev / h)); // 0 when hPrev = +inf
        d = x0Hat.mul(1 + c).sub(x0HatPrev.mul(c));
      }
      const xNext = x.mul(to.sigma / from.sigma).add(d.mul(-to.alpha * Math.expm1(-h))) as tf.Tensor4D;
      return { xNext, x0Hat };
    });
    x.dispose();
    x0HatPrev?.dispose();
    x = next.xNext;
    x0HatPrev = next.x0Hat;
    hPrev = h;
  });
  x0HatPrev?.dispose();
  return x;
}
