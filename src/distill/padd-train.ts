// `ladder distill --method padd`: runs the ladder of PADD stages, each with the previous stage's student as its
// teacher; every phase of every stage is a resumable run of the shared loop, and each stage writes its student.
// Under a launch, rank 0 alone reads and writes the run folder: the other ranks take its decisions (which stages
// and phases are done) and weights over the process group, so they need no shared disk.
import { existsSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureWritableDir } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import { datasetLabel } from '../data/image-dataset.js';
import { makeFormulation } from '../diffusion/formulation.js';
import type { EngineProfile } from '../engine/profile.js';
import type { Collectives } from '../engine/torch/collectives.js';
import { loadTensors, saveTensors } from '../io/safetensors.js';
import {
  CONFIG_FILE,
  type LoadedDiffusionModel,
  loadDiffusionModel,
  saveModelFolder,
} from '../models/folder.js';
import { studentConfig } from '../models/student-folder.js';
import { countParams, disposeParams, type Params, paramsUnder, prefixParams } from '../nn/params.js';
import { makeCard } from '../train/card.js';
import type { Player } from '../train/checkpoint.js';
import { processGroupFromEnv, tensorsFromRankZero, valueFromRankZero } from '../train/data-parallel.js';
import { type SegmentSummary, type TrainResult, train } from '../train/loop.js';
import { lockRunDir } from '../train/run-lock.js';
import {
  discriminatorEncoder,
  initPaddDiscriminator,
  type PaddStageSetup,
  paddAdversarialStep,
  paddDiscriminator,
  paddHeadConfig,
  paddMseStep,
  paddStudent,
} from './padd.js';
import {
  type PaddConfig,
  type PaddPhase,
  type PaddStage,
  parsePaddSchedule,
  resolvePaddConfig,
  stagePhases,
} from './padd-config.js';
import { methodDenoisers } from './shared/denoisers.js';
import {
  type LatentSet,
  type LatentSourceOptions,
  latentBatches,
  trainingLatents,
} from './shared/latents.js';
import { disposePlayers } from './shared/players.js';

export interface DistillPaddOptions extends LatentSourceOptions {
  /** Overrides of PADD_DEFAULTS. */
  readonly config?: Partial<PaddConfig>;
  readonly seed: number;
  readonly resume: boolean;
  readonly checkpointEvery: number;
  readonly logEvery?: number;
  /** Student step count of the stage to start at; earlier stages are read from `outDir` (finished). */
  readonly fromStage?: number;
  /** Stop after this many steps of the current phase in this process (tests); the run stays resumable. */
  readonly stopAfter?: number;
  /** Profile this many iterations of the first phase to train (after a warm-up one), then stop. */
  readonly profile?: number;
}

/** How long one phase took. */
export interface PhaseRecord {
  readonly phase: PaddPhase;
  readonly iterations: number;
  readonly wallSeconds: number;
  readonly msPerStep: number;
  /** Set when the phase trained data-parallel: its processes and the time per step in collectives. */
  readonly dataParallel?: TrainResult['dataParallel'];
  /** The processes that trained the phase, when flags changed on a resume (see the loop's SegmentSummary). */
  readonly segments?: readonly SegmentSummary[];
}

export interface PaddResult {
  readonly interrupted: boolean;
  /** Set when `profile` was asked for. */
  readonly profile?: EngineProfile;
  /** The stages finished in this call or found finished, in ladder order. */
  readonly stages: readonly { readonly studentSteps: number; readonly dir: string }[];
}

/** A stage's folder in the run: `<out>/stage-<student steps>`. */
export const stageDir = (outDir: string, stage: PaddStage): string =>
  join(outDir, `stage-${stage.studentSteps}`);
const finished = (dir: string): boolean => existsSync(join(dir, CONFIG_FILE));
const PHASE_FILE = 'final.safetensors';
/** A phase file's tensors: `student.<name>` and `discriminator.<encoder name>`. */
const STUDENT = 'student.';
const DISCRIMINATOR_ENCODER = 'discriminator.';

