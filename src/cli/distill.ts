// `ladder distill` and `ladder synth`: flags -> a LADD config override / synthetic settings -> one library call.
// Unset flags leave LADD_DEFAULTS (src/distill/ladd.ts) in force, so every default is written in one place.
import { type Command, Option } from 'commander';
import { LADD_DEFAULTS, type LaddConfig } from '../distill/ladd.js';
import { defaultSynthSettings, type SynthSettings, synthesize } from '../distill/synth.js';
import { distillLadd } from '../distill/train.js';
import { loadDiffusionModel } from '../models/folder.js';
import { disposeParams } from '../nn/params.js';
import { SAMPLER_KINDS } from '../samplers/sample.js';
import { int, list, num, sampler } from './options.js';

const features = (value: string): 'all' | string[] =>
  value === 'all' ? 'all' : value.split(',').map((v) => v.trim());

/** Keeps the entries whose value was given, so unset flags fall back to the library's defaults. */
function given<T extends object>(values: { [K in keyof T]?: T[K] | undefined }): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const d = LADD_DEFAULTS;

/** Adds `distill` and `synth` to the `ladder` program. */
export function registerDistillCommands(program: Command): void {
  program
    .command('distill')
    .description('distil a few-step student from a teacher folder (LADD) and write its model folder')
    .addOption(new Option('--method <name>', 'distillation method').choices(['ladd']).makeOptionMandatory())
    .requiredOption('--teacher <dir>', 'teacher model folder')
    .requiredOption('--out <dir>', 'student model folder to write (holds checkpoints and log.jsonl)')
    .option(
      '--steps <n>',
      `student steps: 4 trains {1, .75, .5, .25} (default ${d.steps})`,
      int('--steps', 1),
    )
    .option('--iterations <n>', `training iterations (default ${d.iterations})`, int('--iterations', 1))
    .option('--batch <n>', `batch size, >= 2 (default ${d.batchSize})`, int('--batch', 2))
    .option('--lr <x>', `student learning rate (default ${d.generatorLr})`, num('--lr'))
    .option('--d-lr <x>', `discriminator head learning rate (default ${d.discriminatorLr})`, num('--d-lr'))
    .option(
      '--d-updates <n>',
      `discriminator updates per student update (default ${d.discriminatorUpdates})`,
      int('--d-updates', 1),
    )
    .option(
      '--ema <decay>',
      `EMA decay of the shipped student, 0 = off (default ${d.emaDecay})`,
      num('--ema'),
    )
    .option(
      '--t-hat-mean <m>',
      `logit-normal mean of the re-noising time (default ${d.tHatMean})`,
      num('--t-hat-mean'),
    )
    .option(
      '--t-hat-std <s>',
      `logit-normal std of the re-noising time (default ${d.tHatStd})`,
      num('--t-hat-std'),
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
      'student time probabilities during warm-up, e.g. 0,0,.5,.5',
      list(num('--warmup-probs')),
    )
    .option(
      '--probs <list>',
      'student time probabilities after warm-up, e.g. .7,.1,.1,.1',
      list(num('--probs')),
    )
    .option('--r1 <w>', `approximate-R1 weight, 0 = off (default ${d.r1Weight})`, num('--r1'))
    .option('--r1-sigma <s>', `approximate-R1 perturbation std (default ${d.r1Sigma})`, num('--r1-sigma'))
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
    .option('--synth-cfg <W>', "teacher CFG scale for them (default: the teacher's)", num('--synth-cfg'))
    .option('--limit <n>', 'real data only: use the first N training images', int('--limit', 1))
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--checkpoint-every <n>', 'iterations between checkpoints', int('--checkpoint-every', 1), 100)
    .option('--log-every <n>', 'iterations between log.jsonl lines', int('--log-every', 1), 10)
    .option('--resume', 'continue the run in --out from its newest checkpoint', false)
    .action(async (o) => {
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
      });
      await distillLadd({
        teacherDir: o.teacher,
        outDir: o.out,
        config,
        seed: o.seed,
        resume: o.resume,
        checkpointEvery: o.checkpointEvery,
        logEvery: o.logEvery,
        synth: given<SynthSettings>({ count: o.synthN, steps: o.synthSteps, cfg: o.synthCfg }),
        ...(o.synthetic === undefined ? {} : { syntheticFile: o.synthetic }),
        ...(o.limit === undefined ? {} : { limit: o.limit }),
      });
    });

  program
    .command('synth')
    .description("generate and cache a teacher's synthetic latents (class-balanced, seeded) for distillation")
    .requiredOption('--teacher <dir>', 'teacher model folder')
    .requiredOption('--out <file>', 'output .safetensors file (reused when it exists with the same settings)')
    .option('--n <N>', 'latents in total, spread evenly over the classes', int('--n', 1), 10_000)
    .option('--steps <S>', "teacher sampling steps (default: the teacher's)", int('--steps', 1))
    .option('--cfg <W>', "classifier-free guidance scale (default: the teacher's)", num('--cfg'))
    .option('--sampler <kind>', `sampler: ${SAMPLER_KINDS.join(', ')} (default: the teacher's)`, sampler)
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--batch <n>', 'latents generated per batch', int('--batch', 1), 100)
    .action(async (o) => {
      const teacher = await loadDiffusionModel(o.teacher);
      try {
        const settings = defaultSynthSettings(
          teacher,
          given<SynthSettings>({ count: o.n, steps: o.steps, cfg: o.cfg, sampler: o.sampler, seed: o.seed }),
        );
        await synthesize({ teacher, teacherDir: o.teacher, outFile: o.out, settings, batchSize: o.batch });
      } finally {
        disposeParams(teacher.params);
        disposeParams(teacher.autoencoder.params);
      }
    });
}
