import { relative, resolve } from 'node:path';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { loadDataset, loadDatasetBuckets } from '../data/dataset.js';
import { DigitStrings } from '../data/digit-strings.js';
import { datasetLabel } from '../data/image-dataset.js';
import { BatchLoader } from '../data/loader.js';
import {
  CaptionedImages,
  DIGIT_CELL,
  DIGIT_STRING_TRAIN_LENGTHS,
  type PromptedSource,
} from '../data/prompts.js';
import { type FormulationConfig, makeFormulation } from '../diffusion/formulation.js';
import { denoisingLoss } from '../diffusion/loss.js';
import { type LoadedAutoencoder, loadAutoencoder, saveModelFolder } from '../models/folder.js';
import { unetNet } from '../models/pipeline.js';
import type { DiffusionModelConfig } from '../models/schema.js';
import {
  type AutoencoderConfig,
  downsampling,
  encodeImages,
  encodeLatents,
  latentShape,
} from '../nn/autoencoder.js';
import { countParams } from '../nn/params.js';
import { type TextEncoderConfig, tokenizeAll } from '../nn/text-encoder.js';
import { type Condition, initUNet, type UNetConfig } from '../nn/unet.js';
import { makeCard, prepareRunDir } from '../train/card.js';
import { isRankZero } from '../train/data-parallel.js';
import { Ema } from '../train/ema.js';
import type { StepContext } from '../train/loop.js';
import { type TrainResult, train } from '../train/loop.js';
import { ADAM_DEFAULTS, AdamW } from '../train/optim.js';

export interface TrainTeacherOptions {
  readonly aeDir: string;
  readonly outDir: string;
  readonly formulation: FormulationConfig;
  readonly steps: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly seed: number;
  readonly resume: boolean;
  readonly checkpointEvery: number;
  /** Profile this many steps after a warm-up step and stop (see TrainOptions.profile). */
  readonly profile?: number;
  /**
   * Share of labels replaced by the null class (prompts by the empty prompt), so the model also learns the
   * unconditional score.
   */
  readonly labelDropout: number;
  /**
   * Train prompt-conditional on prompted images instead of the autoencoder's labelled dataset: 'digit-strings'
   * (one aspect-ratio bucket per string length), or 'captions' (the autoencoder's folder dataset with its
   * metadata.jsonl texts; one bucket, the folder's size).
   */
  readonly prompts?: 'digit-strings' | 'captions';
  /** The text encoder of a prompt-conditional teacher (defaults: TEXT_ENCODER_DEFAULTS). */
  readonly text?: Partial<TextEncoderConfig>;
  readonly emaDecay: number;
  readonly limit?: number;
  readonly unet?: Partial<UNetConfig>;
}

export const TEACHER_UNET_DEFAULTS = {
  channels: [32, 64],
  blocksPerLevel: 2,
  attentionLevels: [1],
  midAttention: true,
  groups: 8,
  heads: 4,
} as const;

/**
 * A prompt-conditional teacher's text encoder: room for 15 digits (lengths 5 and 6 test unseen lengths), two
 * blocks at the U-Net's first width. Digit strings need little language; the U-Net's cross-attention does the rest.
 */
export const TEXT_ENCODER_DEFAULTS = { maxTokens: 16, layers: 2, heads: 4 } as const;

export const FLOW_DEFAULTS: FormulationConfig = { kind: 'flow', logitMean: 0, logitStd: 1 };
export const VP_DEFAULTS: FormulationConfig = {
  kind: 'vp',
  prediction: 'v',
  zeroTerminalSnr: true,
  betaStart: 0.00085,
  betaEnd: 0.012,
};

/** What one training step trains on: clean latents and their condition, this rank's rows; the step disposes both. */
interface TeacherBatch {
  readonly x0: tf.Tensor4D;
  readonly cond: Condition;
}

/**
 * A labelled dataset, encoded once: each batch's labels dropped to the null class with p = labelDropout. The
 * dropout draws are made on the host and the labels replaced on the device: nothing is read back.
 */
async function labelledBatches(
  opts: TrainTeacherOptions,
  ae: LoadedAutoencoder,
  data: Awaited<ReturnType<typeof loadDataset>>,
  unet: UNetConfig,
): Promise<(ctx: StepContext) => TeacherBatch> {
  const shape = latentShape(ae.config.autoencoder);
  process.stderr.write(`encoding ${data.count} ${data.name} images to latents ${shape.join('x')}\n`);
  const latents = await encodeImages(ae.params, ae.config.autoencoder, data.images, data.count);
  const loader = new BatchLoader(
    { data: latents, labels: data.labels, shape },
    { batchSize: opts.batchSize, seed: opts.seed },
  );
  const b = opts.batchSize;
  return (ctx) => {
    // Drawn whole on every rank (the same stream), then this rank's rows (all of them in one process).
    const batch = loader.batchAt(ctx.step);
    const dropped = tf.tensor1d(
      Array.from({ length: b }, () => (ctx.rng.uniform() < opts.labelDropout ? 1 : 0)),
      'bool',
    );
    const labels = tf.tidy(() =>
      tf.where(dropped, tf.fill([b], unet.numClasses, 'int32'), batch.labels),
    ) as tf.Tensor1D;
    const x0 = ctx.shard(batch.x);
    const cond = ctx.shard(labels);
    tf.dispose([batch.labels, dropped]);
    return { x0, cond };
  };
}

