import { Rng } from '../core/rng.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import type { HeadsConfig } from '../nn/heads.js';
import { disposeParams } from '../nn/params.js';
import { prepareRunDir } from '../train/card.js';
import type { Player } from '../train/checkpoint.js';
import { type LaddSetup, laddPlayers, laddStep } from './ladd.js';
import { type LaddConfig, laddHeadsConfig, resolveLaddConfig } from './ladd-config.js';
import { methodDenoisers } from './shared/denoisers.js';
import {
  type LatentSet,
  type LatentSourceOptions,
  latentBatches,
  trainingLatents,
} from './shared/latents.js';
import { disposePlayers } from './shared/players.js';
import { type DistillResult, trainStudent } from './shared/student-run.js';

export interface DistillLaddOptions extends LatentSourceOptions {
  /** Overrides of LADD_DEFAULTS. */
  readonly config?: Partial<LaddConfig>;
  readonly seed: number;
  readonly resume: boolean;
  readonly checkpointEvery: number;
  readonly logEvery?: number;
  /** Stop after this many steps in this process (tests); the run stays resumable. */
  readonly stopAfter?: number;
  /** Profile this many iterations after a warm-up one, then stop (the result's `profile`). */
  readonly profile?: number;
}

/** LADD's setup on a loaded teacher: the student's denoiser, the teacher's encoder, the heads, the latents. */
export function laddSetup<C extends LaddConfig>(
  teacher: LoadedDiffusionModel,
  config: C,
  heads: HeadsConfig,
  latents: LatentSet,
  seed: number,
): LaddSetup & { readonly config: C } {
  return {
    config,
    formulation: makeFormulation(teacher.config.formulation),
    student: methodDenoisers(teacher, { cfg: 1 }).student,
    unet: teacher.config.unet,
    teacherParams: teacher.params,
    heads,
    data: latentBatches(latents, { batchSize: config.batchSize, seed }),
  };
}

export async function distillLadd(opts: DistillLaddOptions): Promise<DistillResult> {
  const config = resolveLaddConfig(opts.config);
  await prepareRunDir(opts.outDir, opts.resume, config.iterations);
  const teacher = await loadDiffusionModel(opts.teacherDir);
  let players: Record<string, Player> = {};
  try {
    if (teacher.config.kind !== 'teacher') {
      throw new Error(`${opts.teacherDir} is a ${teacher.config.kind} model: LADD distils a teacher folder`);
    }
    const heads = laddHeadsConfig(teacher.config.unet, config); // checks the tapped features before slow work
    const latents = await trainingLatents(opts, config.data, teacher);
    const setup = laddSetup(teacher, config, heads, latents, opts.seed);
    players = laddPlayers(setup, new Rng(opts.seed).fork());
    return await trainStudent(
      {
        method: 'ladd',
        teacher,
        config,
        players,
        step: laddStep(setup, players),
        trainingSet: latents.description,
        dataParallel: true,
      },
      opts,
    );
  } finally {
    disposePlayers(players);
    disposeParams(teacher.params);
    disposeParams(teacher.autoencoder.params);
  }
}
