// `ladder distill --method ladd`: loads the teacher and its training latents (cached synthetic ones by default),
// trains the LADD players with the shared loop (resumable, logged) and writes the student's model folder.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { encodeImages, latentShape } from '../autoencoder/model.js';
import { Rng } from '../core/rng.js';
import { loadDataset } from '../data/dataset.js';
import { type ArraySource, BatchLoader } from '../data/loader.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import { disposeParams } from '../nn/params.js';
import { prepareRunDir } from '../train/card.js';
import type { Player } from '../train/checkpoint.js';
import type { TrainResult } from '../train/loop.js';
import {
  type LaddConfig,
  type LaddSetup,
  laddHeadsConfig,
  laddPlayers,
  laddStep,
  resolveLaddConfig,
} from './ladd.js';
import { disposePlayers } from './shared/players.js';
import { trainStudent } from './shared/student-run.js';
import {
  checkSyntheticFits,
  checkSyntheticTeacher,
  defaultSynthSettings,
  loadSynthetic,
  type SyntheticSet,
  type SynthSettings,
  synthesize,
  teacherLineage,
} from './synth.js';

export interface DistillLaddOptions {
  readonly teacherDir: string;
  readonly outDir: string;
  /** Overrides of LADD_DEFAULTS. */
  readonly config?: Partial<LaddConfig>;
  readonly seed: number;
  readonly resume: boolean;
  readonly checkpointEvery: number;
  readonly logEvery?: number;
  /** Synthetic latents file; made (and cached) there when missing. Default `<outDir>/synthetic.safetensors`. */
  readonly syntheticFile?: string;
  /**
   * How to make the synthetic set when the file is missing (default: the teacher's steps and CFG, 10 000). When
   * given, an existing file must have been made with these settings; when not, an existing file is used as is.
   */
  readonly synth?: Partial<SynthSettings>;
  /** Real data only: use the first N training images. */
  readonly limit?: number;
  /** Stop after this many steps in this process (tests); the run stays resumable. */
  readonly stopAfter?: number;
}

/** What a distillation run returns: the shared loop's result. */
export type DistillResult = TrainResult;

/** Where a distillation run's latents come from (the fields of its options that say so). */
export type LatentSourceOptions = Pick<
  DistillLaddOptions,
  'teacherDir' | 'outDir' | 'syntheticFile' | 'synth' | 'limit'
>;

/**
 * The latents LADD and PADD train on: the cached synthetic set (made when missing; one made by a teacher outside
 * this teacher's lineage is refused), or the dataset encoded by the teacher's autoencoder.
 */
export async function trainingLatents(
  opts: LatentSourceOptions,
  kind: 'synthetic' | 'real',
  teacher: LoadedDiffusionModel,
): Promise<ArraySource & { readonly description: Record<string, unknown> }> {
  if (kind === 'synthetic') {
    const file = opts.syntheticFile ?? join(opts.outDir, 'synthetic.safetensors');
    // An existing file is used as it is, unless generation settings were given: then they must match it.
    const asked = Object.keys(opts.synth ?? {}).length > 0;
    let set: SyntheticSet;
    if (existsSync(file) && !asked) {
      set = await loadSynthetic(file);
      checkSyntheticFits(set, teacher, file);
      checkSyntheticTeacher(set, await teacherLineage(teacher.dir, teacher.config), file);
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
    return { ...set, description: { kind: 'synthetic', file, ...set.settings } };
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

export async function distillLadd(opts: DistillLaddOptions): Promise<DistillResult> {
  const config = resolveLaddConfig(opts.config);
  await prepareRunDir(opts.outDir, opts.resume, config.iterations, '--iterations');
  const teacher = await loadDiffusionModel(opts.teacherDir);
  let players: Record<string, Player> = {};
  try {
    if (teacher.config.kind !== 'teacher') {
      throw new Error(`${opts.teacherDir} is a ${teacher.config.kind} model: LADD distils a teacher folder`);
    }
    const heads = laddHeadsConfig(teacher.config.unet, config); // checks the tapped features before slow work
    const latents = await trainingLatents(opts, config.data, teacher);
    const setup: LaddSetup = {
      config,
      formulation: makeFormulation(teacher.config.formulation),
      unet: teacher.config.unet,
      teacherParams: teacher.params,
      heads,
      data: new BatchLoader(latents, { batchSize: config.batchSize, seed: opts.seed }),
    };
    players = laddPlayers(setup, new Rng(opts.seed).fork());
    return await trainStudent(
      {
        method: 'ladd',
        teacher,
        config,
        players,
        step: laddStep(setup, players),
        trainingSet: latents.description,
      },
      opts,
    );
  } finally {
    disposePlayers(players);
    disposeParams(teacher.params);
    disposeParams(teacher.autoencoder.params);
  }
}
