// The latents LADD and PADD train on: a cached synthetic set of the teacher's, or the dataset through its encoder.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../../data/dataset.js';
import {
  type ArraySource,
  BatchLoader,
  type BatchLoaderOptions,
  type ConditionedBatches,
  classBatches,
} from '../../data/loader.js';
import { BucketedLoader, type PromptBucket } from '../../data/prompts.js';
import type { LoadedDiffusionModel } from '../../models/folder.js';
import { encodeImages, latentShape } from '../../nn/autoencoder.js';
import { processGroupFromEnv, valueFromRankZero } from '../../train/data-parallel.js';
import {
  type AnySyntheticSet,
  checkSyntheticFits,
  checkSyntheticTeacher,
  defaultSynthSettings,
  isPromptSet,
  loadSynthetic,
  type SynthSettings,
  synthesize,
  syntheticSetFromRankZero,
  teacherLineage,
} from './synth.js';

/** Where a distillation run's latents come from. */
export interface LatentSourceOptions {
  readonly teacherDir: string;
  readonly outDir: string;
  /** Synthetic latents file; made (and cached) there when missing. Default `<outDir>/synthetic.safetensors`. */
  readonly syntheticFile?: string;
  /**
   * How to make the synthetic set when the file is missing (default: the teacher's steps and CFG, 10 000). When
   * given, an existing file must have been made with these settings; when not, an existing file is used as is.
   */
  readonly synth?: Partial<SynthSettings>;
  /** Real data only: use the first N training images. */
  readonly limit?: number;
}

/** Latents of one shape with class labels, or a prompt-conditional teacher's aspect-ratio buckets. */
export type LatentSet =
  | ArraySource
  | { readonly buckets: readonly PromptBucket[]; readonly maxTokens: number };

/** A latent set's seeded batches: class batches, or one aspect-ratio bucket per batch for prompted latents. */
export function latentBatches(latents: LatentSet, opts: BatchLoaderOptions): ConditionedBatches {
  return 'buckets' in latents
    ? new BucketedLoader(latents.buckets, latents.maxTokens, opts)
    : classBatches(new BatchLoader(latents, opts));
}

/**
 * The latents LADD and PADD train on: the cached synthetic set (made when missing; one made by a teacher outside
 * this teacher's lineage is refused), or the dataset encoded by the teacher's autoencoder.
 */
export async function trainingLatents(
  opts: LatentSourceOptions,
  kind: 'synthetic' | 'real',
  teacher: LoadedDiffusionModel,
): Promise<LatentSet & { readonly description: Record<string, unknown> }> {
  if (kind === 'synthetic') {
    const file = opts.syntheticFile ?? join(opts.outDir, 'synthetic.safetensors');
    // An existing file is used as it is, unless generation settings were given: then they must match it.
    const asked = Object.keys(opts.synth ?? {}).length > 0;
    // Under a launch the file is rank 0's: the other ranks may be on machines without it.
    const group = processGroupFromEnv();
    const lead = group === undefined || group.rank === 0;
    if (group !== undefined && teacher.config.prompts)
      throw new Error(
        'data-parallel distillation of a prompt-conditional teacher is not built: run it in one process',
      );
    const exists = lead && existsSync(file);
    let set: AnySyntheticSet;
    if ((group === undefined ? exists : valueFromRankZero(group, exists)) && !asked) {
      const cached = lead ? await loadSynthetic(file) : undefined;
      if (cached !== undefined) {
        checkSyntheticFits(cached, teacher, file);
        checkSyntheticTeacher(cached, await teacherLineage(teacher.dir, teacher.config), file);
      }
      set = group === undefined ? cached! : syntheticSetFromRankZero(group, cached);
    } else {
      const settings = defaultSynthSettings(teacher, opts.synth);
      set = await synthesize({
        teacher,
        teacherDir: opts.teacherDir,
        outFile: file,
        settings,
        acceptAncestors: true,
      });
    }
    const description = { kind: 'synthetic', file, ...set.settings };
    return isPromptSet(set)
      ? { buckets: set.buckets, maxTokens: set.maxTokens, description }
      : { ...set, description };
  }
  if (teacher.config.prompts) {
    throw new Error(
      'distilling a prompt-conditional teacher on real data is not built: use its synthetic latents (--data synthetic)',
    );
  }
  const ae = teacher.autoencoder;
  const aeCfg = ae.config.autoencoder;
  const dataset = await loadDataset(
    ae.config.dataset,
    'train',
    opts.limit === undefined ? {} : { limit: opts.limit },
  );
  const data = await encodeImages(ae.params, aeCfg, dataset.images, dataset.count);
  return {
    data,
    labels: dataset.labels,
    shape: latentShape(aeCfg),
    description: { kind: 'real', dataset: dataset.name, count: dataset.count },
  };
}

/** Refuses a prompt-conditional teacher for a method whose discriminator or fake score takes classes only. */
export function requireClassTeacher(teacher: LoadedDiffusionModel, method: string): void {
  if (teacher.config.unet.text) {
    throw new Error(
      `${teacher.dir} is prompt-conditional, but ${method} takes classes only so far: distil it with LADD, PADD or LADD-DMD`,
    );
  }
}

/**
 * `trainingLatents` for a method whose discriminator takes classes only: a prompt-conditional teacher is refused
 * before any latents are made.
 */
export async function classTrainingLatents(
  opts: LatentSourceOptions,
  kind: 'synthetic' | 'real',
  teacher: LoadedDiffusionModel,
  method: string,
): Promise<ArraySource & { readonly description: Record<string, unknown> }> {
  requireClassTeacher(teacher, method);
  const set = await trainingLatents(opts, kind, teacher);
  if ('buckets' in set) throw new Error(`${method}: a class-conditional teacher made prompted latents`);
  return set;
}
