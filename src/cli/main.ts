#!/usr/bin/env node
// The `ladder` command: each verb parses its flags, sets up the backend and makes one library call.
import { readFileSync } from 'node:fs';
import { Command, Help, InvalidArgumentError, Option } from 'commander';
import { AUTOENCODER_DEFAULTS, trainAutoencoder } from '../autoencoder/train.js';
import { isDatasetName } from '../data/dataset.js';
import { BACKEND_NAMES, initBackend } from '../engine/backend.js';
import { MAX_CFG } from '../models/pipeline.js';
import { FLOW_DEFAULTS, TEACHER_UNET_DEFAULTS, trainTeacher, VP_DEFAULTS } from '../teacher/train.js';
import { launchEnv } from '../train/data-parallel.js';
import { TrainingInterrupted } from '../train/loop.js';
import { BENCH_GROUPS, benchUnetStep } from './bench.js';
import { cardCommand, DEFAULT_CARD_STEPS } from './card.js';
import { DEMO_DEFAULTS, demoCommand, demoOptions } from './demo.js';
import { registerDistillCommands } from './distill.js';
import { registerEvalCommands } from './eval.js';
import { checkLaunchable, launchCommand, parseMaster } from './launch.js';
import {
  addDataFlags,
  addIterationsFlag,
  addTrainingFlags,
  bucketSizes,
  cfgScale,
  type DataFlags,
  datasetSpecOf,
  decay,
  int,
  list,
  probability,
  refuseFolderFlags,
  runOrProfile,
  widths,
} from './options.js';
import { registerSampleCommand } from './sample.js';
import { registerServeCommands } from './serve.js';

// The package's own manifest, two folders up from src/cli (checkout) or dist/cli (installed package).
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('ladder')
  .description('Few-step diffusion distillation (ADD, PADD, LADD, LADD-DMD) on TF.js')
  .version(version, '-V, --version', 'print the version of ladder-diffusion')
  .addOption(
    new Option(
      '--backend <name>',
      `TF.js backend (${BACKEND_NAMES.join(', ')}); default: $LADDER_BACKEND or wasm`,
    ),
  )
  .showHelpAfterError()
  // Every command's help lists --backend and marks the options it cannot run without.
  .configureHelp({
    showGlobalOptions: true,
    optionDescription: (option) => {
      const text = new Help().optionDescription(option);
      return option.mandatory ? `${text} (required)` : text;
    },
  })
  .hook('preAction', async (cmd, action) => {
    checkLaunchable(action.name(), launchEnv()?.worldSize);
    await initBackend(cmd.opts<{ backend?: string }>().backend);
  });

addDataFlags(
  program
    .command('demo')
    .description(
      'the main job: evaluate the shipped teacher and students and write runs/demo/report.html; with --from-scratch, ' +
        'first train every model (autoencoder, feature nets, teacher, synthetic latents, LADD, PADD, ADD, LADD-DMD) ' +
        'with the ladder commands and their defaults, resuming what an earlier run left (a folder of images: all ' +
        'but ADD, which needs a feature net of other images)',
    ),
)
  .option(
    '--models <dir>',
    `folder of model folders (<dir>/<dataset>/<name>) (default: "${DEMO_DEFAULTS.models}"; ` +
      `with --from-scratch "${DEMO_DEFAULTS.fromScratchModels}", where it trains them)`,
  )
  .option(
    '--out <dir>',
    `where eval JSONs, grids and the report go (default: "${DEMO_DEFAULTS.out}"; with --from-scratch <models>/demo)`,
  )
  .option(
    '--samples <n>',
    `generated images per model and step count (default: ${DEMO_DEFAULTS.samples}; ` +
      `with --quick ${DEMO_DEFAULTS.quickSamples})`,
    int('--samples', 4),
  )
  .option('--seed <n>', 'random seed (the same for every model: paired comparison)', int('--seed'), 0)
  .option(
    '--from-scratch',
    'first run the whole pipeline into --models, each step a ladder command printed before it runs; ' +
      'finished models are kept and unfinished ones resumed, so rerun the same command after a failure or Ctrl-C',
    false,
  )
  .option(
    '--quick',
    'with --from-scratch: tiny runs (2 steps or iterations, 64 images) to check the pipeline, not to judge it',
    false,
  )
  .action(async (o) => demoCommand(demoOptions({ ...o, ...program.opts<{ backend?: string }>() })));

/** `--data digit-strings`: MNIST's digits, in buckets; the folder-decoding flags do not apply. */
function digitStringsSpec(o: DataFlags): 'mnist' {
  refuseFolderFlags(o, 'digit strings are grey 28-px MNIST cells');
  return 'mnist';
}

