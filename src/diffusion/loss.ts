// The denoising loss every score network here trains with: the teacher on data, the hybrid's fake score on the
// student's samples. The net regresses its formulation's target (velocity, eps or v) at x_t = alpha x0 + sigma eps.
import type * as tf from '../core/tf.js';
import type { Condition } from '../nn/unet.js';
import type { RawNet } from './denoiser.js';
import { addNoise, type Formulation } from './formulation.js';

/**
 * Mean squared error of `net`'s raw output at x_t against the formulation's target for (x0, eps) at t (per-sample
 * times [B]). Differentiable in whatever `net` closes over; runs in the caller's scope.
 */
export function denoisingLoss(
  f: Formulation,
  net: RawNet,
  x0: tf.Tensor4D,
  eps: tf.Tensor4D,
  t: tf.Tensor1D,
  cond: Condition,
): tf.Scalar {
  const xt = addNoise(f, x0, eps, t);
  const netTime = t.mul(f.netTime(1)) as tf.Tensor1D;
  return net(xt, netTime, cond)
    .sub(f.target(x0, eps, t))
    .square()
    .mean() as tf.Scalar;
}
