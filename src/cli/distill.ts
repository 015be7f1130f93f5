// `ladder distill` and `ladder synth`: flags -> a method's config override / synthetic settings -> one library
// call. Each method's config flags are one table (LADD_FLAGS, PADD_FLAGS, ADD_FLAGS); a flag several methods
// read is one row of SHARED, put in each of their tables. The tables give the options, their help (with the
// defaults read from LADD_DEFAULTS, PADD_DEFAULTS, ADD_DEFAULTS, so each default is written in one place), the
// chosen method's config override (unset flags are left out, so the library's defaults stay in force) and the
// check that a flag given belongs to that method: another method's flag is an error, not silently ignored.
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ADD_DEFAULTS, type AddConfig, resolveAddConfig } from '../distill/add-config.js';
import { type DistillAddOptions, distillAdd } from '../distill/add-train.js';
import { LADD_DEFAULTS, type LaddConfig, resolveLaddConfig } from '../distill/ladd-config.js';
import { LADD_DMD_DEFAULTS, type LaddDmdConfig, resolveLaddDmdConfig } from '../distill/ladd-dmd-config.js';
import { type DistillLaddDmdOptions, distillLaddDmd } from '../distill/ladd-dmd-train.js';
import { type DistillLaddOptions, distillLadd } from '../distill/ladd-train.js';
import { PADD_DEFAULTS, type PaddConfig, parsePaddSchedule } from '../distill/padd-config.js';
import { type DistillPaddOptions, distillPadd } from '../distill/padd-train.js';
import { defaultSynthSettings, type SynthSettings, synthesize } from '../distill/shared/synth.js';
import type { EngineProfile } from '../engine/profile.js';
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
  modelFolder,
  nonNegative,
  num,
  PROFILE_HELP,
  positive,
  runOrProfile,
  sampler,
} from './options.js';

type Parser<T> = (value: string) => T;

/** The methods, in the order of --method's choices and of the "LADD/PADD" in messages. */
const METHODS = ['ladd', 'padd', 'add', 'ladd-dmd'] as const;
type Method = (typeof METHODS)[number];

interface Configs {
  readonly ladd: LaddConfig;
  readonly padd: PaddConfig;
  readonly add: AddConfig;
  readonly 'ladd-dmd': LaddDmdConfig;
}

/** Every method's config keys at once, so a SHARED row's parser fits the key in each method's config. */
type AnyConfig = LaddConfig & PaddConfig & AddConfig & LaddDmdConfig;

/** One row of a method's table: `flag` (with its value placeholder; none for a switch) sets config `key`. */
type ConfigFlag<C> = {
  [K in keyof C & string]: {
    readonly flag: string;
    readonly key: K;
    /** Makes the value's parser; it gets the flag's name for its errors. None for a switch or `choices`. */
    readonly parse?: (flag: string) => Parser<C[K]>;
    readonly choices?: readonly (C[K] & string)[];
    /** What the flag sets; the help adds the methods that read it and their defaults. */
    readonly help: string;
    /** How a method's default reads in the help (`value` is undefined where its defaults lack the key). */
    readonly show?: (value: unknown, method: Method) => string;
  };
}[keyof C & string];

/** A row of any table, as registering and reading the flags see it. */
type FlagRow = ConfigFlag<Readonly<Record<string, unknown>>>;

const features: Parser<'all' | string[]> = (value) =>
  value === 'all' ? 'all' : value.split(',').map((v) => v.trim());

const featureLayers = (flag: string) => (value: string) => (value === 'all' ? 'all' : list(int(flag))(value));

/** A count: an integer >= 1. */
const count = (flag: string) => int(flag, 1);

/** A share of a stage's iterations: in [0, 1), so some are left to the rest of the stage. */
const fraction = (flag: string) => inRange(flag, 0, 1, { openMax: true });

/** A PADD ladder, checked when parsed so a bad one fails before any work. */
const schedule = (flag: string) => (value: string) => {
  try {
    parsePaddSchedule(value);
  } catch (err) {
    throw new InvalidArgumentError(`${flag}: ${(err as Error).message}`);
  }
  return value;
};

/** Time probabilities have no entry in the defaults: they follow --steps. */
const stepsDependent = (_: unknown, method: Method): string =>
  method === 'add' ? 'uniform' : 'set by --steps';

/** A time of the distribution-matching term: in (0, 1]. */
const matchingTime = (flag: string) => inRange(flag, 0, 1, { openMin: true });

