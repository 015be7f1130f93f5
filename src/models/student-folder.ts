// The model folder config of a distilled student: the teacher's network and formulation, kind 'student', the
// autoencoder and teacher paths made relative to the student's own folder, and how it was distilled.
import { relative, resolve } from 'node:path';
import type { SamplerKind } from '../samplers/sample.js';
import type { LoadedDiffusionModel } from './folder.js';
import type { DiffusionModelConfig, DistillMethod } from './schema.js';

export interface StudentConfigOptions {
  readonly teacher: LoadedDiffusionModel;
  /** Where the student folder is written. */
  readonly outDir: string;
  readonly method: DistillMethod;
  /** Step counts the student is meant for, default first. */
  readonly steps: readonly number[];
  /** 'x0' for a student whose net predicts x0 directly (PADD's 1-step student). */
  readonly prediction?: 'formulation' | 'x0';
  /** The sampler the student was trained for, when not the students' default (few-step). */
  readonly sampler?: SamplerKind;
  /** The method's resolved config, recorded next to the method and teacher. */
  readonly methodConfig: object;
}

const relativeTo = (dir: string, target: string): string => relative(resolve(dir), resolve(target)) || '.';

/** A student's config.json: guidance-free (cfg 1), sharing the teacher's U-Net and latent space. */
export function studentConfig(opts: StudentConfigOptions): DiffusionModelConfig {
  const { teacher, outDir } = opts;
  const t = teacher.config;
  if (opts.steps.length === 0) throw new Error('a student needs at least one sampling step count');
  return {
    format: 'ladder-model',
    version: 1,
    kind: 'student',
    dataset: t.dataset,
    autoencoder: relativeTo(outDir, resolve(teacher.dir, t.autoencoder)),
    latentShape: t.latentShape,
    classNames: [...t.classNames],
    formulation: t.formulation,
    unet: t.unet,
    ...(t.prompts === undefined ? {} : { prompts: t.prompts }),
    prediction: opts.prediction ?? 'formulation',
    sampling: { steps: [...opts.steps], cfg: 1, ...(opts.sampler ? { sampler: opts.sampler } : {}) },
    distill: { ...opts.methodConfig, method: opts.method, teacher: relativeTo(outDir, teacher.dir) },
  };
}