/**
 * Checks the run folder before any slow work: a fresh run needs a folder without stages; `--from-stage` needs
 * the earlier stages finished and moves later ones aside (renamed, never deleted) unless resuming.
 */
async function prepareLadder(opts: DistillPaddOptions, stages: readonly PaddStage[]): Promise<number> {
  await ensureWritableDir(opts.outDir);
  lockRunDir(opts.outDir);
  const from = opts.fromStage === undefined ? 0 : stages.findIndex((s) => s.studentSteps === opts.fromStage);
  if (from < 0) {
    throw new Error(
      `--from-stage ${opts.fromStage} is no stage of the schedule: use one of ${stages.map((s) => s.studentSteps).join(', ')}`,
    );
  }
  for (const stage of stages.slice(0, from)) {
    if (!finished(stageDir(opts.outDir, stage))) {
      throw new Error(
        `--from-stage ${opts.fromStage} needs ${stageDir(opts.outDir, stage)} finished: run the earlier stages first (or --resume)`,
      );
    }
  }
  if (opts.resume) return from;
  const later = stages.slice(from).map((s) => stageDir(opts.outDir, s));
  const present = later.filter((dir) => existsSync(dir));
  if (opts.fromStage === undefined && present.length > 0) {
    throw new Error(
      `${opts.outDir} already holds a PADD run (${present.join(', ')}): pass --resume to continue it, or choose another --out`,
    );
  }
  const stamp = new Date().toISOString().replaceAll(':', '-');
  for (const dir of present) {
    await rename(dir, `${dir}.replaced-${stamp}`);
    process.stderr.write(`--from-stage: moved ${dir} aside to ${dir}.replaced-${stamp}\n`);
  }
  return from;
}

/**
 * The weights a finished phase left: the student's (EMA when on) and the discriminator's encoder. Under a launch,
 * rank 0 reads the file and the others receive its tensors.
 */
async function loadPhase(
  file: string,
  group: Collectives | undefined,
): Promise<{ student: Params; encoder: Params; record: PhaseRecord }> {
  const lead = group === undefined || group.rank === 0;
  const read = lead ? await loadTensors(file) : undefined;
  const tensors = group === undefined ? read!.tensors : tensorsFromRankZero(group, read?.tensors);
  const record =
    group === undefined ? read!.metadata.record : valueFromRankZero(group, read?.metadata.record);
  return {
    student: paramsUnder(tensors, STUDENT),
    encoder: paramsUnder(tensors, DISCRIMINATOR_ENCODER),
    record: JSON.parse(record ?? '{}'),
  };
}

/** Whether a file or folder exists on rank 0 (the run folder's disk), agreed by every rank. */
function onRankZero(group: Collectives | undefined, path: string): boolean {
  if (group === undefined) return existsSync(path);
  return valueFromRankZero(group, group.rank === 0 ? existsSync(path) : undefined);
}

