// `distill` and `synth` through commander, on a tiny random teacher (the backend is set up by testBackend).
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Command } from 'commander';
import { ADD_DEFAULTS } from '../distill/add-config.js';
import { makeTinyTeacher } from '../distill/fixtures/tiny-teacher.js';
import { LADD_DEFAULTS } from '../distill/ladd-config.js';
import { LADD_DMD_DEFAULTS } from '../distill/ladd-dmd-config.js';
import { PADD_DEFAULTS } from '../distill/padd-config.js';
import { loadSynthetic, type SyntheticSet } from '../distill/shared/synth.js';
import { loadDiffusionModel } from '../models/folder.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { DISTILL_FLAGS, type DistillCall, registerDistillCommands } from './distill.js';

let root = '';
let teacher = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-cli-distill-'));
  teacher = await makeTinyTeacher(root);
});

/** Runs `ladder <args>` in-process; resolves to the error text ('' on success). */
async function ladder(...args: string[]): Promise<string> {
  return parse(args);
}

/** Parses `ladder <args>`, `distill` handing its library call to `run`; resolves to the error text. */
async function parse(args: string[], run?: (call: DistillCall) => Promise<void>): Promise<string> {
  let errors = '';
  const program = new Command('ladder')
    .exitOverride()
    .configureOutput({ writeErr: (s) => (errors += s), writeOut: () => {} });
  registerDistillCommands(
    program,
    run &&
      (async (call) => {
        await run(call);
        return undefined;
      }),
  );
  try {
    await program.parseAsync(args, { from: 'user' });
    return errors;
  } catch (err) {
    return errors || (err as Error).message;
  }
}