addTrainingFlags(
  addDataFlags(
    program
      .command('train-ae')
      .description(
        'train the latent autoencoder on a dataset and write its model folder (--data digit-strings: MNIST ' +
          'digits in a row, lengths 1 to 4, one aspect-ratio bucket per batch)',
      ),
  )
    .requiredOption('--out <dir>', 'model folder to write (holds checkpoints while training)')
    .option(
      '--channels <list>',
      `widths per level, multiples of ${AUTOENCODER_DEFAULTS.groups}, e.g. 32,64,64 ` +
        `(default ${AUTOENCODER_DEFAULTS.channels.join(',')})`,
      widths('--channels', AUTOENCODER_DEFAULTS.groups),
    )
    .option(
      '--buckets <sizes>',
      'folder data: train in aspect-ratio buckets, e.g. 48x32,32x48,40x40 (width x height); each image goes to ' +
        "the size nearest its aspect ratio, each batch is one bucket's; the first is the model's own size " +
        '(instead of --size); a caption teacher on this autoencoder trains on the same buckets',
      bucketSizes,
    ),
  { iterations: 2500, batch: 64, lr: 1e-3 },
).action(async (o) => {
  if (o.buckets !== undefined) {
    if (o.size !== undefined)
      throw new InvalidArgumentError("--buckets sets the sizes (its first is the model's own): drop --size");
    if (o.data === 'digit-strings' || isDatasetName(o.data))
      throw new InvalidArgumentError(
        `--buckets is for folder datasets: ${o.data} ${o.data === 'digit-strings' ? 'brings its own buckets' : 'has one image size'}`,
      );
  }
  await runOrProfile(o.out, o.profile, (outDir) =>
    trainAutoencoder({
      // Digit strings are MNIST's digits side by side: the dataset is mnist, trained in buckets.
      ...(o.data === 'digit-strings'
        ? { dataset: digitStringsSpec(o), buckets: 'digit-strings' as const }
        : { dataset: datasetSpecOf({ ...o, ...(o.buckets && { size: o.buckets[0] }) }) }),
      ...(o.buckets === undefined ? {} : { buckets: o.buckets }),
      outDir,
      steps: o.iterations,
      batchSize: o.batch,
      lr: o.lr,
      seed: o.seed,
      resume: o.resume,
      checkpointEvery: o.checkpointEvery,
      ...(o.limit === undefined ? {} : { limit: o.limit }),
      ...(o.channels === undefined ? {} : { arch: { channels: o.channels } }),
      ...(o.profile === undefined ? {} : { profile: o.profile }),
    }),
  );
});

addTrainingFlags(
  program
    .command('train-teacher')
    .description("train a class- or prompt-conditional latent diffusion teacher on an autoencoder's latents")
    .requiredOption(
      '--ae <dir>',
      'autoencoder model folder (its dataset is used unless --data says otherwise)',
    )
    .addOption(
      new Option(
        '--data <name>',
        'train prompt-conditional on prompted images instead: digit-strings (MNIST digits in a row, prompt ' +
          '"407"; one aspect-ratio bucket per length 1 to 4), or captions (the metadata.jsonl texts of the ' +
          "autoencoder's folder dataset)",
      ).choices(['digit-strings', 'captions']),
    )
    .requiredOption('--out <dir>', 'model folder to write (holds checkpoints while training)')
    .addOption(new Option('--formulation <kind>', 'forward process').choices(['flow', 'vp']).default('flow'))
    .addOption(
      new Option('--prediction <kind>', 'VP only: what the net predicts').choices(['eps', 'v']).default('v'),
    )
    .option('--no-zero-terminal-snr', 'VP only: keep the original schedule (needs --prediction eps or v)')
    .option(
      '--label-dropout <p>',
      'share of labels replaced by the null class (for CFG), 0 to 1',
      probability('--label-dropout'),
      0.1,
    )
    .option('--ema <decay>', 'EMA decay of the shipped weights, in [0, 1) (0 = off)', decay('--ema'), 0.999)
    .option(
      '--channels <list>',
      `U-Net widths per level, multiples of ${TEACHER_UNET_DEFAULTS.groups} ` +
        `(default ${TEACHER_UNET_DEFAULTS.channels.join(',')})`,
      widths('--channels', TEACHER_UNET_DEFAULTS.groups),
    )
    .option(
      '--blocks <n>',
      `residual blocks per level (default ${TEACHER_UNET_DEFAULTS.blocksPerLevel})`,
      int('--blocks', 1),
    ),
  { iterations: 5000, batch: 128, lr: 1e-3 },
).action(async (o) => {
  const formulation =
    o.formulation === 'flow'
      ? FLOW_DEFAULTS
      : { ...VP_DEFAULTS, prediction: o.prediction, zeroTerminalSnr: o.zeroTerminalSnr as boolean };
  await runOrProfile(o.out, o.profile, (outDir) =>
    trainTeacher({
      aeDir: o.ae,
      outDir,
      formulation,
      steps: o.iterations,
      batchSize: o.batch,
      lr: o.lr,
      seed: o.seed,
      resume: o.resume,
      checkpointEvery: o.checkpointEvery,
      labelDropout: o.labelDropout,
      emaDecay: o.ema,
      ...(o.data === undefined ? {} : { prompts: o.data }),
      ...(o.limit === undefined ? {} : { limit: o.limit }),
      unet: {
        ...(o.channels === undefined ? {} : { channels: o.channels }),
        ...(o.blocks === undefined ? {} : { blocksPerLevel: o.blocks }),
      },
      ...(o.profile === undefined ? {} : { profile: o.profile }),
    }),
  );
});

