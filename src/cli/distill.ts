// `ladder distill` and `ladder synth`: flags -> a method's config override / synthetic settings -> one library
// call. Unset flags leave the method's defaults (LADD_DEFAULTS, PADD_DEFAULTS) in force, so every default is
// written in one place; a flag that belongs to another method is an error, not silently ignored.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ADD_DEFAULTS, type AddConfig, resolveAddConfig } from '../distill/add.js';
import { distillAdd } from '../distill/add-train.js';
import { LADD_DEFAULTS, type LaddConfig, resolveLaddConfig } from '../distill/ladd-config.js';
import { distillLadd } from '../distill/ladd-train.js';
import { PADD_DEFAULTS, type PaddConfig, parsePaddSchedule } from '../distill/padd-config.js';
import { distillPadd } from '../distill/padd-train.js';
import { defaultSynthSettings, type SynthSettings, synthesize } from '../distill/shared/synth.js';
import { loadDiffusionModel } from '../models/folder.js';
import { MAX_CFG } from '../models/pipeline.js';
import { disposeParams } from '../nn/params.js';
import { SAMPLER_KINDS } from '../samplers/sample.js';
import {
  cfgScale,
  decay,
  distribution,
  inRange,
  int,
  list,
  nonNegative,
  num,
  positive,
  sampler,
} from './options.js';

const features = (value: string): 'all' | string[] =>
  value === 'all' ? 'all' : value.split(',').map((v) => v.trim());

const featureLayers = (value: string): 'all' | number[] =>
  value === 'all' ? 'all' : list(int('--feature-layers'))(value);

/** A PADD ladder, checked when parsed so a bad one fails before any work. */
const schedule = (value: string): string => {
  try {
    parsePaddSchedule(value);
  } catch (err) {
    throw new InvalidArgumentError(`--schedule: ${(err as Error).message}`);
  }
  return value;
};

/** Keeps the entries whose value was given, so unset flags fall back to the library's defaults. */
function given<T extends object>(values: { [K in keyof T]?: T[K] | undefined }): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const d = LADD_DEFAULTS;
const p = PADD_DEFAULTS;
const a = ADD_DEFAULTS;

type Method = 'ladd' | 'padd' | 'add';

/** Flags that only some methods read (by commander's option key); the rest are common to all. */
const METHOD_FLAGS: Record<string, { flag: string; methods: readonly Method[] }> = {
  steps: { flag: '--steps', methods: ['ladd', 'add'] },
  tHatMean: { flag: '--t-hat-mean', methods: ['ladd'] },
  tHatStd: { flag: '--t-hat-std', methods: ['ladd'] },
  features: { flag: '--features', methods: ['ladd'] },
  headEmbed: { flag: '--head-embed', methods: ['ladd', 'add'] },
  warmup: { flag: '--warmup', methods: ['ladd'] },
  warmupProbs: { flag: '--warmup-probs', methods: ['ladd'] },
  probs: { flag: '--probs', methods: ['ladd', 'add'] },
  r1: { flag: '--r1', methods: ['ladd', 'add'] },
  r1Sigma: { flag: '--r1-sigma', methods: ['ladd'] },
  backwardSim: { flag: '--backward-sim', methods: ['ladd'] },
  schedule: { flag: '--schedule', methods: ['padd'] },
  relax: { flag: '--relax', methods: ['padd'] },
  x0Warmup: { flag: '--x0-warmup', methods: ['padd'] },
  mseLr: { flag: '--mse-lr', methods: ['padd'] },
  teacherCfg: { flag: '--teacher-cfg', methods: ['padd', 'add'] },
  fromStage: { flag: '--from-stage', methods: ['padd'] },
  oneStepPrediction: { flag: '--one-step-prediction', methods: ['padd'] },
  data: { flag: '--data', methods: ['ladd', 'padd'] },
  synthetic: { flag: '--synthetic', methods: ['ladd', 'padd'] },
  synthN: { flag: '--synth-n', methods: ['ladd', 'padd'] },
  synthSteps: { flag: '--synth-steps', methods: ['ladd', 'padd'] },
  synthCfg: { flag: '--synth-cfg', methods: ['ladd', 'padd'] },
  featureNet: { flag: '--feature-net', methods: ['add'] },
  allowSameDatasetFeatures: { flag: '--allow-same-dataset-features', methods: ['add'] },
  featureLayers: { flag: '--feature-layers', methods: ['add'] },
  lambda: { flag: '--lambda', methods: ['add'] },
  advWeight: { flag: '--adv-weight', methods: ['add'] },
  weighting: { flag: '--weighting', methods: ['add'] },
  x0Conditioning: { flag: '--x0-conditioning', methods: ['add'] },
  tMin: { flag: '--t-min', methods: ['add'] },
  tMax: { flag: '--t-max', methods: ['add'] },
};

