// `ladder demo --from-scratch`: the whole pipeline as a plan of real `ladder` commands, each run as a child process
// and skipped or resumed according to what its output folder already holds.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type DatasetName, type DatasetSpec, datasetFlags } from '../data/image-dataset.js';
import { PADD_DEFAULTS, parsePaddSchedule } from '../distill/padd-config.js';
import { stageDir } from '../distill/padd-train.js';
import { featuresDirFor } from '../eval/evaluate.js';
import { reportNetFlags } from '../eval/train-features.js';
import { CONFIG_FILE } from '../models/folder.js';

/** Where the pipeline writes its model folders unless --models says otherwise. */
export const FROM_SCRATCH_ROOT = join('runs', 'from-scratch');
/** Generated images per model and step count in the demo evaluation of a --quick run. */
export const QUICK_SAMPLES = 20;
/** Test images the demo evaluation of a --quick run compares against. */
export const QUICK_REFERENCE_LIMIT = 200;
/** PADD's ladder in --quick runs: the default's shape (an MSE rung, then adversarial ones) at small counts. */
export const QUICK_PADD_SCHEDULE = '4:mse,2,1';

/**
 * ADD's discriminator backbone: a feature net trained on another dataset with the same image size as the evaluated
 * one, so the student cannot learn to please the evaluation's net. The emoji pair are two artworks (Twemoji, Noto)
 * of the same catalogue.
 */
const ADD_FEATURES_DATASET: Record<DatasetName, DatasetName> = {
  mnist: 'fashion-mnist',
  'fashion-mnist': 'mnist',
  emoji: 'emoji-noto',
  'emoji-noto': 'emoji',
};

/** Flags of the pipeline's training steps that differ from the verbs' defaults for one dataset. */
interface DatasetRecipe {
  readonly autoencoder: readonly string[];
  readonly teacher: readonly string[];
  readonly features: readonly string[];
  readonly reportFeatures: readonly string[];
  /** PADD's ladder, and its other flags. */
  readonly paddSchedule: string;
  readonly padd: readonly string[];
}

/** The verbs' defaults are sized for 28x28 grey digits; the report net is another architecture and seed. */
const DEFAULT_RECIPE: DatasetRecipe = {
  autoencoder: [],
  teacher: [],
  features: [],
  reportFeatures: reportNetFlags(),
  paddSchedule: PADD_DEFAULTS.schedule,
  padd: [],
};

/**
 * 32x32 colour emoji: wider networks, a third encoder level (8x8 latents) and longer runs, the flags of the
 * `models/emoji` cards. Both feature nets keep 64 features: about 200 reference images per set estimate a 128-dim
 * covariance poorly. PADD: MSE rungs from 8 to 4 and from 4 to 2 steps as well (each better than the adversarial
 * one on the selection net), and the 1-step student in the teacher's parameterisation (an x0 output did not converge in its warm-up and
 * the adversarial phases made colour noise of it): the flags of the shipped stages.
 */
const EMOJI_RECIPE: DatasetRecipe = {
  autoencoder: ['--channels', '32,64,64', '--iterations', '6000'],
  teacher: ['--channels', '64,128', '--iterations', '3000'],
  features: ['--channels', '32,64,64', '--kernel', '3', '--feature-dim', '64'],
  reportFeatures: ['--channels', '32,64,128', '--kernel', '3', '--feature-dim', '64', '--seed', '7'],
  paddSchedule: '32:mse,8:mse,4:mse,2,1',
  padd: ['--one-step-prediction', 'teacher'],
};

const RECIPES: Partial<Record<DatasetName, DatasetRecipe>> = {
  emoji: EMOJI_RECIPE,
  'emoji-noto': EMOJI_RECIPE,
};

/** One command of the pipeline. */
export interface PipelineStep {
  /** Short name in progress lines and errors. */
  readonly name: string;
  /** `ladder` arguments (verb first), without `--backend` and `--resume`. */
  readonly args: readonly string[];
  /** The model folder or file the step makes. */
  readonly output: string;
  /** Whether the verb takes --resume (synth instead reuses a finished file and writes it atomically). */
  readonly resumable: boolean;
  /** Whether the output is finished, so the step can be skipped. */
  done(): boolean;
}

export interface PlanOptions {
  readonly dataset: DatasetSpec;
  /** Folder of the model folders: the pipeline writes `<root>/<dataset>/<name>`. */
  readonly root: string;
  /** Tiny runs (a few steps on a few images) for tests and smoke runs. */
  readonly quick: boolean;
}

const hasConfig = (dir: string) => (): boolean => existsSync(join(dir, CONFIG_FILE));

