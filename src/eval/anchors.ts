// Sanity anchors for the FID scale of one feature net: test split against itself (random halves), training
// images, blurred test images and pure noise, each against the test reference that `ladder eval` uses.

import { Rng } from '../core/rng.js';
import { loadDataset } from '../data/dataset.js';
import { copyRows } from '../data/loader.js';
import type { LoadedFeatureNet } from '../models/feature-net.js';
import { extractFeatures } from './features.js';
import { classAccuracy, featureStats, frechetDistance, frechetDistanceFromStats } from './metrics.js';
import { loadReference, type ReferenceOptions, type ReferenceSet } from './reference.js';

/** Gaussian blur of the "blurred" anchor, in pixels (std of the kernel). */
export const ANCHOR_BLUR_SIGMA_PX = 1;

/** FID anchors as kept in a feature net's card.json. Expected order: testHalves << blurred << noise. */
export interface FidAnchors {
  /** Images per anchor set (train, blurred, noise); the halves hold half of the reference each. */
  readonly samples: number;
  /** Test images in the reference statistics. */
  readonly referenceCount: number;
  readonly blurSigmaPx: number;
  readonly fid: {
    /** First half of the test split against the second half: the floor a perfect generator reaches. */
    readonly testHalves: number;
    /** Training images against the test reference. */
    readonly train: number;
    /** Gaussian-blurred test images against the test reference. */
    readonly blurred: number;
    /** Uniform noise in [-1, 1] against the test reference. */
    readonly noise: number;
  };
  /** Share of each labelled set (test: the random `samples` images that are also blurred) classified right. */
  readonly classAccuracy: { readonly test: number; readonly train: number; readonly blurred: number };
}

export interface AnchorOptions extends ReferenceOptions {
  /** Images in the train, blurred and noise sets (default: half the reference, the size of a test half). */
  readonly samples?: number;
  /** Seed of the random subsets and of the noise images. */
  readonly seed?: number;
}

/** The images at `rows` of a flat NHWC array, with their labels. */
function pick(
  data: { readonly images: Float32Array; readonly labels: Int32Array },
  rows: Int32Array,
  size: number,
): { images: Float32Array; labels: Int32Array } {
  return { images: copyRows(data.images, size, rows), labels: copyRows(data.labels, 1, rows) };
}

/**
 * Computes every anchor with `net` (the reference set comes from, or goes to, the cache). Subsets are drawn at
 * random: MNIST's test split is ordered (its first 5000 images are cleaner than the last 5000), so contiguous
 * halves would not be samples of one distribution.
 */
export async function computeAnchors(net: LoadedFeatureNet, opts: AnchorOptions = {}): Promise<FidAnchors> {
  const reference = await loadReference(net, 'test', opts);
  const half = Math.floor(reference.count / 2);
  if (half < 2) throw new Error(`anchors need at least 4 test images, the reference has ${reference.count}`);
  const rng = new Rng(opts.seed ?? 0);
  const [h, w, c] = net.config.featureNet.imageShape;
  const size = h * w * c;
  const fidOf = async (images: Float32Array, count: number) => {
    const extracted = await extractFeatures(net, images, count);
    const stats = featureStats(extracted.features, count, extracted.dim);
    return { fid: frechetDistanceFromStats(stats, reference.stats), predicted: extracted.predicted };
  };

  // 1. Test against itself: two random halves of the reference features.
  const testOrder = rng.permutation(reference.count);
  const testHalves = halvesFid(reference, testOrder, half);
  // 2. Training images, blurred test images and uniform noise, each against the whole reference.
  const trainSplit = await loadDataset(net.config.dataset, 'train');
  const samples = Math.min(opts.samples ?? half, trainSplit.count, reference.count);
  const train = pick(trainSplit, rng.permutation(trainSplit.count).subarray(0, samples), size);
  const trainResult = await fidOf(train.images, samples);
  const testSplit = await loadDataset(net.config.dataset, 'test', { limit: reference.count });
  const test = pick(testSplit, testOrder.subarray(0, samples), size);
  const blurredResult = await fidOf(
    gaussianBlur(test.images, samples, h, w, c, ANCHOR_BLUR_SIGMA_PX),
    samples,
  );
  const noise = rng.fillUniform(new Float32Array(samples * size)).map((u) => 2 * u - 1);
  const noiseResult = await fidOf(noise, samples);

  return {
    samples,
    referenceCount: reference.count,
    blurSigmaPx: ANCHOR_BLUR_SIGMA_PX,
    fid: { testHalves, train: trainResult.fid, blurred: blurredResult.fid, noise: noiseResult.fid },
    classAccuracy: {
      test: classAccuracy((await extractFeatures(net, test.images, samples)).predicted, test.labels),
      train: classAccuracy(trainResult.predicted, train.labels),
      blurred: classAccuracy(blurredResult.predicted, test.labels),
    },
  };
}

function halvesFid(reference: ReferenceSet, order: Int32Array, half: number): number {
  const d = reference.dim;
  const rows = (part: Int32Array): Float32Array => {
    const out = new Float32Array(part.length * d);
    for (const [i, row] of part.entries())
      out.set(reference.features.subarray(row * d, (row + 1) * d), i * d);
    return out;
  };
  const first = featureStats(rows(order.subarray(0, half)), half, d);
  const second = featureStats(rows(order.subarray(half, 2 * half)), half, d);
  return frechetDistance(first.mu, first.cov, second.mu, second.cov);
}

/**
 * Separable Gaussian blur (radius 3 sigma, edges clamped) of `count` NHWC images; returns a new array.
 */
export function gaussianBlur(
  images: Float32Array,
  count: number,
  h: number,
  w: number,
  c: number,
  sigma: number,
): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const taps = Float64Array.from({ length: 2 * radius + 1 }, (_, i) =>
    Math.exp(-((i - radius) ** 2) / (2 * sigma ** 2)),
  );
  const total = taps.reduce((a, b) => a + b, 0);
  for (let i = 0; i < taps.length; i++) taps[i]! /= total;
  const clamp = (v: number, hi: number): number => Math.max(0, Math.min(v, hi));
  const pass = (src: Float32Array, alongRows: boolean): Float32Array => {
    const out = new Float32Array(src.length);
    for (let n = 0; n < count; n++) {
      const base = n * h * w * c;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          for (let ch = 0; ch < c; ch++) {
            let sum = 0;
            for (let k = -radius; k <= radius; k++) {
              const yy = alongRows ? y : clamp(y + k, h - 1);
              const xx = alongRows ? clamp(x + k, w - 1) : x;
              sum += taps[k + radius]! * src[base + (yy * w + xx) * c + ch]!;
            }
            out[base + (y * w + x) * c + ch] = sum;
          }
        }
      }
    }
    return out;
  };
  return pass(pass(images, true), false);
}
