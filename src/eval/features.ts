// Batched inference with a feature net: the features and predicted classes of a set of images, for the metrics.
import * as tf from '../core/tf.js';
import type { LoadedFeatureNet } from '../models/feature-net.js';
import { featureNetForward } from '../nn/feature-net.js';

/** Features (row-major [count, dim]) and predicted classes of a set of images. */
export interface ExtractedFeatures {
  readonly features: Float32Array;
  readonly predicted: Int32Array;
  readonly count: number;
  readonly dim: number;
}

/**
 * Runs the net over `count` NHWC images in [-1, 1] (flat, as datasets hold them) in batches. No tensors are
 * left behind.
 */
export async function extractFeatures(
  net: Pick<LoadedFeatureNet, 'params' | 'config'>,
  images: Float32Array,
  count: number,
  batchSize = 500,
): Promise<ExtractedFeatures> {
  const cfg = net.config.featureNet;
  const [h, w, c] = cfg.imageShape;
  const size = h * w * c;
  if (images.length !== count * size) {
    throw new Error(
      `extractFeatures: got ${images.length} values, but ${count} images of ${h}x${w}x${c} need ${count * size}`,
    );
  }
  const dim = cfg.featureDim;
  const features = new Float32Array(count * dim);
  const predicted = new Int32Array(count);
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    const [f, p] = tf.tidy(() => {
      const x = tf.tensor4d(images.subarray(start * size, end * size), [end - start, h, w, c]);
      const out = featureNetForward(net.params, cfg, x);
      return [out.features, tf.argMax(out.logits, 1)];
    });
    features.set((await f.data()) as Float32Array, start * dim); // data() waits for the backend
    predicted.set(await p.data(), start);
    tf.dispose([f, p]);
  }
  return { features, predicted, count, dim };
}
