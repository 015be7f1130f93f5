import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parsePaddSchedule } from '../distill/padd-config.js';
import { demoOptions } from './demo.js';
import { fromScratchPlan, type PipelineStep, runPipeline, stepArgs } from './from-scratch.js';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));
const R = 'root';

/** Touches `<dir>/config.json`, as a finished model folder has. */
async function finish(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), '{}');
}

describe('ladder demo --from-scratch: the plan', () => {
  it('runs the pipeline in order with each command and its defaults', () => {
    const plan = fromScratchPlan({ dataset: 'mnist', root: R, quick: false });
    assert.deepEqual(
      plan.map((s) => s.args.join(' ')),
      [
        'train-ae --data mnist --out root/mnist/autoencoder',
        'train-features --data mnist --out root/mnist/features',
        'train-teacher --ae root/mnist/autoencoder --out root/mnist/teacher',
        'train-features --data fashion-mnist --channels 48,96 --feature-dim 128 --out root/fashion-mnist/features',
        'synth --teacher root/mnist/teacher --out root/mnist/synthetic.safetensors',
        'distill --method ladd --teacher root/mnist/teacher --synthetic root/mnist/synthetic.safetensors --out root/mnist/ladd',
        'distill --method padd --teacher root/mnist/teacher --synthetic root/mnist/synthetic.safetensors --out root/mnist/padd',
        'distill --method add --teacher root/mnist/teacher --feature-net root/fashion-mnist/features --out root/mnist/add',
        'distill --method ladd-dmd --teacher root/mnist/teacher --out root/mnist/ladd-dmd',
        'train-features --data mnist --channels 32,64,128 --kernel 3 --feature-dim 128 --seed 7 --out root/mnist/features-report',
      ],
    );
  });

  it("takes ADD's feature net from the partner dataset: MNIST for Fashion-MNIST, Noto for Twemoji", () => {
    const plan = fromScratchPlan({ dataset: 'fashion-mnist', root: R, quick: false });
    assert.equal(
      plan[3]?.args.join(' '),
      'train-features --data mnist --channels 48,96 --feature-dim 128 --out root/mnist/features',
    );
    assert.ok(plan[7]?.args.join(' ').includes('--feature-net root/mnist/features'));
    const emoji = fromScratchPlan({ dataset: 'emoji', root: R, quick: false });
    assert.ok(
      emoji[3]?.args.join(' ').startsWith('train-features --data emoji-noto'),
      emoji[3]?.args.join(' '),
    );
    assert.ok(emoji[7]?.args.join(' ').includes('--feature-net root/emoji-noto/features'));
  });

  it('sizes the emoji networks as the shipped emoji cards do; quick runs keep the small defaults', () => {
    const cardCommand = (model: string): string =>
      JSON.parse(readFileSync(new URL(`../../models/emoji/${model}/card.json`, import.meta.url), 'utf8'))
        .command;
    // The flags after --out in a card's command are the recipe's (its --out was the run folder).
    const recipeOf = (command: string): string => command.replace(/.* --out \S+ ?/, '');
    const plan = fromScratchPlan({ dataset: 'emoji', root: R, quick: false });
    const args = (name: string): string => plan.find((s) => s.name === name)?.args.join(' ') ?? '';
    for (const [step, model] of [
      ['autoencoder', 'autoencoder'],
      ['teacher', 'teacher'],
      ['features', 'features'],
      ['report-features', 'features-report'],
    ] as const) {
      const flags = recipeOf(cardCommand(model)).replace(/ --seed 0$/, '');
      assert.ok(args(step).includes(flags), `${step}: ${args(step)} lacks ${flags}`);
    }
    // The shipped PADD stage-1 was made on this ladder, in the teacher's parameterisation.
    assert.match(
      cardCommand('padd/stage-1'),
      /--schedule 32:mse,8:mse,4:mse,2,1 .*--one-step-prediction teacher/,
    );
    assert.ok(
      args('padd').includes('--schedule 32:mse,8:mse,4:mse,2,1 --one-step-prediction teacher'),
      args('padd'),
    );
    const quick = fromScratchPlan({ dataset: 'emoji', root: R, quick: true });
    assert.ok(!quick[0]?.args.includes('32,64,64'), quick[0]?.args.join(' '));
  });

  it('plans a folder of images without ADD, with its decoding flags at every step that reads the data', () => {
    const dataset = {
      folder: '/data/icons',
      size: [32, 48] as const,
      fit: 'contain' as const,
      background: [0, 0, 0] as const,
    };
    const plan = fromScratchPlan({ dataset, root: R, quick: false });
    const names = plan.map((s) => s.name);
    assert.ok(!names.includes('add') && !names.includes('add-features'), names.join(', '));
    assert.ok(names.includes('ladd') && names.includes('ladd-dmd') && names.includes('padd'));
    const flags = '--data /data/icons --size 48x32 --fit contain --background #000000';
    assert.equal(plan[0]?.args.join(' '), `train-ae ${flags} --out root/icons/autoencoder`);
    assert.ok(
      plan
        .find((s) => s.name === 'report-features')
        ?.args.join(' ')
        .startsWith(`train-features ${flags}`),
    );
  });

  it('--quick shrinks every step with flags of its own verb', () => {
    const plan = fromScratchPlan({ dataset: 'mnist', root: R, quick: true });
    const step = (name: string) => plan.find((s) => s.name === name)?.args.join(' ') ?? '';
    assert.match(step('teacher'), /--iterations 2 --batch 8 --limit 64/);
    assert.match(step('features'), /--test-limit 64/);
    assert.match(step('report-features'), /--seed 7 --iterations 2 --batch 8 --limit 64 --test-limit 64/);
    assert.match(step('synthetic'), /--n 20 --steps 2/);
    // --steps of distill is LADD's student step count, not a run length: quick runs set --iterations only.
    assert.match(step('ladd'), /--iterations 2 --batch 2/);
    assert.doesNotMatch(step('ladd'), /--steps/);
    const schedule = /--schedule (\S+)/.exec(step('padd'))?.[1] ?? '';
    assert.deepEqual(
      parsePaddSchedule(schedule).map((s) => s.studentSteps),
      [2, 1],
    );
  });
});

