// `ladder sample`: a grid PNG (rows = classes) or raw uint8 images + labels as .npy. Images are generated and
// decoded --batch at a time and kept as bytes, so memory stays flat in --n; nothing is written until all are made.
import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { writeFileAtomic } from '../core/fs.js';
import { toUint8Images } from '../image/bytes.js';
import { imageGridPng } from '../image/png.js';
import { encodeNpy } from '../io/npy.js';
import { type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import {
  balancedLabels,
  checkChunkFits,
  DEFAULT_BATCH,
  defaultSampler,
  formatBytes,
  type GenerateConditions,
  imageChunks,
  MAX_CFG,
  promptLatentSize,
} from '../models/pipeline.js';
import { downsampling } from '../nn/autoencoder.js';
import type { SamplerKind } from '../samplers/sample.js';
import { cfgScale, int, modelFolder, sampler } from './options.js';

/** Largest output `sample` assembles in memory before writing it (the .npy images or the PNG grid's pixels). */
export const MAX_OUTPUT_BYTES = 2e9;
const GRID_SCALE = 2;
const GRID_PAD = 2; // imageGridPng's default gap

/** An inclusive class range, e.g. [0, 9] for "0-9", or a class name. */
export type ClassRange = readonly [number, number] | string;

/**
 * Parses "0-9", "1,3,7", "0-4,8" or class names ("cats,dogs") into ranges (each lo <= hi) and names; the model's
 * classes are checked later.
 */
export function parseClassRanges(spec: string): ClassRange[] {
  return spec.split(',').map((part) => {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) {
      if (part.trim() === '') throw new InvalidArgumentError(`--classes: empty item in "${spec}"`);
      return part.trim();
    }
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo > hi)
      throw new InvalidArgumentError(`--classes: range "${part.trim()}" runs backwards; write ${hi}-${lo}`);
    return [lo, hi] as const;
  });
}

/** The class indices of `ranges` (default: all of the model's), checked against the model's classes. */
export function resolveClasses(
  ranges: readonly ClassRange[] | undefined,
  numClasses: number,
  classNames: readonly string[] = [],
): number[] {
  // An unconditional model (0 classes) samples with label 0, as its training did.
  if (ranges === undefined) return numClasses > 0 ? [...Array(numClasses).keys()] : [0];
  const out: number[] = [];
  for (const range of ranges) {
    if (typeof range === 'string') {
      const index = classNames.indexOf(range);
      if (index < 0) {
        throw new Error(
          `--classes: the model has no class "${range}"; its classes: ${classNames.map((n, i) => `${i} ${n}`).join(', ')}`,
        );
      }
      out.push(index);
      continue;
    }
    const [lo, hi] = range;
    for (let c = lo; c <= hi; c++) {
      if (c >= Math.max(1, numClasses))
        throw new Error(`--classes: class ${c} does not exist (the model has ${numClasses})`);
      out.push(c);
    }
  }
  return out;
}

/** A parser of "HxW" latent sizes, each side an integer >= 1. */
export const latentSizeArg =
  (flag: string) =>
  (spec: string): [number, number] => {
    const m = /^(\d+)x(\d+)$/.exec(spec.trim());
    if (!m) throw new InvalidArgumentError(`${flag}: expected HxW such as 9x9, got "${spec}"`);
    const size: [number, number] = [Number(m[1]), Number(m[2])];
    if (size[0] < 1 || size[1] < 1)
      throw new InvalidArgumentError(`${flag}: height and width must be at least 1, got "${spec}"`);
    return size;
  };

/** Warns that a model sampled at a latent size it was not trained at may make unusable images. */
export function warnUntrainedLatentSize(
  size: readonly [number, number],
  trained: readonly number[],
  model: string,
): void {
  if (size[0] === trained[0] && size[1] === trained[1]) return;
  process.stderr.write(
    `ladder: warning: ${model} was trained at ${trained[0]}x${trained[1]} latents; at ${size.join('x')} its ` +
      'images may be unusable (a U-Net trained at one size does not generalise to others without multi-size training)\n',
  );
}

