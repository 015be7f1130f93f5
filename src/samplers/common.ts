// Shared pieces of the samplers: options, the time grid's (alpha, sigma) and the DDIM step they all build on.
import * as tf from '../core/tf.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import type { Formulation } from '../diffusion/formulation.js';
import type { Condition } from '../nn/unet.js';

/** What a sampler reports before each step; `x` is valid only during the callback (clone it to keep it). */
export interface StepInfo {
  /** 0-based step index. */
  readonly step: number;
  /** The time `x` is at (times[step]). */
  readonly t: number;
  /** The current state x_t [B, H, W, C]; the sampler disposes it. */
  readonly x: tf.Tensor4D;
}

export interface SampleOptions {
  /** Sampler times, strictly descending in (0, 1]; every sampler then ends at t = 0 (clean data). */
  readonly times: readonly number[];
  /** What each sample is conditioned on (class labels or prompt tokens, see Condition); the caller keeps it. */
  readonly labels: Condition;
  readonly onStep?: (info: StepInfo) => void;
}

/** Signal and noise scales of one point on the sampler's grid. */
export interface Scales {
  readonly alpha: number;
  readonly sigma: number;
}

/**
 * The sampler's end point t = 0 is taken as clean data, alpha = 1 and sigma = 0, for both formulations
 * (flow's alphaSigma(0) is exactly that; VP's first discrete step still has sigma ~0.03, which k-diffusion's
 * trailing sigma = 0 and diffusers' `set_alpha_to_one` also skip). So the last step always returns the x0
 * estimate.
 */
export const CLEAN: Scales = { alpha: 1, sigma: 0 };

/** (alpha, sigma) at each time, followed by CLEAN; checks the times and the batch. */
export function gridScales(f: Formulation, noise: tf.Tensor4D, opts: SampleOptions): Scales[] {
  const { times, labels } = opts;
  if (times.length === 0) throw new Error('sampler times are empty: pass at least one time in (0, 1]');
  times.forEach((t, i) => {
    if (!(t > 0 && t <= 1)) throw new Error(`sampler times[${i}] = ${t} is outside (0, 1]; t = 0 is implied`);
    const prev = times[i - 1];
    if (prev !== undefined && !(t < prev)) {
      throw new Error(
        `sampler times must strictly descend, but times[${i - 1}] = ${prev}, times[${i}] = ${t}`,
      );
    }
  });
  if (labels.shape[0] !== noise.shape[0]) {
    throw new Error(
      `labels have ${labels.shape[0]} entries but noise has batch ${noise.shape[0]}: pass one per sample`,
    );
  }
  return [...times.map((t) => f.alphaSigma(t)), CLEAN];
}

/** The same time for every sample of the batch: [B]. */
export function timeVector(t: number, batch: number): tf.Tensor1D {
  return tf.fill([batch], t) as tf.Tensor1D;
}

/**
 * The starting state at the first time: x = sigma_t0 * noise. At pure noise (flow t = 1, zero-terminal-SNR
 * VP) that is the noise itself; for VP without zero terminal SNR (alpha_999 ~ 0.07) it drops the unknown
 * alpha x0 term, the usual approximation. To start from an exact x_t0 instead, pass x_t0 / sigma_t0 as the
 * noise. Caller owns the result.
 */
export function startState(noise: tf.Tensor4D, first: Scales): tf.Tensor4D {
  return noise.mul(first.sigma);
}

/** Per-sample signal and noise scales, [B, 1, 1, 1] each (one time per sample, as distillation draws them). */
export interface SampleScales {
  readonly alpha: tf.Tensor4D;
  readonly sigma: tf.Tensor4D;
}

/**
 * (alpha, sigma) at per-sample times `t` (host values, so nothing is read back), with t = 0 as CLEAN like the
 * grid's end point. Caller owns the result.
 */
export function scalesAt(f: Formulation, t: ArrayLike<number>): SampleScales {
  const alpha = new Float32Array(t.length);
  const sigma = new Float32Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const s = t[i] === 0 ? CLEAN : f.alphaSigma(t[i]!);
    alpha[i] = s.alpha;
    sigma[i] = s.sigma;
  }
  return { alpha: tf.tensor4d(alpha, [t.length, 1, 1, 1]), sigma: tf.tensor4d(sigma, [t.length, 1, 1, 1]) };
}

/**
 * DDIM step (Song et al. 2021, eq. 12 with eta = 0): keep the implied noise eps = (x - alpha x0) / sigma and
 * move to x_next = alpha_next x0 + sigma_next eps. It is the Euler step of the ODE in (x / alpha, sigma /
 * alpha) and stays finite at alpha = 0 (pure noise). The scales are the grid's (one time for the batch) or
 * per-sample ones (`scalesAt`). Caller owns the result.
 */
export function ddimStep(
  x: tf.Tensor4D,
  from: Scales | SampleScales,
  to: Scales | SampleScales,
  x0Hat: tf.Tensor4D,
): tf.Tensor4D {
  return tf.tidy(() => {
    if (to.sigma === 0) return x0Hat.mul(to.alpha);
    const eps = x.sub(x0Hat.mul(from.alpha)).div(from.sigma);
    return x0Hat.mul(to.alpha).add(eps.mul(to.sigma)) as tf.Tensor4D;
  });
}

/**
 * One DDIM step with per-sample times: from x at `from` to `to` (t = 0 is clean data, where the step returns
 * the x0 estimate). Runs inside the caller's scope.
 */
export function ddimStepAt(
  denoise: Denoiser,
  f: Formulation,
  x: tf.Tensor4D,
  from: Float32Array,
  to: Float32Array,
  labels: Condition,
): tf.Tensor4D {
  const x0Hat = denoise(x, tf.tensor1d(from), labels);
  return ddimStep(x, scalesAt(f, from), scalesAt(f, to), x0Hat);
}
