// `ladder card`: measures a model folder (sample grids at several step counts, sampling throughput) and records
// the results in its card.json, next to how the model was made.
import { join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../core/fs.js';
import * as tf from '../core/tf.js';
import { datasetId } from '../data/image-dataset.js';
import { currentBackend } from '../engine/backend.js';
import {
  DIGIT_STRING_EVAL_LENGTHS,
  digitStringsGridPng,
  parseDigitStringEvalJson,
} from '../eval/digit-strings.js';
import { type EvalJson, parseEvalJson } from '../eval/eval-json.js';
import { writeImageGrid } from '../image/png.js';
import { CARD_FILE, CONFIG_FILE, loadDiffusionModel, readJson } from '../models/folder.js';
import {
  balancedLabels,
  type DiffusionModel,
  defaultSampler,
  generateImages,
  nfe,
  promptLatentSize,
} from '../models/pipeline.js';
import { diffusionModelSchema, parseConfig } from '../models/schema.js';

export interface CardOptions {
  readonly model: string;
  /** Step counts to draw grids for and time (default DEFAULT_CARD_STEPS; none when only `eval` is given). */
  readonly steps?: readonly number[];
  readonly cfg?: number;
  readonly seed: number;
  /** Eval JSON files whose numbers go into the card's metrics, one entry per feature-net role. */
  readonly eval: readonly string[];
  /** Also make `cfg` the model's default guidance scale (config.json `sampling.cfg`), e.g. after a CFG sweep. */
  readonly setDefaultCfg?: boolean;
}

export const DEFAULT_CARD_STEPS = [32, 4, 1] as const;

/** What a card keeps of an eval: the scorer, the sample count and seed, and each setting's FID and accuracy. */
export function cardMetrics(run: EvalJson, evalFile: string) {
  return {
    net: run.featureNet,
    role: run.featureNetRole ?? 'selection',
    samples: run.samples,
    seed: run.seed,
    ...(run.fidFloor === undefined ? {} : { fidFloor: run.fidFloor }),
    results: run.results.map((r) => ({
      steps: r.steps,
      cfg: r.cfg,
      nfe: r.nfe,
      fid: r.fid,
      ...(r.fidInterval === undefined ? {} : { fidInterval: r.fidInterval }),
      classAccuracy: r.classAccuracy,
      ...(r.classAccuracyInterval === undefined ? {} : { classAccuracyInterval: r.classAccuracyInterval }),
      msPerImage: r.msPerImage,
    })),
    evalFiles: [evalFile],
  };
}

type CardMetrics = ReturnType<typeof cardMetrics>;

/** What a card keeps of a digit-strings eval: per step count, each length's accuracies and cell FID. */
export function digitStringCardMetrics(run: ReturnType<typeof parseDigitStringEvalJson>, evalFile: string) {
  return {
    net: run.featureNet,
    role: `digitStrings${run.featureNetRole === 'report' ? 'Report' : 'Selection'}`,
    samples: run.samples,
    seed: run.seed,
    trainedLengths: run.trainedLengths,
    results: run.results.map((r) => ({
      steps: r.steps,
      cfg: r.cfg,
      nfe: r.nfe,
      lengths: r.lengths.map((l) => ({
        length: l.length,
        digitAccuracy: l.digitAccuracy,
        ...(l.digitAccuracyInterval === undefined ? {} : { digitAccuracyInterval: l.digitAccuracyInterval }),
        stringAccuracy: l.stringAccuracy,
        cellFid: l.cellFid,
        ...(l.fidInterval === undefined ? {} : { cellFidInterval: l.fidInterval }),
        ...(l.cellFidFloor === undefined ? {} : { cellFidFloor: l.cellFidFloor }),
        msPerImage: l.msPerImage,
      })),
    })),
    evalFiles: [evalFile],
  };
}

/**
 * Adds `entry` to the card's metrics under its role: an eval with the same net, sample count and seed adds its
 * settings (a setting measured again, same steps and guidance, takes the new numbers); any other replaces the
 * role's entry, as a new protocol.
 */
export function mergeCardMetrics(
  metrics: Record<string, unknown>,
  entry: CardMetrics | ReturnType<typeof digitStringCardMetrics>,
): void {
  type Entry = typeof entry;
  const key = `${entry.role}Net`;
  const old = metrics[key] as Partial<Entry> | undefined;
  const same =
    old !== undefined && old.net === entry.net && old.samples === entry.samples && old.seed === entry.seed;
  if (!same) {
    metrics[key] = entry;
    return;
  }
  const setting = (r: { steps: number; cfg?: number }) => `${r.steps} ${r.cfg}`;
  const added = new Set(entry.results.map(setting));
  metrics[key] = {
    ...old,
    ...entry,
    results: [...(old.results ?? []).filter((r) => !added.has(setting(r))), ...entry.results],
    evalFiles: [...(old.evalFiles ?? []), ...entry.evalFiles],
  };
}

/** A prompt-conditional model's throughput is timed on this prompt. */
const THROUGHPUT_PROMPT = '407';

/** Images per second when sampling `batch` images at once (one warm-up batch first). */
export function samplingThroughput(model: DiffusionModel, steps: number, cfg: number, batch: number) {
  const whom = model.config.prompts
    ? {
        prompts: Array<string>(batch).fill(THROUGHPUT_PROMPT),
        latentSize: promptLatentSize(model, THROUGHPUT_PROMPT),
      }
    : { labels: balancedLabels([...Array(model.config.unet.numClasses).keys()], batch) };
  const opts = { ...whom, steps, cfg, sampler: defaultSampler(model.config), seed: 0, batchSize: batch };
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
    ...(model.config.prompts ? { prompt: THROUGHPUT_PROMPT } : {}),
    backend: currentBackend(),
  };
}

