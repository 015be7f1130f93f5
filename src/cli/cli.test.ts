// Bad inputs through the real command line: each must exit non-zero with a message a user can act on.
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../core/rng.js';
import { saveModelFolder, WEIGHTS_FILE } from '../models/folder.js';
import { initUNet } from '../nn/unet.js';
import { testBackend } from '../test-utils/backend.js';
import { tinyTeacherConfig, writeTinyTeacher } from '../test-utils/tiny-models.js';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));
const ladder = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    encoding: 'utf8',
    env: { ...process.env },
  });

/** `ladder <args>` without blocking, so several can run at once. */
const ladderAsync = (...args: string[]): Promise<{ status: number | null; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject).on('close', (status) => resolve({ status, stderr }));
  });

/** Runs `jobs` two at a time (each starts a node process that loads the whole library). */
async function twoAtATime<T>(jobs: readonly (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]!();
    }
  };
  await Promise.all([worker(), worker()]);
  return results;
}

const teacherConfig = tinyTeacherConfig();

/** Verbs whose flags main.ts, sample.ts and distill.ts define: the card test re-parses their recorded runs. */
const OWN_VERBS = ['train-ae', 'train-teacher', 'sample', 'card', 'bench', 'distill', 'synth'];

let root = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-cli-'));
  await writeTinyTeacher(root);
});