/** Rows of the flags that several methods read. */
const SHARED = {
  steps: {
    flag: '--steps <n>',
    key: 'steps',
    parse: count,
    help: 'student steps (4 trains {1, .75, .5, .25})',
  },
  iterations: {
    flag: '--iterations <n>',
    key: 'iterations',
    parse: count,
    help: 'training iterations (PADD: per stage)',
  },
  batch: { flag: '--batch <n>', key: 'batchSize', parse: (f) => int(f, 2), help: 'batch size, >= 2' },
  lr: { flag: '--lr <x>', key: 'generatorLr', parse: positive, help: 'adversarial student learning rate' },
  dLr: { flag: '--d-lr <x>', key: 'discriminatorLr', parse: positive, help: 'discriminator learning rate' },
  dUpdates: {
    flag: '--d-updates <n>',
    key: 'discriminatorUpdates',
    parse: count,
    help: 'discriminator updates per student update',
  },
  ema: {
    flag: '--ema <decay>',
    key: 'emaDecay',
    parse: decay,
    help: 'EMA decay of the shipped student, in [0, 1) (0 = off)',
  },
  headChannels: {
    flag: '--head-channels <n>',
    key: 'headChannels',
    parse: count,
    help: 'width of each head',
  },
  headGroups: {
    flag: '--head-groups <n>',
    key: 'headGroups',
    parse: count,
    help: 'GroupNorm groups of each head',
  },
  headEmbed: {
    flag: '--head-embed <n>',
    key: 'headEmbedDim',
    parse: count,
    help: "width of the heads' t_hat / class embedding",
  },
  probs: {
    flag: '--probs <list>',
    key: 'probs',
    parse: distribution,
    help: 'student time probabilities (LADD: after warm-up), one per time, summing to 1, e.g. .7,.1,.1,.1',
    show: stepsDependent,
  },
  r1: {
    flag: '--r1 <w>',
    key: 'r1Weight',
    parse: nonNegative,
    help: 'R1 weight, 0 = off (LADD: approximate R1; ADD: exact R1 gamma)',
  },
  teacherCfg: {
    flag: '--teacher-cfg <w>',
    key: 'teacherCfg',
    parse: cfgScale,
    help: `teacher CFG scale, 0 to ${MAX_CFG} (PADD: of the first stage's teacher; ADD: of the distillation target; LADD-DMD: of the real score)`,
    // ADD's default 'teacher' and PADD's unset one both mean the teacher's own scale.
    show: (value) => (typeof value === 'number' ? String(value) : "the teacher's"),
  },
  data: { flag: '--data <kind>', key: 'data', choices: ['synthetic', 'real'], help: 'training latents' },
  adversarialWeight: {
    flag: '--adv-weight <x>',
    key: 'adversarialWeight',
    parse: nonNegative,
    help: 'weight of the adversarial loss (ADD: 0 = distillation only)',
  },
} satisfies Record<string, ConfigFlag<AnyConfig>>;

// Each table lists its rows in the order the config override had before the tables, so the resolved config
// (and the config.json written from it) keeps its key order.

/** Backward simulation's switch and its negation (LADD-DMD's default is on); both set one key. */
const BACKWARD_SIMULATION = {
  on: {
    flag: '--backward-sim',
    key: 'backwardSimulation',
    help: "train later student steps on the student's own sampler path, not forward-noised data (DMD2)",
  },
  off: {
    flag: '--no-backward-sim',
    key: 'backwardSimulation',
    help: 'train every student step on forward-noised data, as the LADD paper does',
    show: (value) => `backward simulation ${String(value)}`,
  },
} satisfies Record<string, ConfigFlag<LaddConfig>>;

const LADD_FLAGS: readonly ConfigFlag<LaddConfig>[] = [
  SHARED.steps,
  SHARED.iterations,
  SHARED.batch,
  SHARED.lr,
  SHARED.dLr,
  SHARED.dUpdates,
  SHARED.ema,
  { flag: '--t-hat-mean <m>', key: 'tHatMean', parse: num, help: 'logit-normal mean of the re-noising time' },
  {
    flag: '--t-hat-std <s>',
    key: 'tHatStd',
    parse: positive,
    help: 'logit-normal std of the re-noising time',
  },
  {
    flag: '--features <list>',
    key: 'features',
    parse: () => features,
    help: 'teacher features for the heads: all, or e.g. down.0,down.1,mid',
  },
  SHARED.headChannels,
  SHARED.headGroups,
  SHARED.headEmbed,
  {
    flag: '--warmup <n>',
    key: 'warmupIterations',
    parse: int,
    help: 'iterations on the warm-up time probabilities',
  },
  {
    flag: '--warmup-probs <list>',
    key: 'warmupProbs',
    parse: distribution,
    help: 'student time probabilities during warm-up, one per time, summing to 1, e.g. 0,0,.5,.5',
    show: stepsDependent,
  },
  SHARED.probs,
  SHARED.r1,
  { flag: '--r1-sigma <s>', key: 'r1Sigma', parse: positive, help: 'approximate-R1 perturbation std' },
  SHARED.data,
  BACKWARD_SIMULATION.on,
  BACKWARD_SIMULATION.off,
];