export async function cardCommand(o: CardOptions): Promise<void> {
  const model = await loadDiffusionModel(o.model);
  const cfg = o.cfg ?? model.config.sampling.cfg;
  const classes = model.config.unet.numClasses;
  const perClass = 8;
  const grids: Record<string, string> = {};
  // Recording an eval alone leaves the grids and the timing as they are.
  const stepsList = o.steps ?? (o.eval.length > 0 ? [] : DEFAULT_CARD_STEPS);
  for (const steps of stepsList) {
    if (model.config.prompts) {
      // Rows are string lengths (5 and 6 not trained), columns strings of balanced digits.
      const file = `grid-${steps}step-cfg${cfg}.png`;
      const png = await digitStringsGridPng(model, {
        steps,
        cfg,
        sampler: defaultSampler(model.config),
        seed: o.seed,
        lengths: DIGIT_STRING_EVAL_LENGTHS,
        perLength: perClass,
      });
      await writeFileAtomic(join(o.model, file), png);
      grids[`${steps}`] = file;
      process.stderr.write(`card: ${file}\n`);
      continue;
    }
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
  const throughput =
    stepsList.length === 0 ? undefined : samplingThroughput(model, Math.max(...stepsList), cfg, 100);
  const cardPath = join(o.model, CARD_FILE);
  const card = (await readJson(cardPath, 'model card')) as Record<string, unknown>;
  // Older cards hold whole eval files under `eval` (a history, before roles and replicates): left as they are.
  const metrics: Record<string, unknown> = {
    ...((card.metrics as Record<string, unknown> | undefined) ?? {}),
  };
  for (const path of o.eval) {
    const json = await readJson(path, 'eval JSON');
    if ((json as { format?: unknown }).format === 'ladder-digit-strings-eval') {
      if (!model.config.prompts)
        throw new Error(`${path} scores a digit-strings model, but ${o.model} is not one`);
      mergeCardMetrics(
        metrics,
        digitStringCardMetrics(parseDigitStringEvalJson(json, path), relative(o.model, path)),
      );
      continue;
    }
    if (model.config.prompts)
      throw new Error(
        `${path} is a class eval, but ${o.model} is prompt-conditional: evaluate it with \`ladder eval\` again`,
      );
    const run = parseEvalJson(json, path);
    if (run.dataset !== datasetId(model.config.dataset)) {
      throw new Error(
        `${path} scores a ${run.dataset} model, but ${o.model} is a ${datasetId(model.config.dataset)} model`,
      );
    }
    mergeCardMetrics(metrics, cardMetrics(run, relative(o.model, path)));
  }
  if (o.setDefaultCfg) {
    const configPath = join(o.model, CONFIG_FILE);
    const config = parseConfig(diffusionModelSchema, await readJson(configPath, 'model config'), configPath);
    await writeJsonAtomic(configPath, { ...config, sampling: { ...config.sampling, cfg } });
  }
  await writeJsonAtomic(cardPath, {
    ...card,
    ...(throughput === undefined
      ? {}
      : { samples: { seed: o.seed, cfg, sampler: defaultSampler(model.config), grids }, throughput }),
    metrics,
  });
  if (throughput !== undefined) process.stdout.write(`${JSON.stringify(throughput)}\n`);
}
