// The ops a ladder U-Net training step uses, and a check that the active backend runs each one forward
// and backward (kernel and gradient registered), so a missing kernel shows up before a long run does.

import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';

/** One differentiable op, applied to an input of `inputShape`; caller owns the result. */
export interface OpCase {
  readonly name: string;
  readonly inputShape: readonly number[];
  readonly run: (x: tf.Tensor) => tf.Tensor;
  /** Input values where the op is not differentiable; numerical checks keep inputs away from them. */
  readonly kinks?: readonly number[];
}

/** A fixed, well-conditioned constant (weights, biases) so each case is deterministic. */
function constant(shape: readonly number[], seed: number): tf.Tensor {
  return tf.mul(randn(new Rng(seed), shape), 0.5);
}

const positive = (x: tf.Tensor): tf.Tensor => tf.add(tf.abs(x), 0.5);
const as4D = (x: tf.Tensor): tf.Tensor4D => x as tf.Tensor4D;
const IMG = [2, 7, 7, 4] as const; // odd spatial size exercises 'same' padding with stride 2

/** Forward ops of a U-Net training step (plus their close relatives); each must have a gradient. */
export const TRAINING_OPS: readonly OpCase[] = [
  {
    name: 'conv2d 3x3 s1 same',
    inputShape: IMG,
    run: (x) => tf.conv2d(as4D(x), as4D(constant([3, 3, 4, 5], 1)), 1, 'same'),
  },
  {
    name: 'conv2d 3x3 s2 same',
    inputShape: IMG,
    run: (x) => tf.conv2d(as4D(x), as4D(constant([3, 3, 4, 5], 2)), 2, 'same'),
  },
  {
    name: 'conv2d 3x3 s2 valid',
    inputShape: IMG,
    run: (x) => tf.conv2d(as4D(x), as4D(constant([3, 3, 4, 3], 3)), 2, 'valid'),
  },
  {
    name: 'conv2d 1x1',
    inputShape: IMG,
    run: (x) => tf.conv2d(as4D(x), as4D(constant([1, 1, 4, 6], 4)), 1, 'valid'),
  },
  {
    name: 'conv2dTranspose s2',
    inputShape: [2, 4, 4, 3],
    run: (x) => tf.conv2dTranspose(as4D(x), as4D(constant([3, 3, 2, 3], 5)), [2, 8, 8, 2], 2, 'same'),
  },
  {
    name: 'matMul',
    inputShape: [5, 6],
    run: (x) => tf.matMul(x as tf.Tensor2D, constant([6, 3], 6) as tf.Tensor2D),
  },
  {
    name: 'dense layer (tokens x shared weights)',
    inputShape: [2, 5, 4],
    run: (x) => tf.matMul(x as tf.Tensor3D, constant([4, 3], 13) as tf.Tensor2D),
  },
  {
    name: 'batched matMul (transposeB)',
    inputShape: [2, 5, 4],
    run: (x) => tf.matMul(x as tf.Tensor3D, x as tf.Tensor3D, false, true),
  },
  {
    name: 'add/sub/mul/div (broadcast)',
    inputShape: IMG,
    run: (x) => {
      const bias = constant([4], 7);
      return tf.div(tf.sub(tf.mul(tf.add(x, bias), x), bias), positive(constant([1, 1, 1, 4], 8)));
    },
  },
  {
    name: 'reshape + transpose',
    inputShape: IMG,
    run: (x) => tf.transpose(tf.reshape(x, [2, 49, 4]), [0, 2, 1]),
  },
  { name: 'concat', inputShape: IMG, run: (x) => tf.concat([x, tf.mul(x, 2)], 3) },
  { name: 'slice', inputShape: IMG, run: (x) => tf.slice(x, [0, 1, 2, 0], [2, 5, 4, 3]) },
  { name: 'tile', inputShape: [2, 3, 4], run: (x) => tf.tile(x, [1, 2, 3]) },
  {
    name: 'nearest 2x upsample (reshape + broadcast)',
    inputShape: [2, 3, 3, 4],
    run: (x) =>
      tf.reshape(tf.mul(tf.reshape(x, [2, 3, 1, 3, 1, 4]), tf.ones([1, 1, 2, 1, 2, 1])), [2, 6, 6, 4]),
  },
  {
    name: 'group norm (moments over [B,H,W,G,C/G])',
    inputShape: [2, 5, 5, 4],
    run: (x) => {
      const grouped = tf.reshape(x, [2, 5, 5, 2, 2]);
      const { mean, variance } = tf.moments(grouped, [1, 2, 4], true);
      return tf.reshape(tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, 1e-5))), [2, 5, 5, 4]);
    },
  },
  { name: 'mean + sum', inputShape: IMG, run: (x) => tf.add(tf.mean(x, [1, 2]), tf.sum(tf.sum(x, 3))) },
  { name: 'sqrt', inputShape: [3, 4], run: (x) => tf.sqrt(positive(x)), kinks: [0] },
  { name: 'sigmoid + silu', inputShape: [3, 4], run: (x) => tf.mul(x, tf.sigmoid(x)) },
  { name: 'exp + log', inputShape: [3, 4], run: (x) => tf.add(tf.exp(x), tf.log(positive(x))), kinks: [0] },
  { name: 'softmax', inputShape: [3, 5], run: (x) => tf.softmax(x) },
  { name: 'logSoftmax', inputShape: [3, 5], run: (x) => tf.logSoftmax(x) },
  {
    name: 'gather (embedding)',
    inputShape: [6, 4],
    run: (x) => tf.gather(x, tf.tensor1d([0, 3, 3, 5], 'int32')),
  },
  { name: 'sin + cos', inputShape: [3, 4], run: (x) => tf.add(tf.sin(x), tf.cos(x)) },
  { name: 'square', inputShape: [3, 4], run: (x) => tf.square(x) },
  {
    name: 'maximum + relu',
    inputShape: [3, 4],
    run: (x) => tf.add(tf.maximum(x, 0.1), tf.relu(x)),
    kinks: [0, 0.1],
  },
  { name: 'minimum', inputShape: [3, 4], run: (x) => tf.minimum(x, tf.mul(x, 0.5)), kinks: [0] },
  { name: 'clipByValue', inputShape: [3, 4], run: (x) => tf.clipByValue(x, -0.5, 0.5), kinks: [-0.5, 0.5] },
  {
    name: 'where (x > 0)',
    inputShape: [3, 4],
    run: (x) => tf.where(tf.greater(x, 0), x, tf.mul(x, 0.1)),
    kinks: [0],
  },
  { name: 'abs + neg', inputShape: [3, 4], run: (x) => tf.neg(tf.abs(x)), kinks: [0] },
  {
    name: 'pow (scalar and tensor exponent)',
    inputShape: [3, 4],
    run: (x) => tf.add(tf.pow(positive(x), 1.5), tf.pow(positive(x), x)),
    kinks: [0],
  },
  { name: 'leakyRelu', inputShape: [3, 4], run: (x) => tf.leakyRelu(x, 0.2), kinks: [0] },
  { name: 'logSigmoid + softplus', inputShape: [3, 4], run: (x) => tf.add(tf.logSigmoid(x), tf.softplus(x)) },
  { name: 'avgPool 2x2', inputShape: [2, 6, 6, 3], run: (x) => tf.avgPool(as4D(x), 2, 2, 'valid') },
  { name: 'maxPool 2x2', inputShape: [2, 6, 6, 3], run: (x) => tf.maxPool(as4D(x), 2, 2, 'valid') },
  { name: 'avgPool 3x3 s2 same', inputShape: [2, 7, 7, 2], run: (x) => tf.avgPool(as4D(x), 3, 2, 'same') },
  { name: 'maxPool 3x3 s2 same', inputShape: [2, 7, 7, 2], run: (x) => tf.maxPool(as4D(x), 3, 2, 'same') },
  { name: 'tanh', inputShape: [3, 4], run: (x) => tf.tanh(x) },
  { name: 'max + min', inputShape: [3, 5], run: (x) => tf.add(tf.max(x, 1), tf.min(x, 1)) },
  { name: 'squaredDifference', inputShape: [3, 4], run: (x) => tf.squaredDifference(x, constant([4], 9)) },
  {
    name: 'stack + unstack',
    inputShape: [3, 4],
    run: (x) => tf.stack([tf.unstack(x)[1] ?? x, tf.sum(x, 0)]),
  },
  {
    name: 'split + pad',
    inputShape: [3, 4],
    run: (x) =>
      tf.pad(tf.split(x, 2, 1)[1] ?? x, [
        [1, 0],
        [0, 2],
      ]),
  },
  { name: 'expandDims + squeeze', inputShape: [3, 4], run: (x) => tf.squeeze(tf.expandDims(x, 1), [1]) },
  {
    name: 'resizeNearestNeighbor 2x',
    inputShape: [1, 3, 3, 2],
    run: (x) => tf.image.resizeNearestNeighbor(as4D(x), [6, 6]),
  },
  { name: 'erf + elu', inputShape: [3, 4], run: (x) => tf.add(tf.erf(x), tf.elu(x)) },
  { name: 'broadcastTo', inputShape: [1, 4], run: (x) => tf.broadcastTo(x, [3, 4]) },
  { name: 'addN', inputShape: [3, 4], run: (x) => tf.addN([x, tf.mul(x, 2), x]) },
  {
    name: 'reciprocal + rsqrt',
    inputShape: [3, 4],
    run: (x) => tf.add(tf.reciprocal(positive(x)), tf.rsqrt(positive(x))),
    kinks: [0],
  },
  {
    name: 'sigmoid cross-entropy',
    inputShape: [3, 4],
    run: (x) => tf.losses.sigmoidCrossEntropy(tf.onesLike(x), x),
  },
];