/** Trains one stage, phase by phase (finished phases are read back), and writes its student folder. */
async function runStage(
  opts: DistillPaddOptions,
  config: PaddConfig,
  stage: PaddStage,
  stageIndex: number,
  teacher: LoadedDiffusionModel,
  latents: LatentSet & { readonly description: Record<string, unknown> },
  firstStage: boolean,
  group: Collectives | undefined,
): Promise<{ readonly complete: boolean; readonly profile?: EngineProfile }> {
  const dir = stageDir(opts.outDir, stage);
  const lead = group === undefined || group.rank === 0;
  const t = teacher.config;
  // A student teaches only at the step count it was made for (a PADD stage, or the head of an ablation ladder).
  if (t.kind === 'student' && !t.sampling.steps.includes(stage.teacherSteps)) {
    throw new Error(
      `${teacher.dir} is a ${t.sampling.steps.join('/')}-step student, but the schedule uses it at ${stage.teacherSteps} steps`,
    );
  }
  const prediction = stage.studentSteps === 1 && config.oneStepPrediction === 'x0' ? 'x0' : t.prediction;
  const cfg = firstStage ? (config.teacherCfg ?? t.sampling.cfg) : t.sampling.cfg;
  const denoisers = methodDenoisers(teacher, { cfg, studentPrediction: prediction });
  const setup: PaddStageSetup = {
    config,
    stage,
    formulation: makeFormulation(t.formulation),
    unet: t.unet,
    teacher: denoisers.teacher,
    student: denoisers.student,
    data: latentBatches(latents, { batchSize: config.batchSize, seed: opts.seed + stageIndex }),
  };

  const owned: Params[] = [];
  let student = teacher.params;
  let encoder: Params = teacher.params;
  const records: PhaseRecord[] = [];
  try {
    for (const [phaseIndex, { phase, iterations }] of stagePhases(
      stage,
      config,
      prediction !== t.prediction,
    ).entries()) {
      const phaseDir = join(dir, phase);
      const file = join(phaseDir, PHASE_FILE);
      if (onRankZero(group, file)) {
        const done = await loadPhase(file, group);
        owned.push(done.student, done.encoder);
        student = done.student;
        if (Object.keys(done.encoder).length > 0) encoder = done.encoder;
        records.push(done.record);
        continue;
      }
      const rng = new Rng(opts.seed * 1000 + stageIndex * 10 + phaseIndex);
      const players: Record<string, Player> = {
        generator: paddStudent(config, student, phase === 'mse' ? config.mseLr : config.generatorLr),
      };
      if (phase !== 'mse') {
        const head = paddHeadConfig(t.unet, config, phase === 'conditional');
        players.discriminator = paddDiscriminator(config, initPaddDiscriminator(encoder, head, rng));
      }
      try {
        const step =
          phase === 'mse'
            ? paddMseStep(setup)
            : paddAdversarialStep(
                setup,
                paddHeadConfig(t.unet, config, phase === 'conditional'),
                phase === 'conditional',
                players,
              );
        const result = await train(players, step, {
          outDir: phaseDir,
          totalSteps: iterations,
          seed: opts.seed * 1000 + stageIndex * 10 + phaseIndex,
          checkpointEvery: opts.checkpointEvery,
          logEvery: opts.logEvery ?? 10,
          resume: opts.resume,
          dataParallel: true,
          label: `padd ${stage.teacherSteps}->${stage.studentSteps} ${phase}`,
          settings: { ...config, trainingSet: latents.description },
          ...(opts.stopAfter === undefined ? {} : { stopAfter: opts.stopAfter }),
          ...(opts.profile === undefined ? {} : { profile: opts.profile }),
        });
        if (result.interrupted)
          return { complete: false, ...(result.profile && { profile: result.profile }) };
        const record: PhaseRecord = {
          phase,
          iterations,
          wallSeconds: Math.round(result.wallSeconds),
          msPerStep: Math.round(result.msPerStep),
          ...(result.dataParallel && { dataParallel: result.dataParallel }),
          ...(result.segments !== undefined && result.segments.length > 1
            ? { segments: result.segments }
            : {}),
        };
        if (lead) {
          const gen = players.generator!;
          const weights = gen.ema?.params ?? gen.params;
          const discEncoder = players.discriminator ? discriminatorEncoder(players.discriminator.params) : {};
          await saveTensors(
            file,
            { ...prefixParams(weights, STUDENT), ...prefixParams(discEncoder, DISCRIMINATOR_ENCODER) },
            { record: JSON.stringify(record) },
          );
        }
        const done = await loadPhase(file, group); // the next phase starts from exactly what was saved
        owned.push(done.student, done.encoder);
        student = done.student;
        if (Object.keys(done.encoder).length > 0) encoder = done.encoder;
        records.push(record);
      } finally {
        disposePlayers(players);
      }
    }

    if (!lead) return { complete: true };
    const total = records.reduce(
      (a, r) => ({ iterations: a.iterations + r.iterations, seconds: a.seconds + r.wallSeconds }),
      { iterations: 0, seconds: 0 },
    );
    const card = makeCard(
      { seed: opts.seed, dataset: datasetLabel(t.dataset), batchSize: config.batchSize },
      {
        completedSteps: total.iterations,
        interrupted: false,
        wallSeconds: total.seconds,
        msPerStep: (1000 * total.seconds) / total.iterations,
      },
      {},
      {
        method: 'padd',
        stage,
        teacherCfg: denoisers.teacherCfg,
        prediction,
        phases: records,
        params: countParams(student),
        data: latents.description,
        config,
      },
    );
    const folder = studentConfig({
      teacher,
      outDir: dir,
      method: 'padd',
      steps: [stage.studentSteps],
      prediction,
      sampler: 'euler',
      methodConfig: { ...config, stage },
    });
    await saveModelFolder(dir, folder, student, card);
    process.stderr.write(`PADD ${stage.studentSteps}-step student written to ${dir}\n`);
    return { complete: true };
  } finally {
    for (const p of owned) disposeParams(p);
  }
}