describe('ladder demo --from-scratch: skip and resume', () => {
  it('runs a missing output fresh, resumes an unfinished folder and skips a finished one', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ladder-scratch-'));
    const [ae, features, teacher, , synth] = fromScratchPlan({ dataset: 'mnist', root, quick: false });
    assert.ok(ae && features && teacher && synth);
    await finish(ae.output);
    await mkdir(join(features.output, 'checkpoints'), { recursive: true });
    assert.equal(stepArgs(ae), undefined);
    assert.deepEqual(stepArgs(features), [...features.args, '--resume']);
    assert.deepEqual(stepArgs(teacher), teacher.args);
    assert.deepEqual(stepArgs(synth), synth.args);
    await mkdir(join(root, 'mnist'), { recursive: true });
    await writeFile(synth.output, '');
    assert.equal(stepArgs(synth), undefined, 'an existing synthetic file is reused');
  });

  it('counts a PADD run finished only when every stage of its ladder is', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ladder-scratch-'));
    const padd = fromScratchPlan({ dataset: 'mnist', root, quick: false }).find((s) => s.name === 'padd');
    assert.ok(padd);
    for (const stage of ['stage-8', 'stage-4', 'stage-2']) await finish(join(padd.output, stage));
    assert.deepEqual(stepArgs(padd), [...padd.args, '--resume']);
    await finish(join(padd.output, 'stage-1'));
    assert.equal(stepArgs(padd), undefined);
  });
});

/** A stand-in `ladder`: logs its arguments, fails for the --out named in `fail`, else finishes its output. */
const FAKE_LADDER = `
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
const args = process.argv.slice(2);
const dir = dirname(process.argv[1]);
appendFileSync(join(dir, 'calls.log'), args.join(' ') + '\\n');
const out = args[args.indexOf('--out') + 1];
const failing = join(dir, 'fail');
if (existsSync(failing) && readFileSync(failing, 'utf8') === out) { mkdirSync(out, { recursive: true }); process.exit(3); }
if (out.endsWith('.safetensors')) { writeFileSync(out, ''); process.exit(0); }
const folders = args.includes('padd') ? ['stage-8', 'stage-4', 'stage-2', 'stage-1'].map((s) => join(out, s)) : [out];
for (const f of folders) { mkdirSync(f, { recursive: true }); writeFileSync(join(f, 'config.json'), '{}'); }
`;

async function fakeRun(): Promise<{
  dir: string;
  root: string;
  plan: PipelineStep[];
  calls: () => Promise<string[]>;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'ladder-fake-'));
  await writeFile(join(dir, 'ladder.mjs'), FAKE_LADDER);
  const root = join(dir, 'models');
  const calls = async () =>
    existsSync(join(dir, 'calls.log'))
      ? (await readFile(join(dir, 'calls.log'), 'utf8')).trim().split('\n')
      : [];
  return { dir, root, plan: fromScratchPlan({ dataset: 'mnist', root, quick: true }), calls };
}

