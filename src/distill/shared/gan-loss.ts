// GAN objectives over per-head logits: hinge (ADD, LADD; METHODS.md sections 1 and 3) and non-saturating (PADD,
// section 2). Each head k gives one logit per sample, [B]; losses are summed over heads, averaged over the batch.
import * as tf from '../../core/tf.js';
import type { HeadLogits } from '../../nn/heads.js';

export type GanLossKind = 'hinge' | 'non-saturating';

function sumOverHeads(logits: HeadLogits, perHead: (l: tf.Tensor1D) => tf.Scalar): tf.Scalar {
  if (logits.length === 0) throw new Error('the discriminator gave no head logits: tap at least one feature');
  return tf.tidy(() => tf.addN(logits.map(perHead)) as tf.Scalar);
}

/** Hinge, D side: sum_k mean(max(0, 1 - D_k(real))) + mean(max(0, 1 + D_k(fake))). */
export function hingeDiscriminatorLoss(real: HeadLogits, fake: HeadLogits): tf.Scalar {
  return tf.tidy(() =>
    sumOverHeads(real, (l) => tf.relu(tf.sub(1, l)).mean()).add(
      sumOverHeads(fake, (l) => tf.relu(tf.add(1, l)).mean()),
    ),
  );
}

/** Hinge, G side: -sum_k mean(D_k(fake)). */
export function hingeGeneratorLoss(fake: HeadLogits): tf.Scalar {
  return sumOverHeads(fake, (l) => l.mean().neg() as tf.Scalar);
}

/**
 * Non-saturating, D side: -log sigmoid(D(real)) - log(1 - sigmoid(D(fake))), written with softplus for
 * stability: softplus(-real) + softplus(fake).
 */
export function nonSaturatingDiscriminatorLoss(real: HeadLogits, fake: HeadLogits): tf.Scalar {
  return tf.tidy(() =>
    sumOverHeads(real, (l) => tf.softplus(l.neg()).mean()).add(
      sumOverHeads(fake, (l) => tf.softplus(l).mean()),
    ),
  );
}

/** Non-saturating, G side: -log sigmoid(D(fake)) = softplus(-fake). */
export function nonSaturatingGeneratorLoss(fake: HeadLogits): tf.Scalar {
  return sumOverHeads(fake, (l) => tf.softplus(l.neg()).mean());
}

/** The discriminator loss of `kind`. */
export function discriminatorLoss(kind: GanLossKind, real: HeadLogits, fake: HeadLogits): tf.Scalar {
  return kind === 'hinge' ? hingeDiscriminatorLoss(real, fake) : nonSaturatingDiscriminatorLoss(real, fake);
}

/** The generator loss of `kind`. */
export function generatorLoss(kind: GanLossKind, fake: HeadLogits): tf.Scalar {
  return kind === 'hinge' ? hingeGeneratorLoss(fake) : nonSaturatingGeneratorLoss(fake);
}

/** Mean logit over heads and batch, the number the logs report as realLogit / fakeLogit. */
export function meanLogit(logits: HeadLogits): tf.Scalar {
  return tf.tidy(() => tf.addN(logits.map((l) => l.mean())).div(logits.length) as tf.Scalar);
}