/** An op the active backend cannot run or differentiate. */
export interface CoverageGap {
  readonly op: string;
  readonly stage: 'forward' | 'gradient' | 'optimizer';
  readonly message: string;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/**
 * Runs every op forward and backward (plus one Adam step) on the active backend and lists what fails.
 * An empty list means a U-Net training step has every kernel and gradient it needs.
 */
export function findCoverageGaps(ops: readonly OpCase[] = TRAINING_OPS): CoverageGap[] {
  const gaps: CoverageGap[] = [];
  for (const op of ops) {
    tf.tidy(() => {
      const x = randn(new Rng(11), op.inputShape);
      try {
        op.run(x).dataSync();
      } catch (e) {
        gaps.push({ op: op.name, stage: 'forward', message: firstLine(e) });
        return;
      }
      try {
        const [dx] = tf.grads((v: tf.Tensor) => tf.sum(op.run(v)))([x]);
        dx?.dataSync();
      } catch (e) {
        gaps.push({ op: op.name, stage: 'gradient', message: firstLine(e) });
      }
    });
  }
  const adamGap = adamStepGap();
  if (adamGap) gaps.push(adamGap);
  return gaps;
}

function adamStepGap(): CoverageGap | undefined {
  const initial = randn(new Rng(12), [4, 3]);
  const weights = tf.variable(initial);
  const optimizer = tf.train.adam(1e-3);
  try {
    tf.tidy(() => {
      optimizer.minimize(() => tf.sum(tf.square(weights)), false, [weights]);
    });
    weights.dataSync();
    return undefined;
  } catch (e) {
    return { op: 'adam step', stage: 'optimizer', message: firstLine(e) };
  } finally {
    optimizer.dispose();
    weights.dispose();
    initial.dispose();
  }
}