describe('ladder demo --from-scratch: running the plan', () => {
  it('runs every step as a child command, passing --backend before the verb, then skips them all', async () => {
    const { dir, plan, calls } = await fakeRun();
    const lines: string[] = [];
    const launcher = [process.execPath, join(dir, 'ladder.mjs')];
    await runPipeline(plan, { launcher, backend: 'cpu', log: (l) => lines.push(l) });
    assert.deepEqual(
      await calls(),
      plan.map((s) => ['--backend', 'cpu', ...s.args].join(' ')),
    );
    assert.match(lines[0] ?? '', /\[1\/10\] autoencoder: ladder --backend cpu train-ae --data mnist/);
    await runPipeline(plan, { launcher, log: (l) => lines.push(l) });
    assert.equal((await calls()).length, plan.length, 'a second run starts no child');
    assert.match(lines.at(-1) ?? '', /\[10\/10\] report-features: .* is finished, skipped/);
  });

  it('stops at a failed step, naming it and the command to rerun, and resumes it on the next run', async () => {
    const { dir, plan, calls } = await fakeRun();
    const teacher = plan[2];
    assert.ok(teacher);
    await writeFile(join(dir, 'fail'), teacher.output);
    const launcher = [process.execPath, join(dir, 'ladder.mjs')];
    const quiet = { launcher, log: () => {}, rerun: '`ladder demo --from-scratch`' };
    await assert.rejects(
      runPipeline(plan, quiet),
      (err: Error) =>
        /step teacher failed \(exit code 3\).*rerun `ladder demo --from-scratch`/.test(err.message) &&
        err.message.includes(`ladder ${teacher.args.join(' ')} --resume`),
    );
    assert.equal((await calls()).length, 3, 'no step after the failed one runs');
    await writeFile(join(dir, 'fail'), '');
    await runPipeline(plan, quiet);
    const after = (await calls()).slice(3);
    assert.deepEqual(after[0], `${teacher.args.join(' ')} --resume`);
    assert.equal(after.length, plan.length - 2, 'the finished autoencoder and feature net are not run again');
  });

  it('stops when a step exits cleanly but leaves its output unfinished (stopped early)', async () => {
    const { dir, plan } = await fakeRun();
    await writeFile(join(dir, 'noop.mjs'), '');
    const run = runPipeline(plan, { launcher: [process.execPath, join(dir, 'noop.mjs')], log: () => {} });
    await assert.rejects(run, /step autoencoder ended without finishing .*autoencoder/);
  });

  it('reports a step that exits 130 or 143 (checkpointed on SIGINT or SIGTERM) as interrupted, not failed', async () => {
    const { dir, plan } = await fakeRun();
    for (const code of [130, 143]) {
      await writeFile(join(dir, 'stopped.mjs'), `process.exit(${code});`);
      const launcher = [process.execPath, join(dir, 'stopped.mjs')];
      await assert.rejects(
        runPipeline(plan, { launcher, log: () => {} }),
        /interrupted during step autoencoder \(its checkpoints are kept\)/,
        String(code),
      );
    }
  });
});

describe('ladder demo --from-scratch: flags', () => {
  it('every planned flag is one its verb accepts', async () => {
    const plan = fromScratchPlan({ dataset: 'mnist', root: R, quick: true });
    const verbs = [...new Set(plan.map((s) => s.args[0] ?? ''))];
    const run = promisify(execFile);
    const helps = await Promise.all(
      verbs.map(
        async (verb) => (await run(process.execPath, ['--import', 'tsx', main, verb, '--help'])).stdout,
      ),
    );
    const help = new Map(verbs.map((v, i) => [v, helps[i] ?? '']));
    // ADD's flags are checked once `distill` knows ADD (its command is written separately).
    const addLanded = help.get('distill')?.includes('--feature-net') ?? false;
    for (const step of plan) {
      if (step.name === 'add' && !addLanded) continue;
      const text = help.get(step.args[0] ?? '') ?? '';
      for (const flag of step.args.filter((a) => a.startsWith('--'))) {
        const listed = new RegExp(`(^|\\s)${flag}(?=[ ,=]|$)`, 'm').test(text);
        assert.ok(listed, `${step.args[0]} --help lists no ${flag} (step ${step.name})`);
      }
      if (step.resumable) assert.ok(text.includes('--resume'), `${step.args[0]} takes no --resume`);
      const method = step.args[step.args.indexOf('--method') + 1];
      if (step.args.includes('--method')) assert.ok(text.includes(`"${method}"`), `no --method ${method}`);
    }
  });

  it('resolves the demo defaults of a --from-scratch run, and refuses --quick without it', () => {
    const base = { data: 'mnist', seed: 0, fromScratch: false, quick: false } as const;
    assert.deepEqual(demoOptions(base), {
      dataset: 'mnist',
      models: 'models',
      out: 'runs/demo',
      samples: 1000,
      seed: 0,
    });
    const quick = demoOptions({ ...base, fromScratch: true, quick: true, backend: 'cpu' });
    assert.deepEqual(quick, {
      dataset: 'mnist',
      models: 'runs/from-scratch-quick',
      out: 'runs/from-scratch-quick/demo',
      samples: 20,
      seed: 0,
      fromScratch: { quick: true, backend: 'cpu' },
    });
    assert.equal(demoOptions({ ...base, fromScratch: true }).models, 'runs/from-scratch');
    assert.throws(() => demoOptions({ ...base, quick: true }), /--quick only shortens a --from-scratch run/);
  });
});
