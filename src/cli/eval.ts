// The evaluation verbs of `ladder`: train-features (the feature net), eval (metrics JSON) and report (HTML).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { writeFileAtomic } from '../core/fs.js';
import { DIGIT_STRING_EVAL_LENGTHS, evaluateDigitStrings } from '../eval/digit-strings.js';
import { type EvalJson, FEATURE_NET_ROLES, parseEvalJson } from '../eval/eval-json.js';
import {
  BOOTSTRAP_BLOCKS,
  DEFAULT_BOOTSTRAP_REPLICATES,
  evaluateModel,
  FEATURES_FOLDERS,
} from '../eval/evaluate.js';
import { renderReport } from '../eval/report.js';
import { trainFeatureNet } from '../eval/train-features.js';
import { CONFIG_FILE, readJson } from '../models/folder.js';
import { DEFAULT_BATCH, MAX_CFG } from '../models/pipeline.js';
import { FEATURE_NET_DEFAULTS } from '../nn/feature-net.js';
import { SAMPLER_KINDS } from '../samplers/sample.js';
import {
  addDataFlags,
  addTrainingFlags,
  cfgScale,
  datasetSpecOf,
  num as finite,
  int,
  list,
  modelFolder,
  oneOf,
  runOrProfile,
  sampler,
} from './options.js';
import { latentSizeArg, refuseOverwrite } from './sample.js';

/**
 * Reads eval files and renders the HTML report to `out`. Sample grids named by relative path are read from
 * next to their eval file and embedded. An existing `out` is replaced unless `overwrite` is false (`ladder report`
 * without --force; `ladder demo` rewrites its own report).
 */
export async function reportCommand(
  files: readonly string[],
  out: string,
  title?: string,
  { overwrite = true }: { overwrite?: boolean } = {},
): Promise<void> {
  if (files.length === 0)
    throw new Error('report: pass at least one eval JSON file (written by `ladder eval`)');
  refuseOverwrite([out], overwrite, '--out');
  const evals: EvalJson[] = [];
  const grids: Record<string, Uint8Array> = {};
  for (const file of files) {
    const run = parseEvalJson(await readJson(file, 'eval file'), file);
    const results = [];
    for (const result of run.results) {
      const grid = result.grid;
      if (grid === undefined || grid.startsWith('data:') || /^[a-z][a-z0-9+.-]*:\/\//i.test(grid)) {
        results.push(result);
        continue;
      }
      // Keyed by the path from the working folder, so equal grid names of different eval files stay apart.
      const path = isAbsolute(grid) ? grid : resolve(dirname(file), grid);
      const key = relative(process.cwd(), path) || path;
      if (existsSync(path)) grids[key] = await readFile(path);
      else
        process.stderr.write(
          `warning: sample grid ${path} (named in ${file}) is missing; the report shows a gap\n`,
        );
      results.push({ ...result, grid: key });
    }
    evals.push({ ...run, results });
  }
  const html = await renderReport(evals, {
    ...(title === undefined ? {} : { title }),
    grids,
    reportDir: dirname(out),
  });
  await writeFileAtomic(out, html);
  process.stderr.write(`report of ${files.length} eval file(s) -> ${out}\n`);
}

// The prompt source a model folder's config names, if any (a missing or unreadable config is left to the eval).
async function promptSource(modelDir: string): Promise<string | undefined> {
  const path = join(modelDir, CONFIG_FILE);
  if (!existsSync(path)) return undefined;
  const config = (await readJson(path, 'model config')) as { prompts?: { source?: unknown } };
  return typeof config.prompts?.source === 'string' ? config.prompts.source : undefined;
}