/**
 * The stage teacher of a launch's other ranks: the original teacher's autoencoder with rank 0's stage model (its
 * config and weights), which the others have no disk copy of.
 */
async function stageTeacherFromRankZero(
  group: Collectives,
  loaded: LoadedDiffusionModel | undefined,
  teacherDir: string,
): Promise<LoadedDiffusionModel> {
  const lead = group.rank === 0;
  const original = lead ? undefined : await loadDiffusionModel(teacherDir);
  const dir = valueFromRankZero(group, loaded?.dir);
  const config = valueFromRankZero(group, loaded?.config);
  const params = tensorsFromRankZero(group, loaded?.params);
  if (lead) return loaded!;
  disposeParams(original!.params);
  return { dir, config, params, autoencoder: original!.autoencoder };
}

/** Runs the PADD ladder (or its rest, with `fromStage` / `resume`). */
export async function distillPadd(opts: DistillPaddOptions): Promise<PaddResult> {
  const config = resolvePaddConfig(opts.config);
  const stages = parsePaddSchedule(config.schedule);
  const group = processGroupFromEnv();
  const lead = group === undefined || group.rank === 0;
  if (group !== undefined && opts.profile !== undefined) {
    throw new Error('--profile times one process: run it without `ladder launch`');
  }
  const prepared = lead ? await prepareLadder(opts, stages) : undefined;
  const from = group === undefined ? prepared! : valueFromRankZero(group, prepared);
  const stageTeacher = async (dir: string): Promise<LoadedDiffusionModel> =>
    group === undefined
      ? loadDiffusionModel(dir)
      : stageTeacherFromRankZero(group, lead ? await loadDiffusionModel(dir) : undefined, opts.teacherDir);
  let teacher =
    from === 0
      ? await loadDiffusionModel(opts.teacherDir)
      : await stageTeacher(stageDir(opts.outDir, stages[from - 1]!));
  const done: { studentSteps: number; dir: string }[] = stages
    .slice(0, from)
    .map((s) => ({ studentSteps: s.studentSteps, dir: stageDir(opts.outDir, s) }));
  try {
    // The latents come from the original teacher (its autoencoder and synthetic set) for every stage.
    const original = from === 0 ? teacher : await loadDiffusionModel(opts.teacherDir);
    const latents = await trainingLatents(opts, config.data, original);
    if (original !== teacher) {
      disposeParams(original.params);
      disposeParams(original.autoencoder.params);
    }
    for (const [index, stage] of stages.entries()) {
      if (index < from) continue;
      const dir = stageDir(opts.outDir, stage);
      if (!onRankZero(group, join(dir, CONFIG_FILE))) {
        const { complete, profile } = await runStage(
          opts,
          config,
          stage,
          index,
          teacher,
          latents,
          index === 0,
          group,
        );
        if (!complete) return { interrupted: true, stages: done, ...(profile && { profile }) };
      }
      done.push({ studentSteps: stage.studentSteps, dir });
      const next = await stageTeacher(dir);
      disposeParams(teacher.params);
      disposeParams(teacher.autoencoder.params);
      teacher = next;
    }
    return { interrupted: false, stages: done };
  } finally {
    disposeParams(teacher.params);
    disposeParams(teacher.autoencoder.params);
  }
}