const LADD_DMD_FLAGS: readonly ConfigFlag<LaddDmdConfig>[] = [
  ...LADD_FLAGS,
  SHARED.adversarialWeight,
  {
    flag: '--dm-weight <x>',
    key: 'matchingWeight',
    parse: nonNegative,
    help: 'weight of the distribution-matching loss',
  },
  SHARED.teacherCfg,
  {
    flag: '--dm-t-min <t>',
    key: 'matchingTMin',
    parse: matchingTime,
    help: 'lowest time of the distribution-matching term, in (0, 1]',
  },
  {
    flag: '--dm-t-max <t>',
    key: 'matchingTMax',
    parse: matchingTime,
    help: 'highest time of the distribution-matching term, in (dm-t-min, 1]',
  },
  { flag: '--fake-lr <x>', key: 'fakeScoreLr', parse: positive, help: 'fake score learning rate' },
  {
    flag: '--fake-updates <n>',
    key: 'fakeScoreUpdates',
    parse: count,
    help: 'fake score updates per student update',
  },
];

const PADD_FLAGS: readonly ConfigFlag<PaddConfig>[] = [
  {
    flag: '--schedule <list>',
    key: 'schedule',
    parse: schedule,
    help: "ladder of step counts, :mse/:adv sets a stage's loss",
  },
  SHARED.iterations,
  {
    flag: '--relax <f>',
    key: 'relaxFraction',
    parse: fraction,
    help: 'share of an adversarial stage in the relax phase, in [0, 1)',
  },
  {
    flag: '--x0-warmup <f>',
    key: 'x0WarmupFraction',
    parse: fraction,
    help: 'share of the x0 (1-step) stage regressing the teacher first, in [0, 1)',
  },
  SHARED.batch,
  { flag: '--mse-lr <x>', key: 'mseLr', parse: positive, help: 'student learning rate of MSE phases' },
  SHARED.lr,
  SHARED.dLr,
  SHARED.dUpdates,
  SHARED.ema,
  SHARED.headChannels,
  SHARED.headGroups,
  SHARED.teacherCfg,
  {
    flag: '--one-step-prediction <kind>',
    key: 'oneStepPrediction',
    choices: ['x0', 'teacher'],
    help: "the 1-step student's output, x0 or the teacher's parameterisation",
  },
  SHARED.data,
];

const ADD_FLAGS: readonly ConfigFlag<AddConfig>[] = [
  SHARED.steps,
  SHARED.iterations,
  SHARED.batch,
  SHARED.lr,
  SHARED.dLr,
  SHARED.dUpdates,
  SHARED.ema,
  SHARED.probs,
  SHARED.adversarialWeight,
  {
    flag: '--lambda <x>',
    key: 'distillationWeight',
    parse: nonNegative,
    help: 'weight of the distillation loss',
  },
  {
    flag: '--weighting <c>',
    key: 'distillationWeighting',
    choices: ['alpha', 'sds'],
    help: 'c(t) of the distillation loss',
  },
  {
    flag: '--t-min <t>',
    key: 'tMin',
    parse: (f) => inRange(f, 0, 1, { openMin: true, openMax: true }),
    help: 'lowest teacher time of the distillation loss, in (0, 1)',
  },
  {
    flag: '--t-max <t>',
    key: 'tMax',
    parse: (f) => inRange(f, 0, 1, { openMin: true }),
    help: 'highest teacher time of the distillation loss, in (t-min, 1]',
  },
  SHARED.teacherCfg,
  {
    flag: '--feature-layers <list>',
    key: 'featureLayers',
    parse: featureLayers,
    help: 'feature-net conv blocks the heads read: all, or e.g. 0,1',
  },
  SHARED.headChannels,
  SHARED.headGroups,
  SHARED.headEmbed,
  SHARED.r1,
  {
    flag: '--x0-conditioning <when>',
    key: 'x0Conditioning',
    choices: ['always', 'signal-only'],
    help: "heads see the real x0's embedding always (the paper) or only where the student's input holds some of it",
  },
];

