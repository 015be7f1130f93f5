import { Rng } from '../core/rng.js';
import { loadDiffusionModel } from '../models/folder.js';
import { unetNet } from '../models/pipeline.js';
import { countParams, disposeParams } from '../nn/params.js';
import { prepareRunDir } from '../train/card.js';
import type { Player } from '../train/checkpoint.js';
import { laddHeadsConfig } from './ladd-config.js';
import { FAKE_SCORE, type LaddDmdSetup, laddDmdPlayers, laddDmdStep } from './ladd-dmd.js';
import { type LaddDmdConfig, resolveLaddDmdConfig } from './ladd-dmd-config.js';
import { type DistillLaddOptions, laddSetup } from './ladd-train.js';
import { methodDenoisers } from './shared/denoisers.js';
import { trainingLatents } from './shared/latents.js';
import { disposePlayers } from './shared/players.js';
import { type DistillResult, trainStudent } from './shared/student-run.js';

export interface DistillLaddDmdOptions extends Omit<DistillLaddOptions, 'config'> {
  /** Overrides of LADD_DMD_DEFAULTS. */
  readonly config?: Partial<LaddDmdConfig>;
}

export async function distillLaddDmd(opts: DistillLaddDmdOptions): Promise<DistillResult> {
  const config = resolveLaddDmdConfig(opts.config);
  await prepareRunDir(opts.outDir, opts.resume, config.iterations);
  const teacher = await loadDiffusionModel(opts.teacherDir);
  let players: Record<string, Player> = {};
  try {
    if (teacher.config.kind !== 'teacher') {
      throw new Error(
        `${opts.teacherDir} is a ${teacher.config.kind} model: LADD-DMD distils a teacher folder`,
      );
    }
    const heads = laddHeadsConfig(teacher.config.unet, config); // checks the tapped features before slow work
    const latents = await trainingLatents(opts, config.data, teacher);
    const cfg = config.teacherCfg === 'teacher' ? teacher.config.sampling.cfg : config.teacherCfg;
    const denoisers = methodDenoisers(teacher, { cfg });
    const setup: LaddDmdSetup = {
      ...laddSetup(teacher, config, heads, latents, opts.seed),
      teacher: denoisers.teacher,
      // The fake score is the teacher's network over other weights, unguided (with a prompt teacher, its text
      // encoder too: here the text encoder is part of the network it was trained with).
      fakeScoreNet: (params) => unetNet(teacher.config.unet, params),
    };
    players = laddDmdPlayers(setup, new Rng(opts.seed).fork());
    return await trainStudent(
      {
        method: 'ladd-dmd',
        teacher,
        config,
        players,
        step: laddDmdStep(setup, players),
        trainingSet: latents.description,
        dataParallel: true,
        cardExtra: () => ({
          teacherCfg: denoisers.teacherCfg,
          fakeScoreParams: countParams(players[FAKE_SCORE]!.params),
        }),
      },
      opts,
    );
  } finally {
    disposePlayers(players);
    disposeParams(teacher.params);
    disposeParams(teacher.autoencoder.params);
  }
}