function checkMethodFlags(method: Method, o: Record<string, unknown>): void {
  for (const [key, { flag, methods }] of Object.entries(METHOD_FLAGS)) {
    if (o[key] !== undefined && !methods.includes(method)) {
      throw new Error(
        `${flag} is a ${methods.join('/').toUpperCase()} flag; --method ${method} does not read it`,
      );
    }
  }
}

/** Adds `distill` and `synth` to the `ladder` program. */
export function registerDistillCommands(program: Command): void {
  program
    .command('distill')
    .description(
      'distil few-step students from a teacher folder (LADD, ADD: one student; PADD: a ladder of stage-N students)',
    )
    .addOption(
      new Option('--method <name>', 'distillation method')
        .choices(['ladd', 'padd', 'add'])
        .makeOptionMandatory(),
    )
    .requiredOption('--teacher <dir>', 'teacher model folder')
    .requiredOption('--out <dir>', 'student model folder to write (holds checkpoints and log.jsonl)')
    .option(
      '--steps <n>',
      `LADD/ADD student steps: 4 trains {1, .75, .5, .25} (default ${d.steps})`,
      int('--steps', 1),
    )
    .option(
      '--schedule <list>',
      `PADD ladder of step counts, :mse/:adv sets a stage's loss (default ${p.schedule})`,
      schedule,
    )
    .option(
      '--iterations <n>',
      `training iterations (LADD default ${d.iterations}; PADD: per stage, default ${p.iterations})`,
      int('--iterations', 1),
    )
    .option(
      '--relax <f>',
      `PADD: share of an adversarial stage in the relax phase, in [0, 1) (default ${p.relaxFraction})`,
      inRange('--relax', 0, 1, { openMax: true }),
    )
    .option(
      '--x0-warmup <f>',
      `PADD: share of the x0 (1-step) stage regressing the teacher first, in [0, 1) (default ${p.x0WarmupFraction})`,
      inRange('--x0-warmup', 0, 1, { openMax: true }),
    )
    .option(
      '--mse-lr <x>',
      `PADD: student learning rate of MSE phases (default ${p.mseLr})`,
      positive('--mse-lr'),
    )
    .option(
      '--teacher-cfg <w>',
      `PADD: CFG of the first stage's teacher; ADD: of the distillation target, 0 to ${MAX_CFG} ` +
        "(default: the teacher's)",
      cfgScale('--teacher-cfg'),
    )
    .addOption(
      new Option(
        '--one-step-prediction <kind>',
        `PADD: the 1-step student's output, x0 or the teacher's parameterisation (default ${p.oneStepPrediction})`,
      ).choices(['x0', 'teacher']),
    )
    .option(
      '--from-stage <n>',
      'PADD: start at the stage of this student step count (earlier ones read from --out)',
      int('--from-stage', 1),
    )
    .option('--batch <n>', `batch size, >= 2 (default ${d.batchSize})`, int('--batch', 2))
    .option(
      '--lr <x>',
      `adversarial student learning rate (LADD ${d.generatorLr}, PADD ${p.generatorLr})`,
      positive('--lr'),
    )
    .option(
      '--d-lr <x>',
      `discriminator learning rate (LADD ${d.discriminatorLr}, PADD ${p.discriminatorLr})`,
      positive('--d-lr'),
    )
    .option(
      '--d-updates <n>',
      `discriminator updates per student update (default ${d.discriminatorUpdates})`,
      int('--d-updates', 1),
    )
    .option(
      '--ema <decay>',
      `EMA decay of the shipped student, in [0, 1) (0 = off; default ${d.emaDecay})`,
      decay('--ema'),
    )
    .option(
      '--t-hat-mean <m>',
      `logit-normal mean of the re-noising time (default ${d.tHatMean})`,
      num('--t-hat-mean'),
    )
    .option(
      '--t-hat-std <s>',
      `logit-normal std of the re-noising time (default ${d.tHatStd})`,
      positive('--t-hat-std'),
    )
    .option(
      '--features <list>',
      'teacher features for the heads: all, or e.g. down.0,down.1,mid (default all)',
      features,
    )
    .option(
      '--head-channels <n>',
      `width of each head (default ${d.headChannels})`,
      int('--head-channels', 1),
    )
    .option(
      '--head-groups <n>',
      `GroupNorm groups of each head (default ${d.headGroups})`,
      int('--head-groups', 1),
    )
    .option(
      '--head-embed <n>',
      `width of the heads' t_hat / class embedding (default ${d.headEmbedDim})`,
      int('--head-embed', 1),
    )
    .option(
      '--warmup <n>',
      `iterations on the warm-up time probabilities (default ${d.warmupIterations})`,
      int('--warmup'),
    )
    .option(
      '--warmup-probs <list>',
      'student time probabilities during warm-up, one per time, summing to 1, e.g. 0,0,.5,.5',
      distribution('--warmup-probs'),
    )
    .option(
      '--probs <list>',
      'student time probabilities after warm-up, one per time, summing to 1, e.g. .7,.1,.1,.1',
      distribution('--probs'),
    )
    .option(
      '--r1 <w>',
      `R1 weight, 0 = off: LADD approximate R1 (default ${d.r1Weight}), ADD exact R1 gamma (default ${a.r1Weight})`,
      nonNegative('--r1'),
    )
    .option(
      '--feature-net <dir>',
      "ADD: frozen pixel feature net folder (not trained on the teacher's dataset)",
    )
    .option(
      '--allow-same-dataset-features',
      "ADD: accept a feature net trained on the teacher's dataset (the evaluation's kind of net: not advised)",
    )
    .option(
      '--feature-layers <list>',
      'ADD: feature-net conv blocks the heads read: all, or e.g. 0,1 (default all)',
      featureLayers,
    )
    .option(
      '--lambda <x>',
      `ADD: weight of the distillation loss (default ${a.distillationWeight})`,
      nonNegative('--lambda'),
    )
    .option(
      '--adv-weight <x>',
      `ADD: weight of the adversarial loss, 0 = distillation only (default ${a.adversarialWeight})`,
      nonNegative('--adv-weight'),
    )
    .addOption(
      new Option(
        '--weighting <c>',
        `ADD: c(t) of the distillation loss (default ${a.distillationWeighting})`,
      ).choices(['alpha', 'sds']),
    )
    .addOption(
      new Option(
        '--x0-conditioning <when>',
        `ADD: heads see the real x0's embedding always (the paper) or only where the student's input holds some of it (default ${a.x0Conditioning})`,
      ).choices(['always', 'signal-only']),
    )
    .option(
      '--t-min <t>',
      `ADD: lowest teacher time of the distillation loss, in (0, 1) (default ${a.tMin})`,
      inRange('--t-min', 0, 1, { openMin: true, openMax: true }),
    )
    .option(
      '--t-max <t>',
      `ADD: highest teacher time of the distillation loss, in (t-min, 1] (default ${a.tMax})`,
      inRange('--t-max', 0, 1, { openMin: true }),
    )
    .option(
      '--r1-sigma <s>',
      `approximate-R1 perturbation std (default ${d.r1Sigma})`,
      positive('--r1-sigma'),
    )
    .option(
      '--backward-sim',
      "LADD: train later student steps on the student's own sampler path, not forward-noised data (DMD2)",
    )
    .addOption(
      new Option('--data <kind>', `training latents (default ${d.data})`).choices(['synthetic', 'real']),
    )
    .option(
      '--synthetic <file>',
      'synthetic latents file (made there when missing; default <out>/synthetic.safetensors)',
    )
    .option(
      '--synth-n <N>',
      'latents to synthesise when the file is missing (default 10000)',
      int('--synth-n', 1),
    )
    .option('--synth-steps <S>', "teacher steps for them (default: the teacher's)", int('--synth-steps', 1))
    .option(
      '--synth-cfg <W>',
      `teacher CFG scale for them, 0 to ${MAX_CFG} (default: the teacher's)`,
      cfgScale('--synth-cfg'),
    )
    .option('--limit <n>', 'real data only: use the first N training images', int('--limit', 1))
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--checkpoint-every <n>', 'iterations between checkpoints', int('--checkpoint-every', 1), 100)
    .option('--log-every <n>', 'iterations between log.jsonl lines', int('--log-every', 1), 10)
    .option('--resume', 'continue the run in --out from its newest checkpoint', false)
    .action(async (o) => {
      checkMethodFlags(o.method, o);
      const source = {
        teacherDir: o.teacher,
        outDir: o.out,
        synth: given<SynthSettings>({ count: o.synthN, steps: o.synthSteps, cfg: o.synthCfg }),
        ...(o.synthetic === undefined ? {} : { syntheticFile: o.synthetic }),
        ...(o.limit === undefined ? {} : { limit: o.limit }),
      };
      const run = {
        seed: o.seed,
        resume: o.resume,
        checkpointEvery: o.checkpointEvery,
        logEvery: o.logEvery,
      };
      if (o.method === 'add') {
        if (o.featureNet === undefined) {
          throw new Error(
            'ADD needs --feature-net <dir>: a features model folder trained on another dataset, e.g. models/fashion-mnist/features for an MNIST teacher',
          );
        }
        const config = given<AddConfig>({
          steps: o.steps,
          iterations: o.iterations,
          batchSize: o.batch,
          generatorLr: o.lr,
          discriminatorLr: o.dLr,
          discriminatorUpdates: o.dUpdates,
          emaDecay: o.ema,
          probs: o.probs,
          adversarialWeight: o.advWeight,
          distillationWeight: o.lambda,
          distillationWeighting: o.weighting,
          tMin: o.tMin,
          tMax: o.tMax,
          teacherCfg: o.teacherCfg,
          featureLayers: o.featureLayers,
          headChannels: o.headChannels,
          headGroups: o.headGroups,
          headEmbedDim: o.headEmbed,
          r1Weight: o.r1,
          x0Conditioning: o.x0Conditioning,
        });
        // Settings that must agree (--probs and --steps, --t-min < --t-max) fail before the run folder is made.
        resolveAddConfig(config);
        await distillAdd({
          teacherDir: o.teacher,
          outDir: o.out,
          featureNetDir: o.featureNet,
          ...(o.allowSameDatasetFeatures ? { allowSameDatasetFeatures: true } : {}),
          ...(o.limit === undefined ? {} : { limit: o.limit }),
          ...run,
          config,
        });
        return;
      }
      if (o.method === 'padd') {
        const config = given<PaddConfig>({
          schedule: o.schedule,
          iterations: o.iterations,
          relaxFraction: o.relax,
          x0WarmupFraction: o.x0Warmup,
          batchSize: o.batch,
          mseLr: o.mseLr,
          generatorLr: o.lr,
          discriminatorLr: o.dLr,
          discriminatorUpdates: o.dUpdates,
          emaDecay: o.ema,
          headChannels: o.headChannels,
          headGroups: o.headGroups,
          teacherCfg: o.teacherCfg,
          oneStepPrediction: o.oneStepPrediction,
          data: o.data,
        });
        await distillPadd({
          ...source,
          ...run,
          config,
          ...(o.fromStage === undefined ? {} : { fromStage: o.fromStage }),
        });
        return;
      }
      const config = given<LaddConfig>({
        steps: o.steps,
        iterations: o.iterations,
        batchSize: o.batch,
        generatorLr: o.lr,
        discriminatorLr: o.dLr,
        discriminatorUpdates: o.dUpdates,
        emaDecay: o.ema,
        tHatMean: o.tHatMean,
        tHatStd: o.tHatStd,
        features: o.features,
        headChannels: o.headChannels,
        headGroups: o.headGroups,
        headEmbedDim: o.headEmbed,
        warmupIterations: o.warmup,
        warmupProbs: o.warmupProbs,
        probs: o.probs,
        r1Weight: o.r1,
        r1Sigma: o.r1Sigma,
        data: o.data,
        backwardSimulation: o.backwardSim,
      });
      // Settings that must agree (--probs and --steps, --head-groups and --head-channels) fail before the run
      // folder is made.
      resolveLaddConfig(config);
      await distillLadd({ ...source, ...run, config });
    });

  program
    .command('synth')
    .description("generate and cache a teacher's synthetic latents (class-balanced, seeded) for distillation")
    .requiredOption('--teacher <dir>', 'teacher model folder')
    .requiredOption('--out <file>', 'output .safetensors file (reused when it exists with the same settings)')
    .option('--n <N>', 'latents in total, spread evenly over the classes', int('--n', 1), 10_000)
    .option('--steps <S>', "teacher sampling steps (default: the teacher's)", int('--steps', 1))
    .option(
      '--cfg <W>',
      `classifier-free guidance scale, 0 to ${MAX_CFG} (default: the teacher's)`,
      cfgScale('--cfg'),
    )
    .option('--sampler <kind>', `sampler: ${SAMPLER_KINDS.join(', ')} (default: the teacher's)`, sampler)
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--batch <n>', 'latents generated per batch', int('--batch', 1), 100)
    .option('--force', 'replace an existing --out made with other settings or by another teacher', false)
    .action(async (o) => {
      const teacher = await loadDiffusionModel(o.teacher);
      try {
        const settings = defaultSynthSettings(
          teacher,
          given<SynthSettings>({ count: o.n, steps: o.steps, cfg: o.cfg, sampler: o.sampler, seed: o.seed }),
        );
        await synthesize({
          teacher,
          teacherDir: o.teacher,
          outFile: o.out,
          settings,
          batchSize: o.batch,
          force: o.force,
        });
      } finally {
        disposeParams(teacher.params);
        disposeParams(teacher.autoencoder.params);
      }
    });
}
