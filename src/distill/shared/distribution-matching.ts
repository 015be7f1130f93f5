// Distribution matching (DMD, Yin et al. 2024; DMD2, arXiv 2405.14867): the gradient of KL(p_student || p_teacher)
// with respect to a student sample x is, at every noise level, the difference of the two distributions' scores at
// the re-noised x_t = alpha_t x + sigma_t eps, times dx_t/dx = alpha_t. With denoisers, s(x_t) = (alpha_t D(x_t) -
// x_t) / sigma_t^2, so the difference is alpha_t / sigma_t^2 (D_fake(x_t) - D_real(x_t)): D_real is the frozen
// teacher (with guidance), D_fake a score network trained online on the student's samples.
import { stopGradient } from '../../core/stop-gradient.js';
import * as tf from '../../core/tf.js';
import type { Denoiser } from '../../diffusion/denoiser.js';
import { addNoise, type Formulation } from '../../diffusion/formulation.js';
import type { Condition } from '../../nn/unet.js';

/** One draw of the distribution-matching term: the noise level and noise that re-noise the student's samples. */
export interface MatchingDraw {
  /** Per-sample times [B] in (0, 1). */
  readonly t: tf.Tensor1D;
  /** Noise shaped like the samples. */
  readonly eps: tf.Tensor4D;
  /** The samples' condition (classes [B] or prompt tokens, int32): both scores are conditioned on it. */
  readonly labels: Condition;
}

/**
 * DMD2's normalised gradient at the samples `x` (a constant: no gradient flows through it or the scores):
 *   x_t = alpha_t sg(x) + sigma_t eps,  g = (D_fake(x_t) - D_real(x_t)) / mean_{c,h,w} |x - D_real(x_t)|.
 * DMD's weight w_t = sigma_t^2 / alpha_t / mean|x - D_real| cancels the score difference's alpha_t / sigma_t^2 (and
 * the chain rule's alpha_t) and leaves this per-sample normaliser, which makes the step size alike at every t.
 * Descending g moves x towards what the teacher denoises it to and away from what the student's own distribution
 * does. Caller owns the result.
 */
export function distributionMatchingGradient(
  f: Formulation,
  x: tf.Tensor4D,
  draw: MatchingDraw,
  real: Denoiser,
  fake: Denoiser,
): tf.Tensor4D {
  return tf.tidy(() => {
    const sample = stopGradient(x);
    const xt = addNoise(f, sample, draw.eps, draw.t);
    const realX0 = stopGradient(real(xt, draw.t, draw.labels));
    const fakeX0 = stopGradient(fake(xt, draw.t, draw.labels));
    // Floored like DMD2's nan_to_num: a sample the teacher already reproduces exactly gets no step, not NaN.
    const scale = sample.sub(realX0).abs().mean([1, 2, 3], true).maximum(1e-12);
    return stopGradient(fakeX0.sub(realX0).div(scale) as tf.Tensor4D);
  });
}

/**
 * The surrogate loss whose gradient with respect to x is g / x.size: 0.5 mean((x - sg(x - g))^2). Minimising it
 * moves each sample by -g (scaled by the learning rate), through whatever made x. Runs in the caller's scope.
 */
export function distributionMatchingLoss(x: tf.Tensor4D, gradient: tf.Tensor4D): tf.Scalar {
  const target = stopGradient(x.sub(gradient) as tf.Tensor4D);
  return x.sub(target).square().mean().mul(0.5) as tf.Scalar;
}
