// `ladder sample`: a grid PNG (rows = classes) or raw uint8 images + labels as .npy.
import { extname } from 'node:path';
import { writeFileAtomic } from '../core/fs.js';
import * as tf from '../core/tf.js';
import { toUint8Images, writeImageGrid } from '../image/png.js';
import { encodeNpy } from '../io/npy.js';
import { loadDiffusionModel } from '../models/folder.js';
import { balancedLabels, defaultSampler, generateImages } from '../models/pipeline.js';
import { SAMPLER_KINDS, type SamplerKind } from '../samplers/sample.js';

export interface SampleCommandOptions {
  readonly model: string;
  readonly steps?: number;
  readonly cfg?: number;
  readonly sampler?: string;
  readonly classes: string;
  readonly n: number;
  readonly seed: number;
  readonly latentSize?: string;
  readonly out: string;
}

/** Parses "0-9", "1,3,7" or "0-4,8" into class indices, checked against the model's classes. */
export function parseClasses(spec: string, numClasses: number): number[] {
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new Error(`--classes: cannot read "${part}" (use e.g. 0-9 or 1,3,7)`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    for (let c = lo; c <= hi; c++) {
      if (c >= numClasses)
        throw new Error(`--classes: class ${c} does not exist (the model has ${numClasses})`);
      out.push(c);
    }
  }
  return out;
}

export function parseLatentSize(spec: string): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(spec.trim());
  if (!m) throw new Error(`--latent-size: expected HxW such as 9x9, got "${spec}"`);
  return [Number(m[1]), Number(m[2])];
}

export async function sampleCommand(o: SampleCommandOptions): Promise<void> {
  const ext = extname(o.out).toLowerCase();
  if (ext !== '.png' && ext !== '.npy') throw new Error(`--out must end in .png or .npy, got "${o.out}"`);
  if (o.sampler !== undefined && !(SAMPLER_KINDS as readonly string[]).includes(o.sampler)) {
    throw new Error(`--sampler: unknown "${o.sampler}"; known: ${SAMPLER_KINDS.join(', ')}`);
  }
  const model = await loadDiffusionModel(o.model);
  const { config } = model;
  const classes = parseClasses(o.classes, config.unet.numClasses);
  const count = ext === '.png' ? classes.length * o.n : o.n;
  const labels =
    ext === '.png'
      ? Int32Array.from(classes.flatMap((c) => Array<number>(o.n).fill(c)))
      : balancedLabels(classes, count);
  const began = performance.now();
  const images = generateImages(model, {
    labels,
    steps: o.steps ?? config.sampling.steps[0]!,
    cfg: o.cfg ?? config.sampling.cfg,
    sampler: (o.sampler as SamplerKind | undefined) ?? defaultSampler(config),
    seed: o.seed,
    ...(o.latentSize === undefined ? {} : { latentSize: parseLatentSize(o.latentSize) }),
  });
  const seconds = (performance.now() - began) / 1000;
  try {
    if (ext === '.png') {
      await writeImageGrid(o.out, images, classes.length, o.n, { scale: 2 });
    } else {
      const [n, h, w, c] = images.shape;
      await writeFileAtomic(o.out, encodeNpy(await toUint8Images(images), [n, h, w, c]));
      await writeFileAtomic(o.out.replace(/\.npy$/i, '.labels.npy'), encodeNpy(labels, [n]));
    }
  } finally {
    tf.dispose(images);
  }
  process.stderr.write(`${count} images in ${seconds.toFixed(1)} s -> ${o.out}\n`);
}
