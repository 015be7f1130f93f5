// A run folder through the real CLI, as a careful user and an unlucky one would treat it: resumes that must be
// exact, finished models that must not be rewritten, two processes on one folder, Ctrl-C, and what kills leave.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runLadder, startLadder, waitForCheckpoint } from '../test-utils/cli.js';
import { latestCheckpointStep } from '../train/checkpoint.js';
import { LOCK_FILE } from '../train/run-lock.js';

const autoencoder = fileURLToPath(new URL('../../models/mnist/autoencoder', import.meta.url));

/** The reproduction: a small teacher on 256 images, a checkpoint at every step. */
const teacherArgs = (out: string, steps: number, ...more: string[]): string[] => [
  'train-teacher',
  '--ae',
  autoencoder,
  '--batch',
  '16',
  '--limit',
  '256',
  '--checkpoint-every',
  '1',
  '--channels',
  '16,32',
  '--iterations',
  String(steps),
  '--out',
  out,
  ...more,
];

const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'ladder-run-safety-'));

describe('run folders through the CLI', () => {
  it('20 steps, then --iterations 21 --resume, gives the same weights as 21 steps in one go; the step-20 model is kept', async () => {
    const root = await tmp();
    const whole = runLadder(teacherArgs(join(root, 'whole'), 21));
    assert.equal(whole.status, 0, whole.stderr);
    const split = join(root, 'split');
    assert.equal(runLadder(teacherArgs(split, 20)).status, 0);
    const step20 = await readFile(join(split, 'weights.safetensors'));
    const resumed = runLadder(teacherArgs(split, 21, '--resume'));
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, /continuing the model finished at step 20 to --iterations 21/);
    const a = await readFile(join(root, 'whole', 'weights.safetensors'));
    const b = await readFile(join(split, 'weights.safetensors'));
    assert.ok(a.equals(b), 'the resumed model differs from the uninterrupted one');
    // The old model is a complete sibling folder, loadable as it was (its relative paths resolve at the same depth).
    assert.ok((await readFile(join(`${split}.replaced-step-20`, 'weights.safetensors'))).equals(step20));
    const old = runLadder([
      'sample',
      '--model',
      `${split}.replaced-step-20`,
      '--n',
      '1',
      '--out',
      join(root, 'old.png'),
    ]);
    assert.equal(old.status, 0, old.stderr);
  });

  it('--resume on a finished model rewrites nothing; --resume --steps below the run is refused', async () => {
    const out = join(await tmp(), 'teacher');
    assert.equal(runLadder(teacherArgs(out, 3)).status, 0);
    // What a user adds after training: a default guidance and eval results in the card.
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    config.sampling.cfg = 3.5;
    await writeFile(join(out, 'config.json'), JSON.stringify(config));
    const card = JSON.parse(await readFile(join(out, 'card.json'), 'utf8'));
    await writeFile(join(out, 'card.json'), JSON.stringify({ ...card, eval: { fid: 1 } }));
    const before = await Promise.all(['config.json', 'card.json'].map((f) => readFile(join(out, f))));

    const again = runLadder(teacherArgs(out, 3, '--resume'));
    assert.equal(again.status, 1);
    assert.match(
      again.stderr,
      /finished at step 3; --resume never rewrites a finished model: pass --iterations above 3/,
    );
    const lower = runLadder(teacherArgs(out, 2, '--resume'));
    assert.equal(lower.status, 1);
    const after = await Promise.all(['config.json', 'card.json'].map((f) => readFile(join(out, f))));
    assert.ok(
      before.every((b, i) => b.equals(after[i]!)),
      'a refused resume changed the model',
    );

    // An unfinished run at step 3 asked to stop at step 2.
    const unfinished = join(await tmp(), 'teacher');
    const { child, done } = startLadder(teacherArgs(unfinished, 100000));
    await waitForCheckpoint(unfinished, 3);
    child.kill('SIGKILL');
    await done;
    const past = runLadder(teacherArgs(unfinished, 2, '--resume'));
    assert.equal(past.status, 1);
    assert.match(past.stderr, /already at step \d+, past --iterations 2: pass --iterations \d+ or more/);
  });

  it('Ctrl-C checkpoints and exits 130 saying where; a second process on the folder is refused; a dead one is taken over', async () => {
    const out = join(await tmp(), 'teacher');
    const first = startLadder(teacherArgs(out, 100000));
    await waitForCheckpoint(out, 2);
    const second = runLadder(teacherArgs(out, 100000, '--resume'));
    assert.equal(second.status, 1);
    assert.match(second.stderr, new RegExp(`in use by another ladder process \\(PID ${first.child.pid}\\)`));
    first.child.kill('SIGINT');
    const stopped = await first.done;
    assert.equal(stopped.code, 130);
    assert.match(
      stopped.stderr,
      /interrupted by SIGINT at step \d+; the checkpoint is in .*checkpoints: rerun the same command with --resume/,
    );
    assert.ok(!existsSync(join(out, 'config.json')), 'an interrupted run writes no model');
    assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is released on exit');

    // A kill leaves a stale lock and temp files behind: the next process takes the folder over and cleans up.
    const killed = startLadder(teacherArgs(out, 100000, '--resume'));
    await waitForCheckpoint(out, ((await latestCheckpointStep(out)) ?? 0) + 1);
    killed.child.kill('SIGKILL');
    await killed.done;
    assert.ok(existsSync(join(out, LOCK_FILE)), 'SIGKILL leaves the lock file');
    const stale = [
      join(out, `.weights.safetensors.${killed.child.pid}.0badc0de.tmp`),
      join(out, 'checkpoints', `.step-00000099.${killed.child.pid}.0badc0de.tmp`),
    ];
    await writeFile(stale[0]!, 'half-written');
    await mkdir(stale[1]!);
    const last = (await latestCheckpointStep(out))!;
    const finish = runLadder(teacherArgs(out, last + 1, '--resume'));
    assert.equal(finish.status, 0, finish.stderr);
    for (const file of stale) assert.ok(!existsSync(file), `${file} was not cleaned`);
    assert.ok(existsSync(join(out, 'config.json')));
  });

  it('--resume on a folder without a checkpoint says that it starts fresh', async () => {
    const out = join(await tmp(), 'teacher');
    const r = runLadder(teacherArgs(out, 1, '--resume'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /--resume found no checkpoint in .*; starting a fresh run/);
  });
});
