// `ladder synth`: the teacher's synthetic latents, generated once with CFG (class-balanced, seeded) and cached in
// one safetensors file, the data LADD trains on by default (METHODS.md section 3).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { ArraySource } from '../data/loader.js';
import { loadTensors, saveTensors } from '../io/safetensors.js';
import { balancedLabels, type DiffusionModel, defaultSampler, generateLatents } from '../models/pipeline.js';
import type { SamplerKind } from '../samplers/sample.js';
import { createProgress } from '../train/progress.js';

/** How a synthetic set was made; stored in the file's metadata and checked when it is reused. */
export interface SynthSettings {
  /** Latents in total, spread evenly over the classes. */
  readonly count: number;
  /** Teacher sampling steps and CFG scale. */
  readonly steps: number;
  readonly cfg: number;
  readonly sampler: SamplerKind;
  readonly seed: number;
}

export interface SyntheticSet extends ArraySource {
  readonly settings: SynthSettings;
  /** The teacher folder it came from (absolute path when written). */
  readonly teacher: string;
}

/** The teacher's own sampling steps and CFG scale, its default sampler, and 10 000 latents. */
export function defaultSynthSettings(
  teacher: DiffusionModel,
  overrides: Partial<SynthSettings> = {},
): SynthSettings {
  return {
    count: 10_000,
    steps: teacher.config.sampling.steps[0]!,
    cfg: teacher.config.sampling.cfg,
    sampler: defaultSampler(teacher.config),
    seed: 0,
    ...overrides,
  };
}

/**
 * Generates `settings.count` latents from the teacher, class-balanced (every class in turn) and in batches of
 * `batchSize`; batch i's noise comes from the i-th seed drawn from Rng(settings.seed).
 */
export function synthesizeLatents(
  teacher: DiffusionModel,
  settings: SynthSettings,
  teacherDir: string,
  batchSize = 100,
): SyntheticSet {
  const { count } = settings;
  if (!(Number.isInteger(count) && count > 0))
    throw new Error(`synthetic count must be a positive integer, got ${count}`);
  const numClasses = teacher.config.unet.numClasses;
  const classes = numClasses > 0 ? [...Array(numClasses).keys()] : [0];
  const labels = balancedLabels(classes, count);
  const shape = teacher.config.latentShape;
  const perSample = shape[0] * shape[1] * shape[2];
  const data = new Float32Array(count * perSample);
  const seeds = new Rng(settings.seed);
  const progress = createProgress('synth', count);
  try {
    for (let start = 0; start < count; start += batchSize) {
      const chunk = labels.subarray(start, Math.min(count, start + batchSize));
      const latents = generateLatents(teacher, {
        labels: chunk,
        steps: settings.steps,
        cfg: settings.cfg,
        sampler: settings.sampler,
        seed: seeds.nextUint32(),
        batchSize,
      });
      data.set(latents.dataSync(), start * perSample); // the CPU copy is the cache; one sync per batch
      latents.dispose();
      progress.update(start + chunk.length);
    }
  } finally {
    progress.stop();
  }
  return { data, labels, shape: [shape[0], shape[1], shape[2]], settings, teacher: resolve(teacherDir) };
}

const FORMAT = 'ladder-synthetic';

/** Writes `set` atomically: tensors `latents` [N, H, W, C] and `labels` [N], settings in the metadata. */
export async function saveSynthetic(file: string, set: SyntheticSet): Promise<void> {
  const n = set.labels.length;
  const tensors = {
    latents: tf.tensor4d(set.data, [n, ...set.shape]),
    labels: tf.tensor1d(set.labels, 'int32'),
  };
  try {
    await saveTensors(file, tensors, {
      format: FORMAT,
      teacher: set.teacher,
      settings: JSON.stringify(set.settings),
    });
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

export async function loadSynthetic(file: string): Promise<SyntheticSet> {
  const { tensors, metadata } = await loadTensors(file);
  try {
    const { latents, labels } = tensors;
    if (metadata.format !== FORMAT || !latents || !labels || latents.rank !== 4 || labels.rank !== 1) {
      throw new Error(`${file} is not a synthetic latent set: make one with \`ladder synth\``);
    }
    const [n, h, w, c] = latents.shape as [number, number, number, number];
    if (labels.shape[0] !== n) throw new Error(`${file} holds ${n} latents but ${labels.shape[0]} labels`);
    return {
      data: (await latents.data()) as Float32Array,
      labels: Int32Array.from(await labels.data()),
      shape: [h, w, c],
      settings: JSON.parse(metadata.settings ?? '{}') as SynthSettings,
      teacher: metadata.teacher ?? '',
    };
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

/** Fails unless `set` fits `teacher`: same latent shape, labels within its classes. */
export function checkSyntheticFits(set: SyntheticSet, teacher: DiffusionModel, file: string): void {
  const want = teacher.config.latentShape;
  if (set.shape.join() !== want.join()) {
    throw new Error(
      `${file} holds ${set.shape.join('x')} latents but the teacher makes ${want.join('x')}: regenerate it with \`ladder synth\``,
    );
  }
  const numClasses = Math.max(1, teacher.config.unet.numClasses);
  const bad = set.labels.find((l) => l < 0 || l >= numClasses);
  if (bad !== undefined)
    throw new Error(`${file} has label ${bad}, but the teacher has ${numClasses} classes`);
}

const sameSettings = (a: SynthSettings, b: SynthSettings): boolean =>
  (['count', 'steps', 'cfg', 'sampler', 'seed'] as const).every((k) => a[k] === b[k]);

export interface SynthOptions {
  readonly teacher: DiffusionModel;
  readonly teacherDir: string;
  readonly outFile: string;
  readonly settings: SynthSettings;
  readonly batchSize?: number;
}

/**
 * The cached set in `outFile` when it exists and was made with the same settings (and fits the teacher);
 * otherwise it is generated and written. A file made with other settings is an error, not overwritten.
 */
export async function synthesize(opts: SynthOptions): Promise<SyntheticSet> {
  const { teacher, teacherDir, outFile, settings } = opts;
  if (existsSync(outFile)) {
    const cached = await loadSynthetic(outFile);
    checkSyntheticFits(cached, teacher, outFile);
    if (!sameSettings(cached.settings, settings)) {
      throw new Error(
        `${outFile} was made with ${JSON.stringify(cached.settings)}, not ${JSON.stringify(settings)}: delete it or choose another file`,
      );
    }
    if (cached.teacher !== resolve(teacherDir)) {
      process.stderr.write(
        `warning: ${outFile} was made by teacher ${cached.teacher}, reusing it for ${teacherDir}\n`,
      );
    }
    return cached;
  }
  const set = synthesizeLatents(teacher, settings, teacherDir, opts.batchSize);
  await saveSynthetic(outFile, set);
  process.stderr.write(`${set.labels.length} synthetic latents -> ${outFile}\n`);
  return set;
}
