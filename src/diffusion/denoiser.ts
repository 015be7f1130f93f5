// Every model, teacher or student, is seen through one contract: D(x_t, t, cond) -> x0 estimate
// (the "denoiser" view of k-diffusion / EDM). Samplers, distillers and metrics only talk to denoisers.
import * as tf from '../core/tf.js';
import type { Condition } from '../nn/unet.js';
import { alphaSigmaTensors, type Formulation } from './formulation.js';

/**
 * x: [B, H, W, C] noisy input at per-sample time t: [B] in [0, 1]; cond: class labels [B] or prompt tokens
 * [B, L] (see Condition). Returns the x0 estimate [B, H, W, C]; caller owns it. Never disposes its inputs.
 */
export type Denoiser = (x: tf.Tensor4D, t: tf.Tensor1D, cond: Condition) => tf.Tensor4D;

/** A raw network: (x_t, net time input, cond) -> its prediction (velocity, eps or v). */
export type RawNet = (x: tf.Tensor4D, netTime: tf.Tensor1D, cond: Condition) => tf.Tensor4D;

/** Wraps a raw net in its formulation's conversion to x0. */
export function netDenoiser(net: RawNet, f: Formulation): Denoiser {
  return (x, t, labels) =>
    tf.tidy(() => {
      const netTime = t.mul(f.netTime(1)) as tf.Tensor1D; // netTime is linear in t for both formulations
      return f.toX0(net(x, netTime, labels), x, t);
    });
}

/**
 * Classifier-free guidance: D_w = D(x, null) + w (D(x, c) - D(x, null)), null being the null class or the empty
 * prompt. Conditional and unconditional halves run as one batch. w = 1 is the conditional model; w = 0 the unconditional one.
 */
export function guidedDenoiser(
  denoise: Denoiser,
  scale: number,
  nullCondition: (batch: number) => Condition,
): Denoiser {
  if (scale === 1) return denoise;
  return (x, t, cond) =>
    tf.tidy(() => {
      const both = denoise(
        tf.concat([x, x]),
        tf.concat([t, t]),
        tf.concat([cond.toInt(), nullCondition(x.shape[0])]) as Condition,
      );
      const [conditional, unconditional] = tf.split(both, 2) as [tf.Tensor4D, tf.Tensor4D];
      return unconditional.add(conditional.sub(unconditional).mul(scale)) as tf.Tensor4D;
    });
}

/** The noise a denoiser's x0 estimate implies: eps = (x_t - alpha x0) / sigma. Caller owns the result. */
export function impliedNoise(f: Formulation, x: tf.Tensor4D, x0: tf.Tensor4D, t: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => {
    const { alpha, sigma } = alphaSigmaTensors(f, t);
    return x.sub(x0.mul(alpha)).div(sigma) as tf.Tensor4D;
  });
}
