// The feature network: a small LeNet-like classifier per dataset. Its penultimate layer gives the features for
// FID/KID and precision/recall (in place of Inception), its softmax the class accuracy of generated samples.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureWritableDir, writeJsonAtomic } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { loadTensors, saveTensors } from '../io/safetensors.js';
import {
  CARD_FILE,
  CONFIG_FILE,
  loadCheckedWeights,
  moveModelAside,
  readJson,
  WEIGHTS_FILE,
} from '../models/folder.js';
import { type FeaturesModelConfig, featuresModelSchema, parseConfig } from '../models/schema.js';
import { conv2d, linear } from '../nn/layers.js';
import { disposeParams, initParams, ParamScope, type Params } from '../nn/params.js';
import { checkSameShapes } from '../train/checkpoint.js';

export interface FeatureNetConfig {
  /** [height, width, channels] of the images it reads (values in [-1, 1]). */
  readonly imageShape: readonly [number, number, number];
  readonly numClasses: number;
  /** Widths of the conv layers; each is conv -> ReLU -> 2x2 max-pool. */
  readonly channels: readonly number[];
  /** Square kernel size of every conv layer. */
  readonly kernel: number;
  /** Width of the penultimate dense layer (after ReLU): the feature vector. */
  readonly featureDim: number;
}

/** LeNet-like defaults: conv 5x5 32 -> pool -> conv 5x5 64 -> pool -> dense 256 (features) -> dense classes. */
export const FEATURE_NET_DEFAULTS = { channels: [32, 64], kernel: 5, featureDim: 256 } as const;

/** Features and class logits of a batch. */
export interface FeatureNetOutput {
  /** [B, featureDim], post-ReLU. */
  readonly features: tf.Tensor2D;
  /** [B, numClasses]. */
  readonly logits: tf.Tensor2D;
}

/** Every layer's output: the conv blocks' maps as well as the features and logits. */
export interface FeatureNetTaps extends FeatureNetOutput {
  /** Output of each conv block (conv -> ReLU -> 2x2 max-pool), [B, ceil(H/2^(i+1)), ceil(W/2^(i+1)), width_i]. */
  readonly maps: readonly tf.Tensor4D[];
}

function forwardWith(s: ParamScope, cfg: FeatureNetConfig, x: tf.Tensor4D): FeatureNetTaps {
  let h = x;
  const maps: tf.Tensor4D[] = [];
  cfg.channels.forEach((width, i) => {
    const conv = conv2d(s.child('conv').child(i), h, width, { kernel: cfg.kernel });
    h = tf.maxPool(tf.relu(conv), 2, 2, 'same'); // [B, ceil(H/2), ceil(W/2), width]
    maps.push(h);
  });
  const flat = h.reshape([h.shape[0], -1]); // [B, h * w * c]
  const features = tf.relu(linear(s.child('fc'), flat, cfg.featureDim)) as tf.Tensor2D;
  const logits = linear(s.child('head'), features, cfg.numClasses) as tf.Tensor2D;
  return { maps, features, logits };
}

function checkImageShape(cfg: FeatureNetConfig, x: tf.Tensor4D): void {
  const [, h, w, c] = x.shape;
  const [eh, ew, ec] = cfg.imageShape;
  if (h !== eh || w !== ew || c !== ec) {
    throw new Error(`feature net expects ${eh}x${ew}x${ec} images, got ${h}x${w}x${c}`);
  }
}

/** Runs the net on images [B, H, W, C] in [-1, 1]. Runs in the caller's scope (gradients flow through). */
export function featureNetForward(params: Params, cfg: FeatureNetConfig, x: tf.Tensor4D): FeatureNetOutput {
  checkImageShape(cfg, x);
  const { features, logits } = forwardWith(ParamScope.apply(params), cfg, x);
  return { features, logits };
}

/**
 * The same forward pass with every conv block's activation map too (ADD's discriminator heads read them). Runs in
 * the caller's scope (gradients flow through).
 */
export function featureNetTaps(params: Params, cfg: FeatureNetConfig, x: tf.Tensor4D): FeatureNetTaps {
  checkImageShape(cfg, x);
  return forwardWith(ParamScope.apply(params), cfg, x);
}

export function initFeatureNet(cfg: FeatureNetConfig, rng: Rng): Params {
  return initParams(rng, (s) => forwardWith(s, cfg, tf.zeros([1, ...cfg.imageShape]) as tf.Tensor4D));
}

/** Mean softmax cross-entropy against int32 `labels` [B], with the batch accuracy as an aux value. */
export function featureNetLoss(
  params: Params,
  cfg: FeatureNetConfig,
  x: tf.Tensor4D,
  labels: tf.Tensor1D,
): { loss: tf.Scalar; aux: Record<string, tf.Scalar> } {
  const { logits } = featureNetForward(params, cfg, x);
  const logProbs = tf.logSoftmax(logits);
  const loss = tf.oneHot(labels.toInt(), cfg.numClasses).mul(logProbs).sum(1).mean().neg() as tf.Scalar;
  const accuracy = tf.equal(tf.argMax(logits, 1), labels.toInt()).toFloat().mean() as tf.Scalar;
  return { loss, aux: { accuracy } };
}

// ---
// Model folder: config.json (kind 'features'), weights.safetensors, card.json.

/** A feature net loaded from its folder. `hash` identifies the weights (reference-stat caches are keyed by it). */
export interface LoadedFeatureNet {
  readonly dir: string;
  readonly config: FeaturesModelConfig;
  readonly params: Params;
  /** First 16 hex digits of the SHA-256 of weights.safetensors. */
  readonly hash: string;
  /** `<dataset>-features@<hash>`: how eval files name the net. */
  readonly name: string;
}

/**
 * Writes weights then config (and the card when given), each atomically. Does not dispose `params`. A feature net
 * already in `dir` is moved aside first (a continued run; see moveModelAside).
 */
export async function saveFeatureNet(
  dir: string,
  config: FeaturesModelConfig,
  params: Params,
  card?: Record<string, unknown>,
): Promise<void> {
  if (existsSync(join(dir, CONFIG_FILE))) await moveModelAside(dir);
  await ensureWritableDir(dir);
  await saveTensors(join(dir, WEIGHTS_FILE), params, { kind: config.kind });
  await writeJsonAtomic(join(dir, CONFIG_FILE), config);
  if (card !== undefined) await writeJsonAtomic(join(dir, CARD_FILE), card);
}

/** Loads a feature net folder; every tensor is checked against what the config builds. */
export async function loadFeatureNet(dir: string): Promise<LoadedFeatureNet> {
  if (!existsSync(dir)) {
    throw new Error(
      `feature net folder ${dir} does not exist: train one with \`ladder train-features --data <dataset> --out ${dir}\` or pass --features <dir>`,
    );
  }
  const raw = (await readJson(join(dir, CONFIG_FILE), `feature net config of ${dir}`)) as { kind?: unknown };
  if (raw.kind !== 'features') {
    throw new Error(`${dir} holds a ${String(raw.kind)} model, not a feature net (kind "features")`);
  }
  const config = parseConfig(featuresModelSchema, raw, join(dir, CONFIG_FILE));
  const weightsPath = join(dir, WEIGHTS_FILE);
  const params = await loadCheckedWeights(dir, initFeatureNet(config.featureNet, new Rng(0)), config.kind);
  const hash = createHash('sha256')
    .update(await readFile(weightsPath))
    .digest('hex')
    .slice(0, 16);
  return { dir, config, params, hash, name: `${config.dataset}-features@${hash}` };
}

// ---
// Batched inference.

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
