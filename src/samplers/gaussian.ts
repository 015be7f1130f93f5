// Known-answer test fixtures for Gaussian data x0 ~ N(mean, std^2 I): the exact denoiser and exact ODE.
import * as tf from '../core/tf.js';
import { type Denoiser, impliedNoise, type RawNet } from '../diffusion/denoiser.js';
import { alphaSigmaTensors, type Formulation } from '../diffusion/formulation.js';
import type { Scales } from './common.js';

/**
 * The ideal denoiser E[x0 | x_t] = mean + (alpha std^2 / (alpha^2 std^2 + sigma^2)) (x_t - alpha mean): a
 * teacher whose every output is known in closed form, for sampler and distiller tests. Ignores labels. Caller
 * owns the result.
 */
export function gaussianDenoiser(f: Formulation, mean: number, std: number): Denoiser {
  return (x, t) =>
    tf.tidy(() => {
      const { alpha, sigma } = alphaSigmaTensors(f, t);
      // Var[x_t] = alpha^2 std^2 + sigma^2
      const marginalVariance = tf.add(alpha.square().mul(std ** 2), sigma.square());
      const gain = alpha.mul(std ** 2).div(marginalVariance);
      return x.sub(alpha.mul(mean)).mul(gain).add(mean) as tf.Tensor4D;
    });
}

/**
 * The same ideal model as a raw network of formulation `f` (outputs velocity, eps or v: `f.target` of the
 * ideal x0 and its implied noise), so `netDenoiser(gaussianRawNet(f, m, s), f)` exercises f's conversions.
 */
export function gaussianRawNet(f: Formulation, mean: number, std: number): RawNet {
  const ideal = gaussianDenoiser(f, mean, std);
  return (x, netTime, labels) =>
    tf.tidy(() => {
      const t = netTime.div(f.netTime(1)) as tf.Tensor1D; // netTime is linear in t
      const x0 = ideal(x, t, labels);
      return f.target(x0, impliedNoise(f, x, x0, t), t);
    });
}

/**
 * Exact probability-flow ODE transport of one value x from scales `from` to `to`: for Gaussian data
 * (x - alpha mean) / sqrt(alpha^2 std^2 + sigma^2) is constant along the ODE.
 */
export function gaussianTransport(mean: number, std: number, x: number, from: Scales, to: Scales): number {
  const spread = (s: Scales): number => Math.sqrt(s.alpha ** 2 * std ** 2 + s.sigma ** 2);
  return to.alpha * mean + ((x - from.alpha * mean) / spread(from)) * spread(to);
}