/**
 * Prompted images, encoded batch by batch (each batch one bucket's shape, so latent sizes vary across steps):
 * each prompt replaced by the empty one with p = labelDropout.
 */
function promptedBatches(
  opts: TrainTeacherOptions,
  ae: LoadedAutoencoder,
  source: PromptedSource,
  text: TextEncoderConfig,
): (ctx: StepContext) => TeacherBatch {
  const b = opts.batchSize;
  return (ctx) => {
    const batch = source.batchAt(ctx.step, b);
    const prompts = batch.prompts.map((prompt) => (ctx.rng.uniform() < opts.labelDropout ? '' : prompt));
    const images = tf.tensor4d(batch.images, [b, batch.height, batch.width, batch.channels]);
    const latents = encodeLatents(ae.params, ae.config.autoencoder, images);
    const tokens = tf.tensor2d(tokenizeAll(prompts, text.maxTokens), [b, text.maxTokens], 'int32');
    const x0 = ctx.shard(latents);
    const cond = ctx.shard(tokens);
    tf.dispose([images]);
    return { x0, cond };
  };
}

/** Captions longer than this many bytes are refused (the text encoder reads one more token, the begin token). */
export const MAX_CAPTION_BYTES = 127;

/**
 * The captioned source for a prompt-conditional teacher: the autoencoder's folder dataset with its metadata.jsonl
 * captions, and the token count the longest caption needs.
 */
async function captionSource(
  opts: TrainTeacherOptions,
  ae: LoadedAutoencoder,
): Promise<{ source: PromptedSource; maxTokens: number }> {
  const limit = opts.limit === undefined ? {} : { limit: opts.limit };
  const sets = await loadDatasetBuckets(ae.config.dataset, ae.config.buckets, 'train', limit);
  const captioned = sets.map((data) => {
    const { texts } = data;
    if (texts === undefined) {
      throw new Error(
        `${data.name} has no captions: put a metadata.jsonl beside its images ({"file_name": "a.png", "text": "..."} per line), or train on classes without --data captions`,
      );
    }
    return { ...data, texts };
  });
  const bytes = captioned.flatMap((set) => set.texts.map((t) => new TextEncoder().encode(t).length));
  const longest = Math.max(0, ...bytes);
  if (longest > MAX_CAPTION_BYTES) {
    const text = captioned
      .flatMap((set) => set.texts)
      .find((t) => new TextEncoder().encode(t).length === longest);
    throw new Error(
      `the caption "${text!.slice(0, 40)}..." is ${longest} bytes; ladder reads captions of up to ${MAX_CAPTION_BYTES}: shorten it in metadata.jsonl`,
    );
  }
  // Room for the longest caption, at least the default's.
  return {
    source: new CaptionedImages(captioned, opts.seed),
    maxTokens: Math.max(TEXT_ENCODER_DEFAULTS.maxTokens, longest + 1),
  };
}

/** The digit-strings source for a prompt-conditional teacher; fails unless the autoencoder takes 28-px grey cells. */
async function promptSource(opts: TrainTeacherOptions, aeCfg: AutoencoderConfig): Promise<PromptedSource> {
  const channels = aeCfg.imageShape[2];
  const factor = downsampling(aeCfg);
  if (channels !== 1 || DIGIT_CELL % factor !== 0) {
    throw new Error(
      `digit strings are grey 28-px cells; the autoencoder takes ${channels} channels with ${factor}x downsampling: ` +
        'train one on mnist (ladder train-ae --data mnist)',
    );
  }
  return DigitStrings.load('train', {
    seed: opts.seed,
    lengths: DIGIT_STRING_TRAIN_LENGTHS,
    ...(opts.limit === undefined ? {} : { limit: opts.limit }),
  });
}

