import { relative, resolve } from 'node:path';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { loadDataset } from '../data/dataset.js';
import { datasetLabel } from '../data/image-dataset.js';
import { BatchLoader } from '../data/loader.js';
import { type FormulationConfig, makeFormulation } from '../diffusion/formulation.js';
import { denoisingLoss } from '../diffusion/loss.js';
import { loadAutoencoder, saveModelFolder } from '../models/folder.js';
import { unetNet } from '../models/pipeline.js';
import type { DiffusionModelConfig } from '../models/schema.js';
import { encodeImages, latentShape } from '../nn/autoencoder.js';
import { countParams } from '../nn/params.js';
import { initUNet, type UNetConfig } from '../nn/unet.js';
import { makeCard, prepareRunDir } from '../train/card.js';
import { isRankZero } from '../train/data-parallel.js';
import { Ema } from '../train/ema.js';
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
  /** Share of labels replaced by the null class, so the model also learns the unconditional score. */
  readonly labelDropout: number;
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

export const FLOW_DEFAULTS: FormulationConfig = { kind: 'flow', logitMean: 0, logitStd: 1 };
export const VP_DEFAULTS: FormulationConfig = {
  kind: 'vp',
  prediction: 'v',
  zeroTerminalSnr: true,
  betaStart: 0.00085,
  betaEnd: 0.012,
};

export async function trainTeacher(opts: TrainTeacherOptions): Promise<TrainResult> {
  await prepareRunDir(opts.outDir, opts.resume, opts.steps);
  const ae = await loadAutoencoder(opts.aeDir);
  const aeCfg = ae.config.autoencoder;
  const data = await loadDataset(
    ae.config.dataset,
    'train',
    opts.limit === undefined ? {} : { limit: opts.limit },
  );
  const shape = latentShape(aeCfg);
  const base = { ...TEACHER_UNET_DEFAULTS, ...opts.unet };
  const unet: UNetConfig = {
    inChannels: shape[2],
    outChannels: shape[2],
    numClasses: data.numClasses,
    embedDim: 4 * base.channels[0]!,
    ...base,
    // The default attends at level 1; a one-level net given with --channels has none.
    attentionLevels:
      opts.unet?.attentionLevels ?? base.attentionLevels.filter((level) => level < base.channels.length),
  };
  const f = makeFormulation(opts.formulation);

  // 1. Encode the training set once: the teacher trains on latents (posterior means, normalised).
  process.stderr.write(`encoding ${data.count} ${data.name} images to latents ${shape.join('x')}\n`);
  const latents = await encodeImages(ae.params, aeCfg, data.images, data.count);
  const loader = new BatchLoader(
    { data: latents, labels: data.labels, shape },
    { batchSize: opts.batchSize, seed: opts.seed },
  );

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
      // 2. x0, its class (dropped to the null class with p = labelDropout), t from the training density, noise.
      // Drawn whole on every rank (the same stream), then this rank's rows (all of them in one process).
      const batch = loader.batchAt(ctx.step);
      // The dropout draws are made on the host and the labels replaced on the device: nothing is read back.
      const dropped = tf.tensor1d(
        Array.from({ length: b }, () => (ctx.rng.uniform() < opts.labelDropout ? 1 : 0)),
        'bool',
      );
      const labels = tf.tidy(() =>
        tf.where(dropped, tf.fill([b], unet.numClasses, 'int32'), batch.labels),
      ) as tf.Tensor1D;
      const t = ctx.shard(tf.tensor1d(f.sampleTrainingTimes(ctx.rng, b)));
      const eps = ctx.shard(randn(ctx.rng, [b, ...shape]) as tf.Tensor4D);
      const x0 = ctx.shard(batch.x);
      const c = ctx.shard(labels);
      // 3. Regress the net's output on the formulation's target (velocity, eps or v).
      const metrics = ctx.update('teacher', (p) => denoisingLoss(f, unetNet(unet, p), x0, eps, t, c));
      tf.dispose([x0, batch.labels, dropped, c, t, eps]);
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
    classNames: [...data.classNames],
    formulation: opts.formulation,
    unet,
    prediction: 'formulation',
    sampling: { steps: [32], cfg: 3 },
  };
  const card = makeCard(
    { seed: opts.seed, dataset: datasetLabel(ae.config.dataset), batchSize: b },
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
