// A prompt-conditional teacher through the CLI: trains on digit strings in aspect-ratio buckets, resumes exactly
// after a kill, and samples prompts of two lengths at their own aspect ratios.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodePng } from '../image/png.js';
import { decodeNpy } from '../io/npy.js';
import { runLadder, startLadder, waitForCheckpoint } from '../test-utils/cli.js';

const autoencoder = fileURLToPath(new URL('../../models/mnist/autoencoder', import.meta.url));

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

describe('a prompt-conditional teacher on digit strings', () => {
  it('records its text encoder and prompts in its config', async () => {
    const config = JSON.parse(await readFile(join(teacher, 'config.json'), 'utf8'));
    assert.deepEqual(config.prompts, { source: 'digit-strings', lengths: [1, 2, 3, 4] });
    assert.equal(config.unet.numClasses, 0);
    assert.deepEqual(config.unet.text, { maxTokens: 16, layers: 2, heads: 4, width: 8 });
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
});