export async function trainTeacher(opts: TrainTeacherOptions): Promise<TrainResult> {
  await prepareRunDir(opts.outDir, opts.resume, opts.steps);
  const ae = await loadAutoencoder(opts.aeDir);
  const aeCfg = ae.config.autoencoder;
  const limit = opts.limit === undefined ? {} : { limit: opts.limit };
  const data = opts.prompts ? undefined : await loadDataset(ae.config.dataset, 'train', limit);
  const captioned = opts.prompts === 'captions' ? await captionSource(opts, ae) : undefined;
  const source = opts.prompts === 'digit-strings' ? await promptSource(opts, aeCfg) : captioned?.source;
  const shape = latentShape(aeCfg);
  const base = { ...TEACHER_UNET_DEFAULTS, ...opts.unet };
  const text: TextEncoderConfig | undefined = source
    ? {
        ...TEXT_ENCODER_DEFAULTS,
        ...(captioned ? { maxTokens: captioned.maxTokens } : {}),
        width: base.channels[0]!,
        // A narrow net (tests, smoke runs) gets fewer heads, so each keeps the 4 channels rotary positions need.
        heads: Math.max(1, Math.min(TEXT_ENCODER_DEFAULTS.heads, Math.floor(base.channels[0]! / 4))),
        ...opts.text,
      }
    : undefined;
  const unet: UNetConfig = {
    inChannels: shape[2],
    outChannels: shape[2],
    numClasses: data?.numClasses ?? 0,
    embedDim: 4 * base.channels[0]!,
    ...base,
    // The default attends at level 1; a one-level net given with --channels has none.
    attentionLevels:
      opts.unet?.attentionLevels ?? base.attentionLevels.filter((level) => level < base.channels.length),
    ...(text ? { text } : {}),
  };
  const f = makeFormulation(opts.formulation);

  // 1. The data: a labelled set encoded once to latents (posterior means, normalised), or prompted images
  // encoded batch by batch.
  const nextBatch =
    source && text ? promptedBatches(opts, ae, source, text) : await labelledBatches(opts, ae, data!, unet);

  const params = initUNet(unet, new Rng(opts.seed));
  const player = {
    params,
    optimizer: new AdamW({ ...ADAM_DEFAULTS, lr: opts.lr, warmupSteps: 200 }),
    ema: new Ema(params, opts.emaDecay),
  };
  const b = opts.batchSize;
  const result = await train(
    { teacher: player },
    (ctx) => {
      // 2. x0 and its condition (dropped to the null one with p = labelDropout), t from the training density,
      // noise; drawn whole on every rank (the same stream), then this rank's rows.
      const { x0, cond } = nextBatch(ctx);
      const [, h, w, c] = x0.shape;
      const t = ctx.shard(tf.tensor1d(f.sampleTrainingTimes(ctx.rng, b)));
      const eps = ctx.shard(randn(ctx.rng, [b, h, w, c]) as tf.Tensor4D);
      // 3. Regress the net's output on the formulation's target (velocity, eps or v).
      const metrics = ctx.update('teacher', (p) => denoisingLoss(f, unetNet(unet, p), x0, eps, t, cond));
      tf.dispose([x0, cond, t, eps]);
      return metrics;
    },
    {
      outDir: opts.outDir,
      totalSteps: opts.steps,
      seed: opts.seed,
      checkpointEvery: opts.checkpointEvery,
      logEvery: 10,
      resume: opts.resume,
      ...(opts.profile === undefined ? {} : { profile: opts.profile }),
      label: 'train-teacher',
      dataParallel: true,
    },
  );
  if (result.interrupted || !isRankZero()) return result;

  const config: DiffusionModelConfig = {
    format: 'ladder-model',
    version: 1,
    kind: 'teacher',
    dataset: ae.config.dataset,
    autoencoder: relative(resolve(opts.outDir), resolve(opts.aeDir)) || '.',
    latentShape: shape,
    classNames: data ? [...data.classNames] : [],
    ...(opts.prompts === 'digit-strings'
      ? { prompts: { source: 'digit-strings' as const, lengths: [...DIGIT_STRING_TRAIN_LENGTHS] } }
      : {}),
    ...(opts.prompts === 'captions'
      ? {
          prompts: {
            source: 'captions' as const,
            ...(ae.config.buckets === undefined ? {} : { sizes: ae.config.buckets }),
          },
        }
      : {}),
    formulation: opts.formulation,
    unet,
    prediction: 'formulation',
    sampling: { steps: [32], cfg: 3 },
  };
  const card = makeCard(
    { seed: opts.seed, dataset: source?.name ?? datasetLabel(ae.config.dataset), batchSize: b },
    result,
    {},
    {
      params: countParams(player.ema.params),
      weights: `EMA (decay ${opts.emaDecay})`,
      labelDropout: opts.labelDropout,
      lr: opts.lr,
    },
  );
  await saveModelFolder(opts.outDir, config, player.ema.params, card, { replace: opts.resume });
  process.stderr.write(`teacher written to ${opts.outDir}\n`);
  return result;
}