registerSampleCommand(program);

program
  .command('card')
  .description(
    'measure a model folder: sample grids per step count and throughput, recorded in its card.json',
  )
  .requiredOption('--model <dir>', 'model folder (teacher or student)')
  .option(
    '--steps <list>',
    `step counts to draw grids for and time (default: ${DEFAULT_CARD_STEPS.join(',')}; none when only --eval is given)`,
    list(int('--steps', 1)),
  )
  .option('--cfg <w>', `guidance scale, 0 to ${MAX_CFG} (default: the model's own)`, cfgScale('--cfg'))
  .option('--seed <n>', 'random seed', int('--seed'), 0)
  .option(
    '--eval <files...>',
    "eval JSON files whose FIDs and accuracies go into the card's metrics (one entry per feature-net role)",
    [],
  )
  .option(
    '--set-default-cfg',
    "make --cfg the model's default guidance scale (e.g. the best of a CFG sweep)",
    false,
  )
  .action(async (o) =>
    cardCommand({
      model: o.model,
      ...(o.steps === undefined ? {} : { steps: o.steps }),
      seed: o.seed,
      eval: o.eval,
      setDefaultCfg: o.setDefaultCfg,
      ...(o.cfg === undefined ? {} : { cfg: o.cfg }),
    }),
  );

addIterationsFlag(
  program
    .command('bench')
    .description('print JSON: ms per U-Net training step on the current backend')
    .option('--batch <n>', 'batch size', int('--batch', 1), 32)
    .option('--size <n>', 'input height and width', int('--size', 1), 28)
    .option(
      '--channels <list>',
      `U-Net widths per level, multiples of ${BENCH_GROUPS}`,
      widths('--channels', BENCH_GROUPS),
      [32, 64, 128],
    ),
  5,
  'timed training iterations (after 2 warm-up ones)',
)
  .option(
    '--profile',
    'also print native calls, reads and ms inside and outside native calls per step',
    false,
  )
  .action(async (o) => {
    const result = await benchUnetStep({
      batch: o.batch,
      size: o.size,
      channels: o.channels,
      steps: o.iterations,
      profile: o.profile,
    });
    process.stdout.write(`${JSON.stringify(result)}\n`);
  });

program
  .command('launch')
  .description(
    'data-parallel training: run a ladder training command in --nproc processes (per machine) that split each ' +
      'batch and average gradients over PyTorch c10d (Gloo); torchrun-style variables, so torchrun works too',
  )
  .requiredOption('--nproc <n>', 'processes on this machine', int('--nproc', 1))
  .option('--nnodes <n>', 'machines in the run', int('--nnodes', 1), 1)
  .option('--node-rank <k>', "this machine's index, 0 to nnodes-1 (0 holds rank 0)", int('--node-rank', 0), 0)
  .option(
    '--master <addr:port>',
    'rank 0 machine and a free port (default on one machine: 127.0.0.1 and a free port)',
  )
  .argument('<command...>', 'the ladder command after --, e.g. -- train-teacher --ae A --out B --batch 128')
  .action(
    async (command: string[], o: { nproc: number; nnodes: number; nodeRank: number; master?: string }) => {
      const backend = program.opts<{ backend?: string }>().backend;
      process.exitCode = await launchCommand({
        nproc: o.nproc,
        nnodes: o.nnodes,
        nodeRank: o.nodeRank,
        command,
        ...(o.master === undefined ? {} : { master: parseMaster(o.master) }),
        ...(backend === undefined ? {} : { backend }),
      });
    },
  );

registerDistillCommands(program);
registerEvalCommands(program);
registerServeCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof TrainingInterrupted) {
    // Not a success: a chained `&& ladder distill ...` must not go on with an unfinished model.
    process.stderr.write(`ladder: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`ladder: error: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