/** Each method's config flags, by method (the tests check them against the defaults). */
export const DISTILL_FLAGS: { readonly [M in Method]: readonly FlagRow[] } = {
  ladd: LADD_FLAGS,
  padd: PADD_FLAGS,
  add: ADD_FLAGS,
  'ladd-dmd': LADD_DMD_FLAGS,
};

/** Read when the help is made, so the help follows a changed default. */
const DEFAULTS: { readonly [M in Method]: Partial<Configs[M]> } = {
  ladd: LADD_DEFAULTS,
  padd: PADD_DEFAULTS,
  add: ADD_DEFAULTS,
  'ladd-dmd': LADD_DMD_DEFAULTS,
};

/** Flags that set no config key but only some methods read: where the latents, stages and features come from. */
const SOURCE_FLAGS: readonly (Omit<FlagRow, 'key' | 'show'> & { readonly methods: readonly Method[] })[] = [
  {
    flag: '--feature-net <dir>',
    methods: ['add'],
    help: "frozen pixel feature net folder (not trained on the teacher's dataset)",
  },
  {
    flag: '--allow-same-dataset-features',
    methods: ['add'],
    help: "accept a feature net trained on the teacher's dataset (the evaluation's kind of net: not advised)",
  },
  {
    flag: '--from-stage <n>',
    methods: ['padd'],
    parse: count,
    help: 'start at the stage of this student step count (earlier ones read from --out)',
  },
  {
    flag: '--synthetic <file>',
    methods: ['ladd', 'padd', 'ladd-dmd'],
    help: 'synthetic latents file (made there when missing; default <out>/synthetic.safetensors)',
  },
  {
    flag: '--synth-n <N>',
    methods: ['ladd', 'padd', 'ladd-dmd'],
    parse: count,
    help: 'latents to synthesise when the file is missing (default: 10000)',
  },
  {
    flag: '--synth-steps <S>',
    methods: ['ladd', 'padd', 'ladd-dmd'],
    parse: count,
    help: "teacher steps for them (default: the teacher's)",
  },
  {
    flag: '--synth-cfg <W>',
    methods: ['ladd', 'padd', 'ladd-dmd'],
    parse: cfgScale,
    help: `teacher CFG scale for them, 0 to ${MAX_CFG} (default: the teacher's)`,
  },
];

const upper = (methods: readonly Method[]): string => methods.join('/').toUpperCase();

/** A flag's help, led by the methods that read it unless all do. */
const tagged = (help: string, methods: readonly Method[]): string =>
  methods.length === METHODS.length ? help : `${upper(methods)}: ${help}`;

/**
 * `row`'s help: the methods that read it (unless all do), what it sets, and each method's default, those that
 * read the same merged: "(default: LADD/ADD 2000, PADD 600)".
 */
function configHelp(row: FlagRow, methods: readonly Method[]): string {
  const byDefault = new Map<string, Method[]>();
  for (const method of methods) {
    const value: unknown = (DEFAULTS[method] as Readonly<Record<string, unknown>>)[row.key];
    const shown = row.show ? row.show(value, method) : value === undefined ? undefined : String(value);
    if (shown !== undefined) byDefault.set(shown, [...(byDefault.get(shown) ?? []), method]);
  }
  const defaults = [...byDefault].map(([shown, readers]) =>
    readers.length === methods.length ? shown : `${upper(readers)} ${shown}`,
  );
  return `${tagged(row.help, methods)}${defaults.length === 0 ? '' : ` (default: ${defaults.join(', ')})`}`;
}

/** The option of a row; its parser names the flag in its errors. */
function flagOption(row: Omit<FlagRow, 'key'>, help: string): Option {
  const option = new Option(row.flag, help);
  if (row.parse) option.argParser(row.parse(`--${option.name()}`));
  return row.choices ? option.choices(row.choices) : option;
}

/** commander's key for a flag's value. */
const valueKey = (flag: string): string => new Option(flag).attributeName();

/** The flags `distill` reads itself (the config flags are read through the tables). */
interface DistillFlags {
  readonly method: Method;
  readonly teacher: string;
  readonly out: string;
  readonly seed: number;
  readonly resume: boolean;
  readonly checkpointEvery: number;
  readonly logEvery: number;
  readonly profile?: number;
  readonly limit?: number;
  readonly synthetic?: string;
  readonly synthN?: number;
  readonly synthSteps?: number;
  readonly synthCfg?: number;
  readonly data?: 'synthetic' | 'real';
  readonly featureNet?: string;
  readonly allowSameDatasetFeatures?: true;
  readonly fromStage?: number;
}