/** The folder under a models root that holds a dataset's models: the built-in name, or the image folder's name. */
export const datasetFolderName = (spec: DatasetSpec): string =>
  typeof spec === 'string' ? spec : basename(spec.folder);

/**
 * The pipeline's steps in order: autoencoder, selection feature net, teacher, ADD's feature net, synth, LADD, PADD,
 * ADD, then the report feature net that scores the demo's report.
 */
export function fromScratchPlan(o: PlanOptions): PipelineStep[] {
  // A folder has no partner set of the same size: ADD is left out (its note says how to run it).
  const other = typeof o.dataset === 'string' ? ADD_FEATURES_DATASET[o.dataset] : undefined;
  const name = datasetFolderName(o.dataset);
  const data = datasetFlags(o.dataset);
  const dir = (model: string) => join(o.root, name, model);
  const ae = dir('autoencoder');
  const teacher = dir('teacher');
  const synthetic = dir('synthetic.safetensors');
  // Quick runs keep the small default networks: they check the plumbing, not the recipe.
  const recipe = (!o.quick && typeof o.dataset === 'string' && RECIPES[o.dataset]) || DEFAULT_RECIPE;
  const schedule = o.quick ? QUICK_PADD_SCHEDULE : recipe.paddSchedule;
  // Small sizes per verb; only flags each verb accepts (the test checks them against its --help).
  const quick = (...flags: string[]): string[] => (o.quick ? flags : []);
  const trainQuick = quick('--iterations', '2', '--batch', '8', '--limit', '64');
  const featuresQuick = [...trainQuick, ...quick('--test-limit', '64')];
  const distillQuick = quick('--iterations', '2', '--batch', '2');
  const model = (name: string, out: string, args: string[]): PipelineStep => ({
    name,
    args: [...args, '--out', out],
    output: out,
    resumable: true,
    done: hasConfig(out),
  });
  const paddOut = dir('padd');
  return [
    model('autoencoder', ae, ['train-ae', ...data, ...recipe.autoencoder, ...trainQuick]),
    model('features', featuresDirFor(name, 'selection', o.root), [
      'train-features',
      ...data,
      ...recipe.features,
      ...featuresQuick,
    ]),
    model('teacher', teacher, ['train-teacher', '--ae', ae, ...recipe.teacher, ...trainQuick]),
    ...(other === undefined
      ? []
      : [
          model('add-features', join(o.root, other, 'features'), [
            'train-features',
            '--data',
            other,
            '--channels',
            '48,96',
            '--feature-dim',
            '128',
            ...featuresQuick,
          ]),
        ]),
    {
      name: 'synthetic',
      args: [
        'synth',
        '--teacher',
        teacher,
        '--out',
        synthetic,
        ...quick('--n', '20', '--steps', '2', '--batch', '20'),
      ],
      output: synthetic,
      resumable: false,
      done: () => existsSync(synthetic),
    },
    model('ladd', dir('ladd'), [
      'distill',
      '--method',
      'ladd',
      '--teacher',
      teacher,
      '--synthetic',
      synthetic,
      ...distillQuick,
    ]),
    {
      ...model('padd', paddOut, [
        'distill',
        '--method',
        'padd',
        '--teacher',
        teacher,
        '--synthetic',
        synthetic,
        ...(schedule === PADD_DEFAULTS.schedule ? [] : ['--schedule', schedule]),
        ...recipe.padd,
        ...distillQuick,
      ]),
      // A PADD run is finished when every stage of its ladder is.
      done: () => parsePaddSchedule(schedule).every((stage) => hasConfig(stageDir(paddOut, stage))()),
    },
    ...(other === undefined
      ? []
      : [
          model('add', dir('add'), [
            'distill',
            '--method',
            'add',
            '--teacher',
            teacher,
            '--feature-net',
            join(o.root, other, 'features'),
            ...distillQuick,
            ...quick('--limit', '64'),
          ]),
        ]),
    model('ladd-dmd', dir('ladd-dmd'), [
      'distill',
      '--method',
      'ladd-dmd',
      '--teacher',
      teacher,
      ...distillQuick,
      ...quick('--limit', '64'),
    ]),
    // Last: no step before it can have been tuned against it.
    model('report-features', featuresDirFor(name, 'report', o.root), [
      'train-features',
      ...data,
      ...recipe.reportFeatures,
      ...featuresQuick,
    ]),
  ];
}

/**
 * The arguments to run `step` with now: undefined when its output is finished, with `--resume` when an unfinished
 * output folder is there (a fresh folder, or one with checkpoints of an interrupted run).
 */
