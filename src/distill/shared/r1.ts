// R1 regularisation of the discriminator on real data (Mescheder et al. 2018): the exact squared gradient norm
// ADD uses (METHODS.md section 1, step 6) and LADD's approximate form (section 3) that needs no second-order
// gradient. Both return a penalty to be weighted and added to the discriminator loss.
import * as tf from '../../core/tf.js';
import type { HeadLogits } from '../../nn/heads.js';

/**
 * Approximate R1: perturb the real input slightly (x + sigma * noise) and penalise how much the logits move,
 * mean_b sum_k (D_k(x + sigma n)_b - D_k(x)_b)^2. For small sigma this is sigma^2 times a random projection of
 * the squared gradient norm, at the cost of one more forward pass. Both logit sets must come from the same
 * discriminator weights; the penalty is differentiable in them.
 */
export function approximateR1(real: HeadLogits, perturbed: HeadLogits): tf.Scalar {
  if (real.length !== perturbed.length || real.length === 0) {
    throw new Error(
      `approximate R1 needs the same heads on both inputs, got ${real.length} and ${perturbed.length}`,
    );
  }
  return tf.tidy(() => {
    const perSample = tf.addN(real.map((r, k) => perturbed[k]!.sub(r).square())); // [B]
    return perSample.mean() as tf.Scalar;
  });
}

/** The perturbed input of approximate R1: x + sigma * noise. Caller owns the result. */
export function perturbForR1(x: tf.Tensor4D, noise: tf.Tensor4D, sigma: number): tf.Tensor4D {
  return tf.tidy(() => x.add(noise.mul(sigma)) as tf.Tensor4D);
}

/**
 * Exact R1: (1 / B) sum_b || d/d inputs sum_k D_k(inputs)_b ||^2, the squared gradient norm of the summed head
 * logits with respect to the discriminator's inputs (ADD: the frozen feature maps the heads read), averaged over
 * the batch. Samples must be independent in `discriminate` (no batch statistics), so the gradient of the
 * batch sum is each sample's own gradient. Call it inside the discriminator's loss: the gradient computation is
 * recorded on the outer tape, so the penalty is differentiable in the head weights (a second-order gradient).
 * Output biases get no gradient from it: add it to a loss that reaches every weight (the GAN loss does).
 */
export function exactR1(
  discriminate: (inputs: readonly tf.Tensor4D[]) => HeadLogits,
  inputs: readonly tf.Tensor4D[],
): tf.Scalar {
  if (inputs.length === 0) throw new Error('exact R1 needs at least one discriminator input');
  const batch = inputs[0]!.shape[0];
  return tf.tidy(() => {
    const total = (...xs: tf.Tensor[]): tf.Tensor => tf.addN([...discriminate(xs as tf.Tensor4D[])]).sum();
    const grads = tf.grads(total)([...inputs]);
    return tf.addN(grads.map((g) => g.square().sum())).div(batch) as tf.Scalar;
  });
}