describe('ladder synth / distill', () => {
  it('synth caches class-balanced teacher latents; distill trains a 2-step student on them', async () => {
    const file = join(root, 'synth.safetensors');
    assert.equal(
      await ladder('synth', '--teacher', teacher, '--n', '10', '--steps', '2', '--cfg', '1.5', '--out', file),
      '',
    );
    const set = (await loadSynthetic(file)) as SyntheticSet;
    assert.deepEqual(Array.from(set.labels), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual({ steps: set.settings.steps, cfg: set.settings.cfg }, { steps: 2, cfg: 1.5 });

    const out = join(root, 'student');
    const args = [
      'distill',
      ...'--method ladd --steps 2'.split(' '),
      '--teacher',
      teacher,
      '--out',
      out,
      '--synthetic',
      file,
    ];
    const tiny = '--iterations 2 --batch 2 --head-channels 8 --head-groups 4 --head-embed 8 --warmup 1'.split(
      ' ',
    );
    assert.equal(
      await ladder(...args, ...tiny, '--probs', '.6,.4', '--features', 'down.1,mid', '--r1', '0.1'),
      '',
    );
    const student = await loadDiffusionModel(out);
    assert.deepEqual(student.config.sampling, { steps: [2, 1], cfg: 1 });
    const distill = student.config.distill as Record<string, unknown>;
    assert.deepEqual(distill.probs, [0.6, 0.4]);
    assert.deepEqual(distill.features, ['down.1', 'mid']);
    assert.equal(distill.r1Weight, 0.1);
    assert.equal(distill.iterations, 2);
    assert.equal(distill.headEmbedDim, 8);
    assert.ok(!existsSync(join(out, 'synthetic.safetensors')), 'the given synthetic file was not used');
    assert.equal(distill.generatorLr, 1e-4, 'an unset flag keeps the library default');
    disposeParams(student.params);
    disposeParams(student.autoencoder.params);
  });

  it('rejects bad flags with a message that says what to do', async () => {
    const base = ['distill', '--teacher', teacher, '--out', join(root, 'never')];
    assert.match(await ladder(...base, '--method', 'sdxl'), /--method.*Allowed choices are ladd/);
    assert.match(
      await ladder(...base, '--method', 'ladd', '--batch', '1'),
      /--batch must be an integer >= 2/,
    );
    assert.match(
      await ladder(...base, '--method', 'ladd', '--steps', '2', '--probs', '1,0,0'),
      /probs has 3 entries but the student has 2 times/,
    );
    assert.match(
      await ladder(...base, '--method', 'ladd', '--features', 'up.0'),
      /no U-Net feature named "up.0"/,
    );
    assert.match(
      await ladder('synth', '--teacher', teacher, '--out', join(root, 'x.safetensors'), '--sampler', 'ddim'),
      /unknown sampler "ddim"/,
    );
    assert.ok(!existsSync(join(root, 'never', 'config.json')));
  });
});

const METHODS = ['ladd', 'padd', 'add', 'ladd-dmd'] as const;
const DEFAULTS = {
  ladd: LADD_DEFAULTS,
  padd: PADD_DEFAULTS,
  add: ADD_DEFAULTS,
  'ladd-dmd': LADD_DMD_DEFAULTS,
};

/** `distill`'s calls of the library for `ladder distill <args>` (none are run), and the error text. */
async function distillCalls(...args: string[]): Promise<{ error: string; calls: DistillCall[] }> {
  const calls: DistillCall[] = [];
  const error = await parse(['distill', ...args], async (call) => {
    calls.push(call);
  });
  return { error, calls };
}

/** Each `distill` flag's help text, by flag name. */
function distillHelp(): Map<string, string> {
  const program = new Command('ladder');
  registerDistillCommands(program);
  const distill = program.commands.find((c) => c.name() === 'distill')!;
  return new Map(distill.options.map((o) => [o.long ?? o.flags, o.description]));
}

/** Rows whose help does not show the method's default (in its "(default: ...)" part), as "method flag: value". */
function unshownDefaults(): string[] {
  const help = distillHelp();
  return METHODS.flatMap((method) =>
    DISTILL_FLAGS[method].flatMap((row) => {
      const value: unknown = (DEFAULTS[method] as Readonly<Record<string, unknown>>)[row.key];
      if (value === undefined) return []; // a default the library computes (time probabilities, PADD's CFG)
      const text = help.get(row.flag.split(' ')[0]!) ?? '';
      const shown = Array.isArray(value) ? value.join(',') : String(value);
      return text.slice(text.indexOf('(default:')).includes(shown) ? [] : [`${method} ${row.flag}: ${shown}`];
    }),
  );
}

/**
 * Config keys that no flag sets, and why. A key listed here that gets a flag must leave the list (checked).
 */
const NO_FLAG: Readonly<Record<string, string>> = {
  // Adam betas are the papers' settings (student 0.9/0.999, discriminator 0/0.99); no flag has ever set them.
  generatorBetas: 'fixed',
  discriminatorBetas: 'fixed',
  fakeScoreBetas: 'fixed',
};

/** The command lines below, with what the library got from them before the tables (written out by hand). */
const T = ['--teacher', 'T', '--out', 'O'];
const runDefaults = { seed: 0, resume: false, checkpointEvery: 100, logEvery: 10 };
const runGiven = ['--limit', '7', '--seed', '3', '--checkpoint-every', '9', '--log-every', '2', '--resume'];
const runSet = { limit: 7, seed: 3, resume: true, checkpointEvery: 9, logEvery: 2 };
const synthGiven = ['--synthetic', 'S', '--synth-n', '20', '--synth-steps', '3', '--synth-cfg', '2'];
const synthSet = { synth: { count: 20, steps: 3, cfg: 2 }, syntheticFile: 'S' };

/** Which methods read each method-bound flag (the old METHOD_FLAGS), with a valid value; the rest read all. */
const READERS: readonly [flag: string, value: string | undefined, methods: string][] = [
  ['--steps', '2', 'ladd add ladd-dmd'],
  ['--t-hat-mean', '1', 'ladd ladd-dmd'],
  ['--t-hat-std', '1', 'ladd ladd-dmd'],
  ['--features', 'all', 'ladd ladd-dmd'],
  ['--head-embed', '8', 'ladd add ladd-dmd'],
  ['--warmup', '1', 'ladd ladd-dmd'],
  ['--warmup-probs', '.25,.25,.25,.25', 'ladd ladd-dmd'],
  ['--probs', '.25,.25,.25,.25', 'ladd add ladd-dmd'],
  ['--r1', '1', 'ladd add ladd-dmd'],
  ['--r1-sigma', '1', 'ladd ladd-dmd'],
  ['--backward-sim', undefined, 'ladd ladd-dmd'],
  ['--no-backward-sim', undefined, 'ladd ladd-dmd'],
  ['--schedule', '4,2', 'padd'],
  ['--relax', '.1', 'padd'],
  ['--x0-warmup', '.1', 'padd'],
  ['--mse-lr', '1', 'padd'],
  ['--teacher-cfg', '1', 'padd add ladd-dmd'],
  ['--from-stage', '1', 'padd'],
  ['--one-step-prediction', 'x0', 'padd'],
  ['--data', 'real', 'ladd padd ladd-dmd'],
  ['--synthetic', 'S', 'ladd padd ladd-dmd'],
  ['--synth-n', '1', 'ladd padd ladd-dmd'],
  ['--synth-steps', '1', 'ladd padd ladd-dmd'],
  ['--synth-cfg', '1', 'ladd padd ladd-dmd'],
  ['--feature-net', 'F', 'add'],
  ['--allow-same-dataset-features', undefined, 'add'],
  ['--feature-layers', '0', 'add'],
  ['--lambda', '1', 'add'],
  ['--adv-weight', '1', 'add ladd-dmd'],
  ['--weighting', 'sds', 'add'],
  ['--x0-conditioning', 'always', 'add'],
  ['--t-min', '.1', 'add'],
  ['--t-max', '.9', 'add'],
  ['--iterations', '8', 'ladd padd add ladd-dmd'],
  ['--batch', '2', 'ladd padd add ladd-dmd'],
  ['--lr', '2', 'ladd padd add ladd-dmd'],
  ['--d-lr', '2', 'ladd padd add ladd-dmd'],
  ['--d-updates', '8', 'ladd padd add ladd-dmd'],
  ['--ema', '0', 'ladd padd add ladd-dmd'],
  ['--head-channels', '8', 'ladd padd add ladd-dmd'],
  ['--head-groups', '4', 'ladd padd add ladd-dmd'],
  ['--limit', '8', 'ladd padd add ladd-dmd'],
  ['--dm-weight', '2', 'ladd-dmd'],
  ['--dm-t-min', '.1', 'ladd-dmd'],
  ['--dm-t-max', '.9', 'ladd-dmd'],
  ['--fake-lr', '1', 'ladd-dmd'],
  ['--fake-updates', '3', 'ladd-dmd'],
];

/** A bad value of each flag with a value, and the message it got before the tables. */
const REJECTED: readonly [flag: string, value: string, message: string][] = [
  ['--steps', '0', '--steps must be an integer >= 1, got "0"'],
  ['--t-hat-mean', 'x', '--t-hat-mean must be a number, got "x"'],
  ['--t-hat-std', '0', '--t-hat-std must be a positive number, got "0"'],
  ['--head-embed', '0', '--head-embed must be an integer >= 1, got "0"'],
  ['--warmup', '-1', '--warmup must be an integer >= 0, got "-1"'],
  ['--warmup-probs', '.5,.6', '--warmup-probs must sum to 1, got ".5,.6" (sums to 1.1)'],
  ['--probs', '1.5', '--probs must be a number from 0 to 1, got "1.5"'],
  ['--r1', '-1', '--r1 must be a number >= 0, got "-1"'],
  ['--r1-sigma', '0', '--r1-sigma must be a positive number, got "0"'],
  [
    '--schedule',
    '8,3',
    '--schedule: PADD schedule "8,3": 3 must be smaller than 8 and divide it (example: 32:mse,8,4,2,1)',
  ],
  ['--relax', '1', '--relax must be a number in [0, 1), got "1"'],
  ['--x0-warmup', '-1', '--x0-warmup must be a number in [0, 1), got "-1"'],
  ['--mse-lr', '0', '--mse-lr must be a positive number, got "0"'],
  ['--teacher-cfg', '101', '--teacher-cfg must be a number from 0 to 100, got "101"'],
  ['--from-stage', '0', '--from-stage must be an integer >= 1, got "0"'],
  ['--one-step-prediction', 'x', 'Allowed choices are x0, teacher.'],
  ['--data', 'x', 'Allowed choices are synthetic, real.'],
  ['--synth-n', '0', '--synth-n must be an integer >= 1, got "0"'],
  ['--synth-steps', '0', '--synth-steps must be an integer >= 1, got "0"'],
  ['--synth-cfg', '-1', '--synth-cfg must be a number from 0 to 100, got "-1"'],
  ['--feature-layers', '-1', '--feature-layers must be an integer >= 0, got "-1"'],
  ['--lambda', '-1', '--lambda must be a number >= 0, got "-1"'],
  ['--adv-weight', '-1', '--adv-weight must be a number >= 0, got "-1"'],
  ['--dm-weight', '-1', '--dm-weight must be a number >= 0, got "-1"'],
  ['--dm-t-min', '0', '--dm-t-min must be a number in (0, 1], got "0"'],
  ['--fake-lr', '0', '--fake-lr must be a positive number, got "0"'],
  ['--fake-updates', '0', '--fake-updates must be an integer >= 1, got "0"'],
  ['--weighting', 'x', 'Allowed choices are alpha, sds.'],
  ['--x0-conditioning', 'x', 'Allowed choices are always, signal-only.'],
  ['--t-min', '0', '--t-min must be a number in (0, 1), got "0"'],
  ['--t-max', '0', '--t-max must be a number in (0, 1], got "0"'],
  ['--iterations', '0', '--iterations must be an integer >= 1, got "0"'],
  ['--batch', '1', '--batch must be an integer >= 2, got "1"'],
  ['--lr', '0', '--lr must be a positive number, got "0"'],
  ['--d-lr', '0', '--d-lr must be a positive number, got "0"'],
  ['--d-updates', '0', '--d-updates must be an integer >= 1, got "0"'],
  ['--ema', '1', '--ema must be a number in [0, 1), got "1"'],
  ['--head-channels', '0', '--head-channels must be an integer >= 1, got "0"'],
  ['--head-groups', '0', '--head-groups must be an integer >= 1, got "0"'],
  ['--limit', '0', '--limit must be an integer >= 1, got "0"'],
];

describe('ladder distill: the flag tables', () => {
  it("shows each method's default in the help of every flag that sets it", () => {
    assert.deepEqual(unshownDefaults(), []);
    // ... and only there: a default typed into a row's text would not follow a change of the defaults.
    const help = distillHelp();
    const typed = METHODS.flatMap((m) => DISTILL_FLAGS[m]).filter(
      (row) => (help.get(row.flag.split(' ')[0]!) ?? '').split('default').length > 2,
    );
    assert.deepEqual(
      typed.map((row) => row.flag),
      [],
    );
  });

  it('reads those defaults from the defaults objects, so a changed default shows in the help', () => {
    // Every numeric default gets a value no help holds; the help made after must show each of them.
    const saved = METHODS.map((m) => ({ ...DEFAULTS[m] }));
    let next = 1000.5;
    try {
      for (const defaults of Object.values(DEFAULTS)) {
        for (const [key, value] of Object.entries(defaults))
          if (typeof value === 'number') Object.assign(defaults, { [key]: next++ });
      }
      assert.ok(next > 1020, 'most defaults are numbers');
      assert.deepEqual(unshownDefaults(), []);
    } finally {
      for (const [i, m] of METHODS.entries()) Object.assign(DEFAULTS[m], saved[i]);
    }
    assert.equal(LADD_DEFAULTS.iterations, 2000, 'the defaults are restored');
  });

  it('has a row for every config key a user can set, each flag written once', () => {
    for (const method of METHODS) {
      const keys = Object.keys(DEFAULTS[method]);
      const rowKeys = DISTILL_FLAGS[method].map((row) => row.key);
      assert.deepEqual(
        keys.filter((k) => !rowKeys.includes(k) && !(k in NO_FLAG)),
        [],
        `${method} keys with no flag`,
      );
      // Keys the defaults leave out (the library computes them) that still have a flag.
      const computed = {
        ladd: ['warmupProbs', 'probs'],
        padd: ['teacherCfg'],
        add: ['probs'],
        'ladd-dmd': ['warmupProbs', 'probs'],
      }[method];
      assert.deepEqual(
        rowKeys.filter((k) => !keys.includes(k)),
        computed,
        method,
      );
    }
    const rows = METHODS.flatMap((m) => DISTILL_FLAGS[m]);
    for (const key of Object.keys(NO_FLAG)) {
      assert.ok(
        rows.every((row) => row.key !== key),
        `${key} has a flag now: take it off NO_FLAG`,
      );
    }
    // A flag several methods read is one row object in each of their tables.
    for (const row of rows)
      assert.ok(
        rows.every((r) => r.flag !== row.flag || r === row),
        row.flag,
      );
  });

  it('hands the library the same options as before the tables', async () => {
    const minimal = { teacherDir: 'T', outDir: 'O', ...runDefaults, config: {} };
    assert.deepEqual(await distillCalls('--method', 'ladd', ...T), {
      error: '',
      calls: [{ method: 'ladd', options: { ...minimal, synth: {} } }],
    });
    assert.deepEqual(await distillCalls('--method', 'padd', ...T), {
      error: '',
      calls: [{ method: 'padd', options: { ...minimal, synth: {} } }],
    });
    assert.deepEqual(await distillCalls('--method', 'add', ...T, '--feature-net', 'F'), {
      error: '',
      calls: [{ method: 'add', options: { ...minimal, featureNetDir: 'F' } }],
    });

    const ladd = await distillCalls(
      ...['--method', 'ladd', ...T, ...runGiven, ...synthGiven],
      ...'--steps 2 --iterations 5 --batch 4 --lr 0.001 --d-lr 0.002 --d-updates 2 --ema 0.5'.split(' '),
      ...'--t-hat-mean -0.5 --t-hat-std 2 --features down.0,mid --head-channels 16 --head-groups 4'.split(
        ' ',
      ),
      ...'--head-embed 8 --warmup 3 --warmup-probs 0,1 --probs .25,.75 --r1 0.2 --r1-sigma 0.05'.split(' '),
      ...'--data synthetic --backward-sim'.split(' '),
    );
    assert.deepEqual(ladd, {
      error: '',
      calls: [
        {
          method: 'ladd',
          options: {
            teacherDir: 'T',
            outDir: 'O',
            ...synthSet,
            ...runSet,
            config: {
              steps: 2,
              iterations: 5,
              batchSize: 4,
              generatorLr: 0.001,
              discriminatorLr: 0.002,
              discriminatorUpdates: 2,
              emaDecay: 0.5,
              tHatMean: -0.5,
              tHatStd: 2,
              features: ['down.0', 'mid'],
              headChannels: 16,
              headGroups: 4,
              headEmbedDim: 8,
              warmupIterations: 3,
              warmupProbs: [0, 1],
              probs: [0.25, 0.75],
              r1Weight: 0.2,
              r1Sigma: 0.05,
              data: 'synthetic',
              backwardSimulation: true,
            },
          },
        },
      ],
    });

    const padd = await distillCalls(
      ...['--method', 'padd', ...T, ...runGiven, ...synthGiven],
      ...'--schedule 8:mse,4,2:adv,1 --iterations 5 --relax .25 --x0-warmup .1 --batch 4 --mse-lr .001'.split(
        ' ',
      ),
      ...'--lr .002 --d-lr .003 --d-updates 2 --ema 0 --head-channels 16 --head-groups 4'.split(' '),
      ...'--teacher-cfg 1.5 --one-step-prediction teacher --data synthetic --from-stage 2'.split(' '),
    );
    assert.deepEqual(padd, {
      error: '',
      calls: [
        {
          method: 'padd',
          options: {
            teacherDir: 'T',
            outDir: 'O',
            ...synthSet,
            ...runSet,
            config: {
              schedule: '8:mse,4,2:adv,1',
              iterations: 5,
              relaxFraction: 0.25,
              x0WarmupFraction: 0.1,
              batchSize: 4,
              mseLr: 0.001,
              generatorLr: 0.002,
              discriminatorLr: 0.003,
              discriminatorUpdates: 2,
              emaDecay: 0,
              headChannels: 16,
              headGroups: 4,
              teacherCfg: 1.5,
              oneStepPrediction: 'teacher',
              data: 'synthetic',
            },
            fromStage: 2,
          },
        },
      ],
    });

    const add = await distillCalls(
      ...['--method', 'add', ...T, ...runGiven, '--feature-net', 'F', '--allow-same-dataset-features'],
      ...'--steps 2 --iterations 5 --batch 4 --lr .001 --d-lr .002 --d-updates 3 --ema .9 --probs .3,.7'.split(
        ' ',
      ),
      ...'--adv-weight 0.5 --lambda 3 --weighting sds --t-min .1 --t-max .9 --teacher-cfg 2'.split(' '),
      ...'--feature-layers 0,1 --head-channels 16 --head-groups 4 --head-embed 8 --r1 0.5'.split(' '),
      ...'--x0-conditioning signal-only'.split(' '),
    );
    assert.deepEqual(add, {
      error: '',
      calls: [
        {
          method: 'add',
          options: {
            teacherDir: 'T',
            outDir: 'O',
            featureNetDir: 'F',
            allowSameDatasetFeatures: true,
            ...runSet,
            config: {
              steps: 2,
              iterations: 5,
              batchSize: 4,
              generatorLr: 0.001,
              discriminatorLr: 0.002,
              discriminatorUpdates: 3,
              emaDecay: 0.9,
              probs: [0.3, 0.7],
              adversarialWeight: 0.5,
              distillationWeight: 3,
              distillationWeighting: 'sds',
              tMin: 0.1,
              tMax: 0.9,
              teacherCfg: 2,
              featureLayers: [0, 1],
              headChannels: 16,
              headGroups: 4,
              headEmbedDim: 8,
              r1Weight: 0.5,
              x0Conditioning: 'signal-only',
            },
          },
        },
      ],
    });
  });

  it("hands LADD-DMD its own flags and LADD's", async () => {
    const call = await distillCalls(
      ...['--method', 'ladd-dmd', ...T, ...synthGiven, '--data', 'synthetic'],
      ...'--steps 2 --adv-weight 0.5 --dm-weight 2 --teacher-cfg 1.5 --dm-t-min .1 --dm-t-max .9'.split(' '),
      ...'--fake-lr .001 --fake-updates 3 --no-backward-sim'.split(' '),
    );
    assert.deepEqual(call, {
      error: '',
      calls: [
        {
          method: 'ladd-dmd',
          options: {
            teacherDir: 'T',
            outDir: 'O',
            ...synthSet,
            ...runDefaults,
            config: {
              steps: 2,
              data: 'synthetic',
              backwardSimulation: false,
              adversarialWeight: 0.5,
              matchingWeight: 2,
              teacherCfg: 1.5,
              matchingTMin: 0.1,
              matchingTMax: 0.9,
              fakeScoreLr: 0.001,
              fakeScoreUpdates: 3,
            },
          },
        },
      ],
    });
  });

  it('refuses the synthetic set’s flags on a run that trains on real latents', async () => {
    assert.match(
      (await distillCalls('--method', 'ladd-dmd', ...T, '--synth-n', '9')).error,
      /--synth-n set the synthetic latents, but --method ladd-dmd trains on real latents by default: drop them or pass --data synthetic/,
    );
    assert.match(
      (await distillCalls('--method', 'ladd', ...T, '--data', 'real', '--synthetic', 'S')).error,
      /--synthetic set the synthetic latents, but --data real/,
    );
  });

  it('accepts each flag for the methods that read it and names them for the others', async () => {
    const wrong: string[] = [];
    for (const [flag, value, readers] of READERS) {
      for (const method of METHODS) {
        const featureNet = method === 'add' && flag !== '--feature-net' ? ['--feature-net', 'F'] : [];
        // LADD-DMD trains on real latents unless told otherwise, and refuses the synthetic set's flags there.
        const synthetic = method === 'ladd-dmd' && /^--synth/.test(flag) ? ['--data', 'synthetic'] : [];
        const given = [flag, ...(value === undefined ? [] : [value]), ...synthetic];
        const { error, calls } = await distillCalls('--method', method, ...T, ...featureNet, ...given);
        const methods = readers.split(' ');
        const want = methods.includes(method)
          ? ''
          : `${flag} is a ${methods.join('/').toUpperCase()} flag; --method ${method} does not read it`;
        if (error !== want || calls.length !== (want === '' ? 1 : 0))
          wrong.push(`${method} ${flag}: ${error}`);
      }
    }
    assert.deepEqual(wrong, []);
    const help = distillHelp();
    // Every flag but the ones each run needs is in READERS, so a new flag gets its readers written down here.
    const everyRun = [
      '--method',
      '--teacher',
      '--out',
      '--seed',
      '--checkpoint-every',
      '--log-every',
      '--resume',
      '--profile',
    ];
    const untested = [...help.keys()].filter(
      (f) => f !== '--help' && !everyRun.includes(f) && !READERS.some(([r]) => r === f),
    );
    assert.deepEqual(untested, []);
  });

  it('rejects a bad value of each flag with the message it gave before the tables', async () => {
    const wrong: string[] = [];
    for (const [flag, value, message] of REJECTED) {
      const { error } = await distillCalls('--method', 'ladd', ...T, flag, value);
      if (!error.includes(`argument '${value}' is invalid. ${message}\n`))
        wrong.push(`${flag} ${value}: ${error}`);
    }
    assert.deepEqual(wrong, []);
  });
});