export function stepArgs(step: PipelineStep): readonly string[] | undefined {
  if (step.done()) return undefined;
  return step.resumable && existsSync(step.output) ? [...step.args, '--resume'] : step.args;
}

/** A command line as a user would type it (arguments with odd characters quoted). */
export function showCommand(args: readonly string[]): string {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

export interface RunPipelineOptions {
  /** Global `--backend` to pass to every step. */
  readonly backend?: string;
  /**
   * The program and leading arguments that run `ladder` (default: this very CLI: node, its exec flags such as
   * `--import tsx`, and its entry script).
   */
  readonly launcher?: readonly string[];
  /** How to rerun the whole pipeline, for the error messages. */
  readonly rerun?: string;
  /** Where progress lines go (default stderr). */
  readonly log?: (line: string) => void;
}

/** This process's own command: node, its flags (debugger and test-runner ones left out) and the entry script. */
export function selfLauncher(): string[] {
  const execArgs = process.execArgv.filter((a) => !a.startsWith('--inspect') && !a.startsWith('--test'));
  return [process.execPath, ...execArgs, process.argv[1] ?? ''];
}

// `ladder`'s exit codes after it checkpointed on SIGINT (130) or SIGTERM (143), the shell's 128 + signal number.
const INTERRUPTED_EXIT_CODES: ReadonlySet<number | null> = new Set([130, 143]);

interface ChildOutcome {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The parent was asked to stop (Ctrl-C or SIGTERM) while the child ran. */
  readonly interrupted: boolean;
}

/**
 * Runs one child with inherited stdio. Ctrl-C reaches the child from the terminal itself (same process group), and
 * the training loops checkpoint on their first SIGINT, so it is not forwarded (a second one would kill them
 * unsaved); a SIGTERM sent to this process alone is passed on.
 */
function runChild(command: readonly string[]): Promise<ChildOutcome> {
  const [program = process.execPath, ...args] = command;
  return new Promise((resolve, reject) => {
    let interrupted = false;
    const child = spawn(program, args, { stdio: 'inherit' });
    const onInterrupt = (): void => {
      interrupted = true;
    };
    const onTerminate = (): void => {
      interrupted = true;
      child.kill('SIGTERM');
    };
    process.on('SIGINT', onInterrupt);
    process.on('SIGTERM', onTerminate);
    const cleanUp = (): void => {
      process.off('SIGINT', onInterrupt);
      process.off('SIGTERM', onTerminate);
    };
    child.once('error', (err) => {
      cleanUp();
      reject(new Error(`could not start ${showCommand(command)}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      cleanUp();
      resolve({ code, signal, interrupted });
    });
  });
}

/**
 * Runs the steps in order, each as a child `ladder` process: finished ones are skipped, unfinished folders resumed.
 * Throws, naming the step and the command to rerun, when a step fails, is interrupted or ends unfinished.
 */
export async function runPipeline(steps: readonly PipelineStep[], o: RunPipelineOptions = {}): Promise<void> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const launcher = o.launcher ?? selfLauncher();
  const global = o.backend === undefined ? [] : ['--backend', o.backend];
  const rerun = o.rerun ?? 'the same `ladder demo --from-scratch` command';
  for (const [i, step] of steps.entries()) {
    const tag = `from-scratch [${i + 1}/${steps.length}] ${step.name}`;
    const args = stepArgs(step);
    if (args === undefined) {
      log(`${tag}: ${step.output} is finished, skipped`);
      continue;
    }
    const typed = ['ladder', ...global, ...args];
    log(`${tag}: ${showCommand(typed)}`);
    const outcome = await runChild([...launcher, ...global, ...args]);
    // Asked again now: a failed or interrupted step leaves a folder, so its rerun needs --resume.
    const again = showCommand(['ladder', ...global, ...(stepArgs(step) ?? args)]);
    if (outcome.interrupted || outcome.signal !== null || INTERRUPTED_EXIT_CODES.has(outcome.code)) {
      throw new Error(
        `interrupted during step ${step.name} (its checkpoints are kept): rerun ${rerun} to continue from there`,
      );
    }
    if (outcome.code !== 0) {
      throw new Error(
        `step ${step.name} failed (exit code ${outcome.code}): fix what it reported above, then rerun ${rerun} ` +
          `(finished steps are skipped), or this step alone: ${again}`,
      );
    }
    if (!step.done()) {
      throw new Error(
        `step ${step.name} ended without finishing ${step.output} (interrupted?): rerun ${rerun} to resume it, ` +
          `or this step alone: ${again}`,
      );
    }
  }
}
