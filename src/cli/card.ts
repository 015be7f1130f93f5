// `ladder card`: measures a model folder (sample grids at several step counts, sampling throughput) and records
// the results in its card.json, next to how the model was made.
import { join } from 'node:path';
import { writeJsonAtomic } from '../core/fs.js';
import * as tf from '../core/tf.js';
import { currentBackend } from '../engine/backend.js';
import { writeImageGrid } from '../image/png.js';
import { CARD_FILE, CONFIG_FILE, loadDiffusionModel, readJson } from '../models/folder.js';
import {
  balancedLabels,
  type DiffusionModel,
  defaultSampler,
  generateImages,
  nfe,
} from '../models/pipeline.js';
import { diffusionModelSchema, parseConfig } from '../models/schema.js';

export interface CardOptions {
  readonly model: string;
  readonly steps: readonly number[];
  readonly cfg?: number;
  readonly seed: number;
  /** Eval JSON files whose results are copied into the card. */
  readonly eval: readonly string[];
  /** Also make `cfg` the model's default guidance scale (config.json `sampling.cfg`), e.g. after a CFG sweep. */
  readonly setDefaultCfg?: boolean;
}

/** Images per second when sampling `batch` images at once (one warm-up batch first). */
export function samplingThroughput(model: DiffusionModel, steps: number, cfg: number, batch: number) {
  const labels = balancedLabels([...Array(model.config.unet.numClasses).keys()], batch);
  const opts = { labels, steps, cfg, sampler: defaultSampler(model.config), seed: 0, batchSize: batch };
  tf.dispose(generateImages(model, opts));
  const began = performance.now();
  tf.dispose(generateImages(model, { ...opts, seed: 1 }));
  const seconds = (performance.now() - began) / 1000;
  return {
    steps,
    cfg,
    nfe: nfe(steps, cfg),
    batch,
    imagesPerSecond: Number((batch / seconds).toFixed(2)),
    msPerImage: Number(((seconds * 1000) / batch).toFixed(2)),
    backend: currentBackend(),
  };
}

export async function cardCommand(o: CardOptions): Promise<void> {
  const model = await loadDiffusionModel(o.model);
  const cfg = o.cfg ?? model.config.sampling.cfg;
  const classes = model.config.unet.numClasses;
  const perClass = 8;
  const grids: Record<string, string> = {};
  for (const steps of o.steps) {
    // Rows are classes, columns seeds: the same noise for every step count, so the grids compare directly.
    const labels = Int32Array.from({ length: classes * perClass }, (_, i) => Math.floor(i / perClass));
    const images = generateImages(model, {
      labels,
      steps,
      cfg,
      sampler: defaultSampler(model.config),
      seed: o.seed,
      checkFinite: true,
    });
    const file = `grid-${steps}step-cfg${cfg}.png`;
    await writeImageGrid(join(o.model, file), images, classes, perClass, { scale: 2 });
    images.dispose();
    grids[`${steps}`] = file;
    process.stderr.write(`card: ${file}\n`);
  }
  const throughput = samplingThroughput(model, Math.max(...o.steps), cfg, 100);
  const evals = await Promise.all(o.eval.map((path) => readJson(path, 'eval JSON')));
  if (o.setDefaultCfg) {
    const configPath = join(o.model, CONFIG_FILE);
    const config = parseConfig(diffusionModelSchema, await readJson(configPath, 'model config'), configPath);
    await writeJsonAtomic(configPath, { ...config, sampling: { ...config.sampling, cfg } });
  }
  const cardPath = join(o.model, CARD_FILE);
  const card = (await readJson(cardPath, 'model card')) as Record<string, unknown>;
  await writeJsonAtomic(cardPath, {
    ...card,
    samples: { seed: o.seed, cfg, sampler: defaultSampler(model.config), grids },
    throughput,
    ...(evals.length > 0 ? { eval: evals } : {}),
  });
  process.stdout.write(`${JSON.stringify(throughput)}\n`);
}
