// A prompt-conditional teacher through the CLI: trains on digit strings in aspect-ratio buckets, resumes exactly
// after a kill, and samples prompts of two lengths at their own aspect ratios.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadPipeline } from '../api/node.js';
import { isPromptSet, loadSynthetic } from '../distill/shared/synth.js';
import { decodePng } from '../image/png.js';
import { decodeNpy } from '../io/npy.js';
import { detokenize } from '../nn/text-encoder.js';
import { testBackend } from '../test-utils/backend.js';
import { runLadder, startLadder, waitForCheckpoint } from '../test-utils/cli.js';

const models = fileURLToPath(new URL('../../models', import.meta.url));
const autoencoder = join(models, 'mnist/autoencoder');

const teacherArgs = (out: string, steps: number, ...more: string[]): string[] => [
  'train-teacher',
  '--ae',
  autoencoder,
  '--data',
  'digit-strings',
  '--batch',
  '8',
  '--limit',
  '300',
  '--checkpoint-every',
  '1',
  '--channels',
  '8,16',
  '--iterations',
  String(steps),
  '--out',
  out,
  ...more,
];

let root = '';
let teacher = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ladder-prompt-'));
  teacher = join(root, 'whole');
  const whole = runLadder(teacherArgs(teacher, 8));
  assert.equal(whole.status, 0, whole.stderr);
});

/** `n` images of `prompt` from the tiny teacher, in 2 steps. */
const sample = (prompt: string, n: number, out: string) =>
  runLadder([
    'sample',
    '--model',
    teacher,
    '--prompt',
    prompt,
    '--n',
    String(n),
    '--steps',
    '2',
    '--out',
    out,
  ]);

/** The tiny teacher's synthetic latents (10, over the 4 buckets), made once for the distillation tests. */
const promptSynthetic = (): string => {
  const file = join(root, 'synth.safetensors');
  if (existsSync(file)) return file;
  const synth = runLadder([
    'synth',
    '--teacher',
    teacher,
    '--n',
    '10',
    '--steps',
    '2',
    '--batch',
    '4',
    '--out',
    file,
  ]);
  assert.equal(synth.status, 0, synth.stderr);
  return file;
};