/** Fails when any of `files` exists, unless `force`: a command never replaces a result silently. */
export function refuseOverwrite(files: readonly string[], force: boolean, flag: string): void {
  if (force) return;
  const existing = files.filter((f) => existsSync(f));
  if (existing.length > 0) {
    throw new Error(
      `${existing.join(', ')} already ${existing.length === 1 ? 'exists' : 'exist'}: ` +
        `pass --force to overwrite, or choose another ${flag}`,
    );
  }
}

export interface SampleCommandOptions {
  readonly model: string;
  readonly steps?: number;
  readonly cfg?: number;
  readonly sampler?: SamplerKind;
  /** Default: all of the model's classes. */
  readonly classes?: readonly ClassRange[];
  /** A prompt-conditional model's prompt (every image's). */
  readonly prompt?: string;
  readonly n: number;
  readonly seed: number;
  readonly latentSize?: readonly [number, number];
  /** Images generated and decoded at a time. */
  readonly batch: number;
  /** Overwrite an existing output. */
  readonly force: boolean;
  readonly out: string;
}

const labelsFile = (out: string): string => out.replace(/\.npy$/i, '.labels.npy');

/** What to generate: the conditions of every image, at what latent size, and a name per grid row. */
interface SamplePlan {
  readonly conditions: GenerateConditions;
  readonly count: number;
  readonly latentSize: readonly [number, number];
  readonly rows: readonly string[];
}

// A class model: a grid row per class (.png), or --n class-balanced images (.npy).
function classPlan(model: LoadedDiffusionModel, o: SampleCommandOptions, ext: string): SamplePlan {
  const { config } = model;
  if (o.prompt !== undefined) {
    throw new Error(
      `${o.model} is not prompt-conditional: choose classes with --classes instead of --prompt`,
    );
  }
  const classes = resolveClasses(o.classes, config.unet.numClasses, config.classNames);
  const count = ext === '.png' ? classes.length * o.n : o.n;
  const latentSize = o.latentSize ?? [config.latentShape[0], config.latentShape[1]];
  warnUntrainedLatentSize(latentSize, config.latentShape, o.model);
  const labels =
    ext === '.png'
      ? Int32Array.from(classes.flatMap((k) => Array<number>(o.n).fill(k)))
      : balancedLabels(classes, count);
  return {
    conditions: { labels },
    count,
    latentSize,
    rows: classes.map((k) => config.classNames[k] ?? String(k)),
  };
}

// A prompt model: --n images of --prompt, at the size the prompt asks for (one grid row).
function promptPlan(model: LoadedDiffusionModel, o: SampleCommandOptions): SamplePlan {
  if (o.prompt === undefined) {
    throw new Error(`${o.model} is prompt-conditional: give --prompt, e.g. --prompt 407`);
  }
  if (o.classes !== undefined) throw new Error(`${o.model} is prompt-conditional: it has no --classes`);
  const latentSize = o.latentSize ?? promptLatentSize(model, o.prompt);
  return {
    conditions: { prompts: Array<string>(o.n).fill(o.prompt) },
    count: o.n,
    latentSize,
    rows: [JSON.stringify(o.prompt)],
  };
}