describe('ladder CLI', () => {
  it("prints the package's version", async () => {
    const r = ladder('--version');
    assert.equal(r.status, 0, r.stderr);
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it('reads the old --steps of training commands as --iterations, with a note, and refuses both', () => {
    const old = ladder('bench', '--steps', '1', '--batch', '2', '--size', '8', '--channels', '8,8');
    assert.equal(old.status, 0, old.stderr);
    assert.match(old.stderr, /note: --steps of ladder bench is now --iterations/);
    assert.equal((JSON.parse(old.stdout) as { steps: number }).steps, 1);
    const both = ladder('train-ae', '--steps', '1', '--iterations', '2', '--out', join(root, 'both'));
    assert.equal(both.status, 1);
    assert.match(both.stderr, /--steps is the old name of --iterations: give only --iterations/);
    assert.ok(!existsSync(join(root, 'both')));
  });

  it("marks required options, lists --backend and the datasets in each command's help", () => {
    const sample = ladder('sample', '--help').stdout;
    assert.match(sample, /--model <dir>[\s\S]*?\(required\)/);
    assert.match(sample, /--out <file>[\s\S]*?\(required\)/);
    assert.doesNotMatch(sample, /--steps <n>[^-]*\(required\)/);
    assert.match(sample, /Global Options:[\s\S]*--backend <name>/);
    const trainAe = ladder('train-ae', '--help').stdout;
    assert.match(
      trainAe,
      /--data <name\|folder>\s+dataset: mnist, fashion-mnist, emoji, emoji-noto, or\s+a\s+folder/,
    );
    assert.match(
      trainAe,
      /--size <n\|WxH>[\s\S]*--fit <mode>[\s\S]*--background <colour>[\s\S]*--image-channels <n>/,
    );
  });

  it('warns when sampling at a latent size the model was not trained at', () => {
    const teacher = join(root, 'teacher');
    const r = ladder(
      'sample',
      '--model',
      teacher,
      '--latent-size',
      '8x8',
      '--steps',
      '1',
      '--n',
      '1',
      '--out',
      join(root, 'other-size.png'),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: .* was trained at 7x7 latents; at 8x8 its images may be unusable/);
    const same = ladder(
      'sample',
      '--model',
      teacher,
      '--steps',
      '1',
      '--n',
      '1',
      '--out',
      join(root, 'own-size.png'),
    );
    assert.doesNotMatch(same.stderr, /warning/);
  });

  it('lists its commands', () => {
    const r = ladder('--help');
    assert.equal(r.status, 0);
    for (const verb of [
      'train-ae',
      'train-teacher',
      'sample',
      'card',
      'bench',
      'train-features',
      'eval',
      'report',
      'distill',
      'synth',
      'serve',
    ])
      assert.match(r.stdout, new RegExp(verb));
  });

  it('names the available backends when asked for an unknown one', () => {
    const r = ladder('--backend', 'tpu', 'bench');
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /Unknown backend 'tpu'.*Known backends: wasm, cpu, torch, webgpu; available on this machine: wasm, cpu/,
    );
  });

  it('says how to install a missing dataset', () => {
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', main, 'train-ae', '--data', 'fashion-mnist', '--out', join(root, 'x')],
      {
        encoding: 'utf8',
        env: { ...process.env, LADDER_FASHION_MNIST_DIR: join(root, 'nowhere') },
      },
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Fashion-MNIST not found: .* run `apt-get install dataset-fashion-mnist`/);
  });

  it('samples a model folder into a grid (tiny untrained model)', () => {
    const r = ladder(
      'sample',
      '--model',
      join(root, 'teacher'),
      '--n',
      '2',
      '--classes',
      '0-2',
      '--out',
      join(root, 'grid.png'),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /6 images/);
  });

  it('rejects a corrupt weights file', async () => {
    const dir = join(root, 'corrupt');
    await saveModelFolder(dir, teacherConfig, initUNet(teacherConfig.unet, new Rng(0)), {});
    const bytes = await readFile(join(dir, WEIGHTS_FILE));
    await writeFile(join(dir, WEIGHTS_FILE), bytes.subarray(0, bytes.length - 100));
    const r = ladder('sample', '--model', dir, '--out', join(root, 'c.png'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /corrupt safetensors file/);
  });

  it('rejects weights whose shapes do not match the config, naming the tensor', async () => {
    const dir = join(root, 'mismatch');
    const wider = { ...teacherConfig.unet, channels: [8, 16] };
    await saveModelFolder(dir, teacherConfig, initUNet(wider, new Rng(0)), {});
    const r = ladder('sample', '--model', dir, '--out', join(root, 'm.png'));
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /does not match the model config: .*down\.1\.res\.0\.conv1\.w has shape \[3,3,8,16\], expected \[3,3,8,8\]/,
    );
  });

  it('says which autoencoder is missing', async () => {
    const dir = join(root, 'orphan');
    await saveModelFolder(
      dir,
      { ...teacherConfig, autoencoder: '../gone' },
      initUNet(teacherConfig.unet, new Rng(0)),
      {},
    );
    const r = ladder('sample', '--model', dir, '--out', join(root, 'o.png'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /names autoencoder "\.\.\/gone" .* which is missing/);
  });

  it('refuses an output folder it cannot write', () => {
    const r = ladder('train-ae', '--out', '/etc/hostname/run', '--limit', '10', '--iterations', '1');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot write to folder \/etc\/hostname\/run/);
  });

  it('rejects an invalid config with the key path', async () => {
    const dir = join(root, 'badconfig');
    await saveModelFolder(dir, teacherConfig, initUNet(teacherConfig.unet, new Rng(0)), {});
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ ...teacherConfig, unet: { ...teacherConfig.unet, channels: 'wide' } }),
    );
    const r = ladder('sample', '--model', dir, '--out', join(root, 'b.png'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /config\.json is not a valid config: unet\.channels: Expected array/);
  });

  it('range-checks every numeric flag at parse time: exit 1, the flag named, no output made', async () => {
    const teacher = join(root, 'teacher');
    const distill = ['distill', '--method', 'ladd', '--teacher', teacher];
    // [extension of the --out it gets (null: the command has none), args]; the last flag holds the one bad value.
    const cases: [string | null, string[]][] = [
      ['', ['train-ae', '--channels', '0,0']],
      ['', ['train-ae', '--channels', '12,24']],
      ['', ['train-teacher', '--ae', root, '--label-dropout', '5']],
      ['', ['train-teacher', '--ae', root, '--ema', '2']],
      ['', ['train-teacher', '--ae', root, '--blocks', '0']],
      ['.png', ['sample', '--model', teacher, '--steps', '0']],
      ['.png', ['sample', '--model', teacher, '--cfg', '1e3']],
      ['.safetensors', ['synth', '--teacher', teacher, '--cfg', 'NaN']],
      ['.safetensors', ['synth', '--teacher', teacher, '--batch', '0']],
      ['', [...distill, '--ema', '1']],
      ['', [...distill, '--lr', '0']],
      ['', [...distill, '--mse-lr', '0']],
      ['', [...distill, '--relax', '1']],
      ['', [...distill, '--x0-warmup', '-0.1']],
      ['', [...distill, '--teacher-cfg', '-2']],
      ['', [...distill, '--synth-cfg', '101']],
      ['', [...distill, '--probs', '.5,.6']],
      ['', [...distill, '--warmup-probs', '1.5,-.5']],
      ['', [...distill, '--r1', '-1']],
      ['', [...distill, '--t-hat-std', '0']],
      ['', [...distill, '--adv-weight', '-0.5']],
      ['', [...distill, '--t-min', '0']],
      ['', [...distill, '--t-max', '1.5']],
      ['', [...distill, '--schedule', '8,3']],
      ['', [...distill, '--feature-layers', '0,-1']],
      [null, ['bench', '--batch', '0']],
      [null, ['bench', '--channels', '32,0']],
      [null, ['bench', '--iterations', '0']],
      [null, ['card', '--model', teacher, '--steps', '4,0']],
    ];
    const outs = cases.map(([ext], i) => (ext === null ? undefined : join(root, `bad-${i}${ext}`)));
    const results = await twoAtATime(
      cases.map(
        ([, args], i) =>
          () =>
            ladderAsync(...args, ...(outs[i] === undefined ? [] : ['--out', outs[i]])),
      ),
    );
    const wrong = results.flatMap(({ status, stderr }, i) => {
      const args = cases[i]![1];
      const flag = args.at(-2)!;
      const out = outs[i];
      const problems = [
        status === 1 ? '' : `exit ${status}`,
        stderr.includes(`is invalid. ${flag}`) ? '' : `${flag} not named in: ${stderr.split('\n')[0]}`,
        out !== undefined && existsSync(out) ? `made ${out}` : '',
      ].filter((p) => p !== '');
      return problems.length === 0 ? [] : [`${args.join(' ')}: ${problems.join('; ')}`];
    });
    assert.deepEqual(wrong, []);
  });

  it("still parses every command recorded in the shipped models' cards", async () => {
    // Parsing checks each flag's value and --help then exits before any work; a flag given twice is parsed
    // twice, so one run per command checks the values of all its recorded runs.
    const models = fileURLToPath(new URL('../../models/', import.meta.url));
    const commands: string[] = [];
    const collect = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(collect);
      else if (typeof v === 'object' && v !== null) {
        for (const [key, x] of Object.entries(v)) {
          if (key === 'command' && typeof x === 'string') commands.push(x);
          else collect(x);
        }
      }
    };
    for (const file of await readdir(models, { recursive: true }))
      if (file.endsWith('card.json')) collect(JSON.parse(await readFile(join(models, file), 'utf8')));
    const flagsByVerb = new Map<string, string[]>();
    for (const command of commands) {
      const words = command.split(/\s+/);
      const at = words.findIndex((w) => OWN_VERBS.includes(w));
      if (at < 0) continue;
      flagsByVerb.set(words[at]!, [...(flagsByVerb.get(words[at]!) ?? []), ...words.slice(at + 1)]);
    }
    assert.ok(flagsByVerb.has('distill') && flagsByVerb.has('train-teacher'), 'found the recorded commands');
    const verbs = [...flagsByVerb.keys()];
    const results = await twoAtATime(
      verbs.map((v) => () => ladderAsync(v, ...flagsByVerb.get(v)!, '--help')),
    );
    for (const [i, { status, stderr }] of results.entries())
      assert.equal(status, 0, `${verbs[i]}: ${stderr}`);
  });
});