/** `method`'s config override: the values of its flags that were given, in its table's order. */
function configOverride<M extends Method>(
  method: M,
  values: Readonly<Record<string, unknown>>,
): Partial<Configs[M]> {
  const set = DISTILL_FLAGS[method].flatMap((row) => {
    const value = values[valueKey(row.flag)];
    return value === undefined ? [] : [[row.key, value] as const];
  });
  // Each value went through its row's parser or choices, so it has the type of its key.
  return Object.fromEntries(set) as Partial<Configs[M]>;
}

/** Keeps the entries whose value was given, so unset flags fall back to the library's defaults. */
function given<T extends object>(values: { [K in keyof T]?: T[K] | undefined }): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** One library call of `distill`: the method and its options. */
export type DistillCall =
  | { readonly method: 'ladd'; readonly options: DistillLaddOptions }
  | { readonly method: 'padd'; readonly options: DistillPaddOptions }
  | { readonly method: 'add'; readonly options: DistillAddOptions }
  | { readonly method: 'ladd-dmd'; readonly options: DistillLaddDmdOptions };

/** What a run hands back to the command: its profile, when asked for one. */
type DistillOutcome = { readonly profile?: EngineProfile } | undefined;

async function callLibrary(call: DistillCall): Promise<DistillOutcome> {
  if (call.method === 'ladd') return distillLadd(call.options);
  if (call.method === 'padd') return distillPadd(call.options);
  if (call.method === 'ladd-dmd') return distillLaddDmd(call.options);
  return distillAdd(call.options);
}

/**
 * The call writing into `outDir` instead (a profile's temporary folder), its synthetic latents still cached at
 * the default place under the asked --out.
 */
function redirected(call: DistillCall, outDir: string): DistillCall {
  if (call.method === 'add') return { method: 'add', options: { ...call.options, outDir } };
  const syntheticFile = call.options.syntheticFile ?? join(call.options.outDir, 'synthetic.safetensors');
  if (call.method === 'ladd-dmd')
    return { method: 'ladd-dmd', options: { ...call.options, outDir, syntheticFile } };
  return call.method === 'ladd'
    ? { method: 'ladd', options: { ...call.options, outDir, syntheticFile } }
    : { method: 'padd', options: { ...call.options, outDir, syntheticFile } };
}

/**
 * Refuses synthetic-set flags on a run that trains on real latents (LADD-DMD's default, or --data real), where they
 * would be ignored.
 */
function checkLatentSource(o: DistillFlags & Readonly<Record<string, unknown>>): void {
  if (o.method === 'add') return; // ADD has no --data: its own check names the flags
  const data = o.data ?? DEFAULTS[o.method].data;
  const given = (['--synthetic', '--synth-n', '--synth-steps', '--synth-cfg'] as const).filter(
    (flag) => o[valueKey(`${flag} <x>`)] !== undefined,
  );
  if (data === 'real' && given.length > 0) {
    const why =
      o.data === undefined ? `--method ${o.method} trains on real latents by default` : '--data real';
    throw new Error(
      `${given.join(', ')} set the synthetic latents, but ${why}: drop them or pass --data synthetic`,
    );
  }
}