/** Adds `train-features`, `eval` and `report` to the `ladder` program. */
export function registerEvalCommands(program: Command): void {
  addTrainingFlags(
    addDataFlags(
      program
        .command('train-features')
        .description(
          'train the feature net (classifier) used for FID/KID, precision/recall and class accuracy',
        ),
    )
      .requiredOption(
        '--out <dir>',
        'model folder to write, e.g. models/mnist/features (holds checkpoints while training)',
      )
      .option(
        '--shift <px>',
        'largest random shift of training images, in pixels (0: no augmentation)',
        int('--shift'),
        2,
      )
      .option('--ema <decay>', 'EMA decay of the shipped weights', finite('--ema'), 0.999)
      .option(
        '--channels <list>',
        `conv widths (default ${FEATURE_NET_DEFAULTS.channels.join(',')})`,
        list(int('--channels', 1)),
      )
      .option(
        '--kernel <n>',
        `square kernel size of every conv layer (default ${FEATURE_NET_DEFAULTS.kernel})`,
        int('--kernel', 1),
      )
      .option(
        '--feature-dim <n>',
        `width of the feature layer (default ${FEATURE_NET_DEFAULTS.featureDim})`,
        int('--feature-dim', 1),
      )
      .option(
        '--test-limit <n>',
        'use only the first N test images (accuracy, reference stats, anchors)',
        int('--test-limit', 4),
      )
      .option(
        '--cache-dir <dir>',
        'folder of the reference-statistics cache (default: .cache in the repository)',
      ),
    {
      iterations: 2000,
      batch: 128,
      lr: 1e-3,
      resumeHelp: 'continue the run in --out from its newest checkpoint (on a finished run: redo the card)',
    },
  ).action(async (o) => {
    await runOrProfile(o.out, o.profile, (outDir) =>
      trainFeatureNet({
        dataset: datasetSpecOf(o),
        outDir,
        steps: o.iterations,
        batchSize: o.batch,
        lr: o.lr,
        seed: o.seed,
        resume: o.resume,
        checkpointEvery: o.checkpointEvery,
        maxShift: o.shift,
        emaDecay: o.ema,
        ...(o.limit === undefined ? {} : { limit: o.limit }),
        ...(o.testLimit === undefined ? {} : { testLimit: o.testLimit }),
        ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
        arch: {
          ...(o.channels === undefined ? {} : { channels: o.channels }),
          ...(o.kernel === undefined ? {} : { kernel: o.kernel }),
          ...(o.featureDim === undefined ? {} : { featureDim: o.featureDim }),
        },
        ...(o.profile === undefined ? {} : { profile: o.profile }),
      }),
    );
  });

  program
    .command('eval')
    .description(
      'sample a teacher or student at several step counts and write FID, KID, precision/recall, accuracy, speed as JSON',
    )
    .requiredOption(
      '--model <dir>',
      "model folder (teacher or student), or a shipped one's name",
      modelFolder,
    )
    .option(
      '--steps <list>',
      "sampling step counts, e.g. 1,2,4,32 (default: the model's own)",
      list(int('--steps', 1)),
    )
    .option(
      '--cfg <w>',
      `classifier-free guidance scale, 0 to ${MAX_CFG} (default: the model's own)`,
      cfgScale('--cfg'),
    )
    .option(
      '--sampler <kind>',
      `${SAMPLER_KINDS.join(', ')} (default: the model's own; else few-step for students, euler for teachers)`,
      sampler,
    )
    .addOption(
      new Option(
        '--data <name>',
        'what a prompt-conditional model is scored on: digit-strings (each 28-px cell read by the MNIST feature ' +
          'net: per-digit and whole-string accuracy, cell FID, per string length; the default for such a model)',
      ).choices(['digit-strings']),
    )
    .option(
      '--lengths <list>',
      `--data digit-strings: string lengths to measure (default ${DIGIT_STRING_EVAL_LENGTHS.join(',')})`,
      list(int('--lengths', 1)),
    )
    .option(
      '--samples <n>',
      'generated images per step count (class-balanced; with --data digit-strings: strings per length)',
      int('--samples', 4),
      1000,
    )
    .option(
      '--seed <n>',
      'seed of the noise (same seed: same noise and labels for every model)',
      int('--seed'),
      0,
    )
    .option(
      '--net <role>',
      `feature net role: selection (models/<dataset>/${FEATURES_FOLDERS.selection}, for sweeps and checkpoint ` +
        `choice) or report (models/<dataset>/${FEATURES_FOLDERS.report}, another architecture and seed, for ` +
        'the numbers you report)',
      oneOf('feature net role', FEATURE_NET_ROLES),
      'selection',
    )
    .option(
      '--features <dir>',
      "feature net folder (default: the --net role's folder; the role is still recorded)",
    )
    .requiredOption('--json <file>', 'eval JSON to write; sample grids go next to it')
    .option('--force', 'overwrite an existing eval JSON and its sample grids', false)
    .option('--name <text>', 'model name in the JSON and the report (default: the --model path)')
    .option(
      '--batch <n>',
      'images generated, decoded and scored at a time (digit strings: 28-px cells): bounds memory (the timing is per image at this batch)',
      int('--batch', 1),
      DEFAULT_BATCH,
    )
    .option('--kid-subsets <n>', 'KID subsets of min(1000, samples) images', int('--kid-subsets', 1), 20)
    .option(
      '--bootstrap <n>',
      `replicates of the 95% FID and class-accuracy intervals (resampling about ${BOOTSTRAP_BLOCKS} blocks of ` +
        'consecutive samples, within each class); 0: no intervals',
      int('--bootstrap'),
      DEFAULT_BOOTSTRAP_REPLICATES,
    )
    .option(
      '--grid-per-class <n>',
      'images per class in each sample grid (0: no grids)',
      int('--grid-per-class'),
      8,
    )
    .option(
      '--latent-size <hxw>',
      "sample at this latent size (e.g. 9x9, 7x11); images are resized to the feature net's input for scoring",
      latentSizeArg('--latent-size'),
    )
    .option('--ref-limit <n>', 'use only the first N test images as the reference', int('--ref-limit', 4))
    .option(
      '--cache-dir <dir>',
      'folder of the reference-statistics cache (default: .cache in the repository)',
    )
    .action(async (o) => {
      // What both evaluations read the same way.
      const shared = {
        modelDir: o.model,
        samples: o.samples,
        seed: o.seed,
        outJson: o.json,
        batchSize: o.batch,
        kidSubsets: o.kidSubsets,
        bootstrapReplicates: o.bootstrap,
        featureNetRole: o.net,
        overwrite: o.force,
        ...(o.steps === undefined ? {} : { steps: o.steps }),
        ...(o.cfg === undefined ? {} : { cfg: o.cfg }),
        ...(o.sampler === undefined ? {} : { sampler: o.sampler }),
        ...(o.features === undefined ? {} : { featuresDir: o.features }),
        ...(o.name === undefined ? {} : { name: o.name }),
        ...(o.refLimit === undefined ? {} : { referenceLimit: o.refLimit }),
        ...(o.cacheDir === undefined ? {} : { cacheDir: o.cacheDir }),
      };
      if (o.data === 'digit-strings' || (await promptSource(o.model)) === 'digit-strings') {
        if (o.latentSize !== undefined)
          throw new Error('--latent-size: a digit string sets its own size; use --lengths');
        await evaluateDigitStrings({
          ...shared,
          gridStrings: o.gridPerClass,
          ...(o.lengths === undefined ? {} : { lengths: o.lengths }),
        });
        return;
      }
      if (o.lengths !== undefined)
        throw new Error('--lengths needs a digit-strings model (--data digit-strings)');
      await evaluateModel({
        ...shared,
        gridPerClass: o.gridPerClass,
        ...(o.latentSize === undefined ? {} : { latentSize: o.latentSize }),
      });
    });

  program
    .command('report')
    .description(
      'one self-contained HTML page (table, FID against NFE and ms per image, sample grids) from eval JSON files',
    )
    .argument('<eval-json...>', 'eval files written by `ladder eval`')
    .requiredOption('--out <file>', 'HTML file to write')
    .option('--title <text>', 'page title')
    .option('--force', 'overwrite an existing --out', false)
    .action(async (files: string[], o: { out: string; title?: string; force: boolean }) =>
      reportCommand(files, o.out, o.title, { overwrite: o.force }),
    );
}