describe('a prompt-conditional teacher on digit strings', () => {
  it('records its text encoder and prompts in its config', async () => {
    const config = JSON.parse(await readFile(join(teacher, 'config.json'), 'utf8'));
    assert.deepEqual(config.prompts, { source: 'digit-strings', lengths: [1, 2, 3, 4] });
    assert.equal(config.unet.numClasses, 0);
    assert.deepEqual(config.unet.text, { maxTokens: 16, layers: 2, heads: 2, width: 8 });
    assert.deepEqual(config.classNames, []);
    const card = JSON.parse(await readFile(join(teacher, 'card.json'), 'utf8'));
    assert.equal(card.dataset, 'digit-strings');
  });

  it('resumes exactly after a kill', async () => {
    const split = join(root, 'split');
    const { child, done } = startLadder(teacherArgs(split, 100000));
    await waitForCheckpoint(split, 3);
    child.kill('SIGKILL');
    await done;
    const resumed = runLadder(teacherArgs(split, 8, '--resume'));
    assert.equal(resumed.status, 0, resumed.stderr);
    const a = await readFile(join(teacher, 'weights.safetensors'));
    const b = await readFile(join(split, 'weights.safetensors'));
    assert.ok(a.equals(b), 'the resumed teacher differs from the uninterrupted one');
  });

  it('samples a prompt at its own aspect ratio, as a grid and as raw images', async () => {
    const png = join(root, 'seven.png');
    const one = sample('7', 3, png);
    assert.equal(one.status, 0, one.stderr);
    const grid = decodePng(await readFile(png));
    // imageGridPng: 2x scale, 2-px gaps around and between cells.
    assert.deepEqual([grid.height, grid.width], [2 + 56 + 2, 2 + 3 * (56 + 2)]);
    assert.match(one.stderr, /rows: 1 "7"/);

    const npy = join(root, 'four.npy');
    const four = sample('4071', 2, npy);
    assert.equal(four.status, 0, four.stderr);
    assert.deepEqual(decodeNpy(await readFile(npy)).shape, [2, 28, 112, 1]);
    assert.ok(!existsSync(join(root, 'four.labels.npy')), 'prompted images have no class labels to write');
  });

  it('says what to pass instead of classes, a missing prompt or a prompt that is not a digit string', () => {
    const out = join(root, 'x.png');
    const cases: [string[], RegExp][] = [
      [[], /prompt-conditional: give --prompt, e.g. --prompt 407/],
      [['--classes', '1'], /prompt-conditional: give --prompt/],
      [['--prompt', '4a'], /"4a" is not a digit string/],
      [['--prompt', '1234567890123456'], /16 bytes; this model reads at most 15/],
    ];
    for (const [args, message] of cases) {
      const run = runLadder(['sample', '--model', teacher, '--steps', '1', ...args, '--out', out]);
      assert.equal(run.status, 1, args.join(' '));
      assert.match(run.stderr, message);
    }
    const classModel = fileURLToPath(new URL('../../models/mnist/teacher', import.meta.url));
    const run = runLadder(['sample', '--model', classModel, '--prompt', '7', '--out', out]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /not prompt-conditional: choose classes with --classes/);
  });

  it('is evaluated per string length: digit and string accuracy, cell FID, a grid row per length', async () => {
    const json = join(root, 'eval.json');
    const args = [
      'eval',
      '--model',
      teacher,
      '--steps',
      '1',
      '--lengths',
      '1,5',
      '--samples',
      '10',
      '--ref-limit',
      '200',
      '--bootstrap',
      '20',
      '--kid-subsets',
      '2',
      '--cache-dir',
      root,
      '--json',
      json,
    ];
    const run = runLadder(args);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /1 steps, length 5: digits [0-9.]+%.*cell FID.*\(length not trained\)/);
    const out = JSON.parse(await readFile(json, 'utf8'));
    assert.equal(out.format, 'ladder-digit-strings-eval');
    assert.deepEqual(out.trainedLengths, [1, 2, 3, 4]);
    assert.deepEqual(
      out.results[0].lengths.map((r: { length: number }) => r.length),
      [1, 5],
    );
    for (const r of out.results[0].lengths) {
      assert.ok(r.digitAccuracy >= 0 && r.digitAccuracy <= 1);
      assert.ok(r.stringAccuracy <= r.digitAccuracy, 'a string is right only when all its digits are');
      assert.ok(Number.isFinite(r.cellFid) && r.cellFid > 0);
      assert.ok(Number.isFinite(r.cellFidFloor));
      assert.equal(r.digitAccuracyInterval.length, 2);
    }
    // Two rows (lengths 1 and 5) of 8 strings (--grid-per-class), each on a canvas five cells wide, at 2x with
    // 2-px gaps.
    const grid = decodePng(await readFile(join(root, out.results[0].grid)));
    assert.deepEqual([grid.height, grid.width], [2 + 2 * (56 + 2), 2 + 8 * (280 + 2)]);

    const again = runLadder(args);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already exist.*pass --force/);
    const classModel = fileURLToPath(new URL('../../models/mnist/teacher', import.meta.url));
    const wrong = runLadder([
      'eval',
      '--model',
      classModel,
      '--data',
      'digit-strings',
      '--json',
      join(root, 'c.json'),
    ]);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /not a digit-strings model \(it takes classes\)/);
  });

  it('has an autoencoder trained on digit strings in aspect-ratio buckets, scored per string length', async () => {
    const ae = join(root, 'strings-ae');
    const run = runLadder([
      'train-ae',
      '--data',
      'digit-strings',
      '--limit',
      '300',
      '--batch',
      '4',
      '--iterations',
      '4',
      '--channels',
      '8,8,8',
      '--out',
      ae,
    ]);
    assert.equal(run.status, 0, run.stderr);
    const config = JSON.parse(await readFile(join(ae, 'config.json'), 'utf8'));
    assert.equal(config.dataset, 'mnist');
    assert.deepEqual(config.autoencoder.imageShape, [28, 28, 1]);
    const card = JSON.parse(await readFile(join(ae, 'card.json'), 'utf8'));
    assert.deepEqual(card.sizes, [
      [28, 28],
      [28, 56],
      [28, 84],
      [28, 112],
    ]);
    const byLength = card.metrics.testPsnrDbByGroup;
    assert.deepEqual(
      Object.keys(byLength),
      [1, 2, 3, 4, 5, 6].map((n) => `length ${n}`),
    );
    assert.ok(Object.values(byLength).every((db) => Number.isFinite(db)));
    const trained = [1, 2, 3, 4].reduce((a, n) => a + byLength[`length ${n}`], 0) / 4;
    assert.ok(
      Math.abs(card.metrics.testPsnrDb - trained) < 0.01,
      "the headline PSNR is the trained lengths' mean",
    );

    const refused = runLadder([
      'train-ae',
      '--data',
      'digit-strings',
      '--size',
      '32',
      '--out',
      join(root, 'x'),
    ]);
    assert.equal(refused.status, 1);
    assert.match(
      refused.stderr,
      /--size apply to folder datasets only; digit strings are grey 28-px MNIST cells/,
    );
  });

  it('distils into a LADD student: synthetic latents per bucket, prompts at their aspect ratios, exact resume', async () => {
    const synthetic = promptSynthetic();
    const set = await loadSynthetic(synthetic);
    assert.ok(isPromptSet(set), 'a prompt teacher makes a bucketed set');
    // Lengths 1 to 4: 10 latents spread 3, 3, 2, 2, each bucket at its own latent width (7 per digit).
    assert.deepEqual(
      set.buckets.map((b) => [b.shape, b.tokens.length / set.maxTokens]),
      [
        [[7, 7, 4], 3],
        [[7, 14, 4], 3],
        [[7, 21, 4], 2],
        [[7, 28, 4], 2],
      ],
    );
    assert.deepEqual(detokenize(set.buckets[2]!.tokens.subarray(0, set.maxTokens)).length, 3);

    const ladd = (out: string, iterations: number, ...more: string[]) => [
      'distill',
      '--method',
      'ladd',
      '--teacher',
      teacher,
      '--synthetic',
      synthetic,
      '--steps',
      '2',
      '--backward-sim',
      '--batch',
      '2',
      '--iterations',
      String(iterations),
      '--checkpoint-every',
      '1',
      '--out',
      out,
      ...more,
    ];
    const whole = join(root, 'ladd-whole');
    const run = runLadder(ladd(whole, 6));
    assert.equal(run.status, 0, run.stderr);
    const config = JSON.parse(await readFile(join(whole, 'config.json'), 'utf8'));
    assert.equal(config.kind, 'student');
    assert.deepEqual(config.prompts, { source: 'digit-strings', lengths: [1, 2, 3, 4] });

    const split = join(root, 'ladd-split');
    const { child, done } = startLadder(ladd(split, 100000));
    await waitForCheckpoint(split, 3);
    child.kill('SIGKILL');
    await done;
    const resumed = runLadder(ladd(split, 6, '--resume'));
    assert.equal(resumed.status, 0, resumed.stderr);
    const a = await readFile(join(whole, 'weights.safetensors'));
    const b = await readFile(join(split, 'weights.safetensors'));
    assert.ok(a.equals(b), 'the resumed LADD student differs from the uninterrupted one');

    const npy = join(root, 'student.npy');
    const sampled = runLadder(['sample', '--model', whole, '--prompt', '40712', '--n', '2', '--out', npy]);
    assert.equal(sampled.status, 0, sampled.stderr);
    assert.deepEqual(decodeNpy(await readFile(npy)).shape, [2, 28, 140, 1]);
  });

  it('distils into PADD stages: the encoder copy reads prompts, each stage resumes exactly', async () => {
    const padd = (out: string, ...more: string[]) => [
      'distill',
      '--method',
      'padd',
      '--teacher',
      teacher,
      '--synthetic',
      promptSynthetic(),
      '--schedule',
      '4:mse,2,1',
      '--iterations',
      '20',
      '--batch',
      '2',
      '--head-channels',
      '8',
      '--head-groups',
      '4',
      '--checkpoint-every',
      '1',
      '--out',
      out,
      ...more,
    ];
    const whole = join(root, 'padd-whole');
    const run = runLadder(padd(whole));
    assert.equal(run.status, 0, run.stderr);
    for (const steps of [2, 1]) {
      const config = JSON.parse(await readFile(join(whole, `stage-${steps}`, 'config.json'), 'utf8'));
      assert.equal(config.kind, 'student');
      assert.deepEqual(config.sampling.steps, [steps]);
      assert.deepEqual(config.prompts, { source: 'digit-strings', lengths: [1, 2, 3, 4] });
    }

    // Killed in the 1-step stage's adversarial phase (its discriminator is the prompt-reading encoder copy).
    const split = join(root, 'padd-split');
    const { child, done } = startLadder(padd(split));
    await waitForCheckpoint(join(split, 'stage-1', 'conditional'), 2);
    child.kill('SIGKILL');
    await done;
    const resumed = runLadder(padd(split, '--resume'));
    assert.equal(resumed.status, 0, resumed.stderr);
    const a = await readFile(join(whole, 'stage-1', 'weights.safetensors'));
    const b = await readFile(join(split, 'stage-1', 'weights.safetensors'));
    assert.ok(a.equals(b), 'the resumed PADD student differs from the uninterrupted one');

    const npy = join(root, 'padd.npy');
    const sampled = runLadder([
      'sample',
      '--model',
      join(whole, 'stage-1'),
      '--prompt',
      '407',
      '--n',
      '2',
      '--out',
      npy,
    ]);
    assert.equal(sampled.status, 0, sampled.stderr);
    assert.deepEqual(decodeNpy(await readFile(npy)).shape, [2, 28, 84, 1]);
  });

  it('distils into a LADD-DMD student: the fake score reads prompts, exact resume; real latents say what to pass', async () => {
    const hybrid = (out: string, ...more: string[]) => [
      'distill',
      '--method',
      'ladd-dmd',
      '--teacher',
      teacher,
      '--data',
      'synthetic',
      '--synthetic',
      promptSynthetic(),
      '--steps',
      '2',
      '--batch',
      '2',
      '--iterations',
      '5',
      '--checkpoint-every',
      '1',
      '--out',
      out,
      ...more,
    ];
    const whole = join(root, 'hybrid-whole');
    const run = runLadder(hybrid(whole));
    assert.equal(run.status, 0, run.stderr);
    const config = JSON.parse(await readFile(join(whole, 'config.json'), 'utf8'));
    assert.deepEqual(config.prompts, { source: 'digit-strings', lengths: [1, 2, 3, 4] });
    const split = join(root, 'hybrid-split');
    const { child, done } = startLadder(hybrid(split, '--iterations', '100000'));
    await waitForCheckpoint(split, 2);
    child.kill('SIGKILL');
    await done;
    const resumed = runLadder(hybrid(split, '--resume'));
    assert.equal(resumed.status, 0, resumed.stderr);
    const a = await readFile(join(whole, 'weights.safetensors'));
    const b = await readFile(join(split, 'weights.safetensors'));
    assert.ok(a.equals(b), 'the resumed LADD-DMD student differs from the uninterrupted one');

    const real = runLadder([
      'distill',
      '--method',
      'ladd-dmd',
      '--teacher',
      teacher,
      '--out',
      join(root, 'hybrid-real'),
    ]);
    assert.equal(real.status, 1);
    assert.match(real.stderr, /on real data is not built: use its synthetic latents \(--data synthetic\)/);
  });

  it('is refused by ADD, whose discriminator takes classes only', () => {
    const run = runLadder([
      'distill',
      '--method',
      'add',
      '--teacher',
      teacher,
      '--feature-net',
      join(models, 'mnist/features'),
      '--iterations',
      '1',
      '--out',
      join(root, 'add'),
    ]);
    assert.equal(run.status, 1);
    assert.match(
      run.stderr,
      /prompt-conditional, but ADD takes classes only so far: distil it with LADD, PADD or LADD-DMD/,
    );
  });

  it("generates a prompt through the library pipeline, at the prompt's size", async () => {
    await testBackend();
    const pipe = await loadPipeline(teacher);
    try {
      assert.deepEqual(pipe.info.prompts, { source: 'digit-strings', lengths: [1, 2, 3, 4] });
      assert.deepEqual(pipe.info.classNames, []);
      const images = await pipe.generate({ prompt: '40', n: 2, steps: 1 });
      assert.deepEqual(
        images.map((im) => [im.width, im.height, im.prompt, im.className, im.label]),
        [
          [56, 28, '40', '40', -1],
          [56, 28, '40', '40', -1],
        ],
      );
      await assert.rejects(pipe.generate({ steps: 1 }), /prompt-conditional: give a prompt, e.g./);
      await assert.rejects(pipe.generate({ classes: [1], steps: 1 }), /give a prompt, not classes/);
      await assert.rejects(pipe.generate({ prompt: 'x1', steps: 1 }), /"x1" is not a digit string/);
    } finally {
      pipe.dispose();
    }
    const classes = await loadPipeline('mnist/teacher');
    try {
      await assert.rejects(
        classes.generate({ prompt: '4', steps: 1 }),
        /not prompt-conditional: choose classes/,
      );
    } finally {
      classes.dispose();
    }
  });

  it('gets a card with a grid per step count (a row per length), its throughput and its eval', async () => {
    const folder = join(root, 'card-teacher');
    await cp(teacher, folder, { recursive: true });
    const json = join(root, 'card-eval.json');
    const evalRun = runLadder([
      'eval',
      '--model',
      folder,
      '--steps',
      '1',
      '--lengths',
      '2,3',
      '--samples',
      '5',
      '--ref-limit',
      '200',
      '--bootstrap',
      '0',
      '--kid-subsets',
      '2',
      '--cache-dir',
      root,
      '--json',
      json,
    ]);
    assert.equal(evalRun.status, 0, evalRun.stderr);
    const run = runLadder(['card', '--model', folder, '--steps', '1', '--eval', json]);
    assert.equal(run.status, 0, run.stderr);
    const card = JSON.parse(await readFile(join(folder, 'card.json'), 'utf8'));
    assert.equal(card.throughput.prompt, '407');
    assert.ok(card.throughput.imagesPerSecond > 0);
    const grid = decodePng(await readFile(join(folder, card.samples.grids['1'])));
    // Lengths 1 to 6, 8 strings each, on canvases six cells wide.
    assert.deepEqual([grid.height, grid.width], [2 + 6 * (56 + 2), 2 + 8 * (336 + 2)]);
    const metrics = card.metrics.digitStringsSelectionNet;
    assert.deepEqual(
      metrics.results[0].lengths.map((l: { length: number }) => l.length),
      [2, 3],
    );
    assert.ok(metrics.results[0].lengths.every((l: { cellFid: number }) => Number.isFinite(l.cellFid)));
  });
});