/** Adds `distill` and `synth` to the `ladder` program; `distill` hands its call to `run` (tests capture it). */
export function registerDistillCommands(
  program: Command,
  run: (call: DistillCall) => Promise<DistillOutcome> = callLibrary,
): void {
  const command = program
    .command('distill')
    .description(
      'distil few-step students from a teacher folder (LADD, ADD, LADD-DMD: one student; PADD: a ladder of stage-N students)',
    )
    .addOption(new Option('--method <name>', 'distillation method').choices(METHODS).makeOptionMandatory())
    .requiredOption(
      '--teacher <dir>',
      "teacher model folder, or a shipped one's name (e.g. mnist/teacher)",
      modelFolder,
    )
    .requiredOption('--out <dir>', 'student model folder to write (holds checkpoints and log.jsonl)');
  // Each config row once (the shared ones first), read by the methods whose table holds it; then the rest.
  const rows = new Set<FlagRow>([
    ...Object.values(SHARED),
    ...LADD_FLAGS,
    ...PADD_FLAGS,
    ...ADD_FLAGS,
    ...LADD_DMD_FLAGS,
  ]);
  const flags = [
    ...[...rows].map((row) => {
      const methods = METHODS.filter((m) => DISTILL_FLAGS[m].includes(row));
      return { option: flagOption(row, configHelp(row, methods)), methods };
    }),
    ...SOURCE_FLAGS.map((row) => ({
      option: flagOption(row, tagged(row.help, row.methods)),
      methods: row.methods,
    })),
  ];
  for (const { option } of flags) command.addOption(option);
  command
    .option('--limit <n>', 'real data only: use the first N training images', int('--limit', 1))
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--checkpoint-every <n>', 'iterations between checkpoints', int('--checkpoint-every', 1), 100)
    .option('--log-every <n>', 'iterations between log.jsonl lines', int('--log-every', 1), 10)
    .option('--resume', 'continue the run in --out from its newest checkpoint', false)
    .option('--profile <n>', PROFILE_HELP, int('--profile', 1))
    .action(async (o: DistillFlags & Readonly<Record<string, unknown>>) => {
      for (const { option, methods } of flags) {
        // A switch and its --no- negation share one value: the flag given is the one with that value's sense.
        const value = o[option.attributeName()];
        const given = value !== undefined && (option.negate ? value === false : value !== false);
        if (given && !methods.includes(o.method)) {
          throw new Error(
            `${option.long} is a ${upper(methods)} flag; --method ${o.method} does not read it`,
          );
        }
      }
      checkLatentSource(o);
      const source = {
        teacherDir: o.teacher,
        outDir: o.out,
        synth: given<SynthSettings>({ count: o.synthN, steps: o.synthSteps, cfg: o.synthCfg }),
        ...(o.synthetic === undefined ? {} : { syntheticFile: o.synthetic }),
        ...(o.limit === undefined ? {} : { limit: o.limit }),
      };
      const runSettings = {
        seed: o.seed,
        resume: o.resume,
        checkpointEvery: o.checkpointEvery,
        logEvery: o.logEvery,
        ...(o.profile === undefined ? {} : { profile: o.profile }),
      };
      const dispatch = (call: DistillCall): Promise<void> =>
        runOrProfile(o.out, o.profile, async (outDir) =>
          run(o.profile === undefined ? call : redirected(call, outDir)),
        );
      if (o.method === 'add') {
        if (o.featureNet === undefined) {
          throw new Error(
            'ADD needs --feature-net <dir>: a features model folder trained on another dataset, e.g. models/fashion-mnist/features for an MNIST teacher',
          );
        }
        const config = configOverride('add', o);
        // Settings that must agree (--probs and --steps, --t-min < --t-max) fail before the run folder is made.
        resolveAddConfig(config);
        await dispatch({
          method: 'add',
          options: {
            teacherDir: o.teacher,
            outDir: o.out,
            featureNetDir: o.featureNet,
            ...(o.allowSameDatasetFeatures ? { allowSameDatasetFeatures: true } : {}),
            ...(o.limit === undefined ? {} : { limit: o.limit }),
            ...runSettings,
            config,
          },
        });
        return;
      }
      if (o.method === 'padd') {
        const config = configOverride('padd', o);
        const fromStage = o.fromStage === undefined ? {} : { fromStage: o.fromStage };
        await dispatch({ method: 'padd', options: { ...source, ...runSettings, config, ...fromStage } });
        return;
      }
      if (o.method === 'ladd-dmd') {
        const config = configOverride('ladd-dmd', o);
        resolveLaddDmdConfig(config); // fails before the run folder is made
        await dispatch({ method: 'ladd-dmd', options: { ...source, ...runSettings, config } });
        return;
      }
      const config = configOverride('ladd', o);
      // Settings that must agree (--probs and --steps, --head-groups and --head-channels) fail before the run
      // folder is made.
      resolveLaddConfig(config);
      await dispatch({ method: 'ladd', options: { ...source, ...runSettings, config } });
    });

  program
    .command('synth')
    .description("generate and cache a teacher's synthetic latents (class-balanced, seeded) for distillation")
    .requiredOption(
      '--teacher <dir>',
      "teacher model folder, or a shipped one's name (e.g. mnist/teacher)",
      modelFolder,
    )
    .requiredOption('--out <file>', 'output .safetensors file (reused when it exists with the same settings)')
    .option(
      '--n <N>',
      'latents in total, spread evenly over the classes (a prompt teacher: over its aspect-ratio buckets)',
      int('--n', 1),
      10_000,
    )
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