export async function sampleCommand(o: SampleCommandOptions): Promise<void> {
  const ext = extname(o.out).toLowerCase();
  if (ext !== '.png' && ext !== '.npy') throw new Error(`--out must end in .png or .npy, got "${o.out}"`);
  refuseOverwrite(ext === '.npy' ? [o.out, labelsFile(o.out)] : [o.out], o.force, '--out');
  const model = await loadDiffusionModel(o.model);
  const { config } = model;
  const plan = config.unet.text ? promptPlan(model, o) : classPlan(model, o, ext);
  const { count, latentSize } = plan;
  const cfg = o.cfg ?? config.sampling.cfg;
  // The decoder's images: the latent size times the autoencoder's downsampling.
  const aeConfig = model.autoencoder.config.autoencoder;
  const c = aeConfig.imageShape[2];
  const [h, w] = [latentSize[0] * downsampling(aeConfig), latentSize[1] * downsampling(aeConfig)];
  const size = h * w * c;
  // Everything that cannot fit fails here, before the first image is generated (a chunk is at most `count`).
  checkChunkFits(model, { latentSize, batchSize: Math.min(o.batch, count), cfg, decode: true });
  const gridBytes =
    (plan.rows.length * (h * GRID_SCALE + GRID_PAD) + GRID_PAD) *
    (o.n * (w * GRID_SCALE + GRID_PAD) + GRID_PAD) *
    c;
  const outputBytes = count * size + (ext === '.png' ? gridBytes : count * size);
  if (outputBytes > MAX_OUTPUT_BYTES) {
    throw new Error(
      `--n ${o.n} makes a ${ext} of about ${formatBytes(outputBytes)} in memory, above the ` +
        `${formatBytes(MAX_OUTPUT_BYTES)} cap: lower --n${ext === '.png' ? ' or write .npy' : ''}`,
    );
  }
  const began = performance.now();
  const pixels = new Uint8Array(count * size);
  for (const { start, tensor } of imageChunks(model, {
    ...plan.conditions,
    steps: o.steps ?? config.sampling.steps[0]!,
    cfg,
    sampler: o.sampler ?? defaultSampler(config),
    seed: o.seed,
    latentSize,
    batchSize: o.batch,
    modelName: o.model,
    checkFinite: true,
  })) {
    try {
      // The buffers are sized from the autoencoder's image shape: other sizes would scramble them.
      if (tensor.shape.slice(1).join('x') !== `${h}x${w}x${c}`) {
        throw new Error(
          `the decoder made ${tensor.shape.slice(1).join('x')} images, expected ${h}x${w}x${c}`,
        );
      }
      pixels.set(await toUint8Images(tensor), start * size);
    } finally {
      tensor.dispose();
    }
  }
  const seconds = (performance.now() - began) / 1000;
  if (ext === '.png') {
    const png = imageGridPng(pixels, count, h, w, c, {
      rows: plan.rows.length,
      cols: o.n,
      scale: GRID_SCALE,
      pad: GRID_PAD,
    });
    await writeFileAtomic(o.out, png);
    process.stderr.write(`rows: ${plan.rows.map((n, row) => `${row + 1} ${n}`).join(', ')}\n`);
  } else {
    await writeFileAtomic(o.out, encodeNpy(pixels, [count, h, w, c]));
    if (plan.conditions.labels) {
      await writeFileAtomic(labelsFile(o.out), encodeNpy(plan.conditions.labels, [count]));
    }
  }
  process.stderr.write(`${count} images in ${seconds.toFixed(1)} s -> ${o.out}\n`);
}

/** Adds `sample` to the `ladder` program. */
export function registerSampleCommand(program: Command): void {
  program
    .command('sample')
    .description('sample a teacher or student: a class grid (.png) or raw images (.npy + .labels.npy)')
    .requiredOption(
      '--model <dir>',
      "model folder (teacher or student), or a shipped one's name (e.g. mnist/ladd-dmd-4step)",
      modelFolder,
    )
    .option('--steps <n>', "sampling steps (default: the model's own)", int('--steps', 1))
    .option(
      '--cfg <w>',
      `classifier-free guidance scale, 0 to ${MAX_CFG} (default: the model's own)`,
      cfgScale('--cfg'),
    )
    .option('--sampler <kind>', 'euler, heun, dpmpp-2m or few-step (students default to few-step)', sampler)
    .option(
      '--classes <range>',
      "classes by index or name, e.g. 0-9, 1,3,7 or cats,dogs (default: all the model's classes)",
      parseClassRanges,
    )
    .option(
      '--prompt <text>',
      "a prompt-conditional model's prompt, e.g. 407 for a digit-strings model (the image size follows from it)",
    )
    .option(
      '--n <count>',
      'grid: images per class (or of the prompt); .npy: images in total (class-balanced)',
      int('--n', 1),
      8,
    )
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option(
      '--latent-size <hxw>',
      "latent height x width (default: the model's), e.g. 9x9 or 7x11",
      latentSizeArg('--latent-size'),
    )
    .option(
      '--batch <n>',
      'images generated and decoded at a time: bounds memory (the few-step sampler draws its noise per batch, ' +
        'so its images depend on it)',
      int('--batch', 1),
      DEFAULT_BATCH,
    )
    .option('--force', 'overwrite an existing --out (and its .labels.npy)', false)
    .requiredOption('--out <file>', 'output .png (grid) or .npy (raw uint8 images)')
    .action(async (o: SampleCommandOptions) => sampleCommand(o));
}
