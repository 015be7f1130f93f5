// Synthetic latent sets: generation, caching, the teacher record, and `ladder synth` through the real command line.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../core/rng.js';
import * as tf from '../../core/tf.js';
import { saveTensors } from '../../io/safetensors.js';
import { type LoadedDiffusionModel, loadDiffusionModel } from '../../models/folder.js';
import { disposeParams } from '../../nn/params.js';
import { testBackend } from '../../test-utils/backend.js';
import {
  tinyTeacherConfig,
  tinyUNetParams,
  writeFolders,
  writeTinyTeacher,
} from '../../test-utils/tiny-models.js';
import { makeTinyTeacher } from '../fixtures/tiny-teacher.js';
import {
  defaultSynthSettings,
  loadSynthetic,
  type SyntheticSet,
  saveSynthetic,
  synthesize,
  synthesizeLatents,
  synthPrompts,
} from './synth.js';

const main = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
const ladder = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    encoding: 'utf8',
    env: { ...process.env },
  });

const sha256 = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

/** Runs `fn` with stderr captured; returns what it wrote. */
async function captureStderr(fn: () => Promise<unknown>): Promise<string> {
  const write = process.stderr.write;
  let text = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return text;
}

let root = '';
let teacherDir = '';
let teacher: LoadedDiffusionModel;
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-synth-'));
  teacherDir = await makeTinyTeacher(root);
  teacher = await loadDiffusionModel(teacherDir);
});
after(() => {
  disposeParams(teacher.params);
  disposeParams(teacher.autoencoder.params);
});

describe('synthetic latents', () => {
  it("default to the teacher's own sampling steps, CFG and sampler", () => {
    assert.deepEqual(defaultSynthSettings(teacher, { count: 30 }), {
      count: 30,
      steps: 4,
      cfg: 2,
      sampler: 'euler',
      seed: 0,
    });
  });

  it('are class-balanced, seeded, and cached: a second call with the same settings reuses the file', async () => {
    const settings = defaultSynthSettings(teacher, { count: 20, steps: 2, seed: 3 });
    const file = join(root, 'synth.safetensors');
    const made = (await synthesize({
      teacher,
      teacherDir,
      outFile: file,
      settings,
      batchSize: 8,
    })) as SyntheticSet;
    assert.deepEqual(made.shape, [7, 7, 4]);
    assert.equal(made.data.length, 20 * 7 * 7 * 4);
    assert.ok(made.data.every(Number.isFinite));
    const counts = Array.from({ length: 10 }, (_, c) => made.labels.filter((l) => l === c).length);
    assert.deepEqual(counts, Array(10).fill(2));

    const written = statSync(file).mtimeMs;
    const again = (await synthesize({ teacher, teacherDir, outFile: file, settings })) as SyntheticSet;
    assert.equal(statSync(file).mtimeMs, written, 'the cached file was rewritten');
    assert.deepEqual(again.data, made.data);
    assert.deepEqual(again.labels, made.labels);
    assert.deepEqual(again.settings, settings);

    // Same seed, same latents; another seed, others.
    const same = synthesizeLatents(teacher, settings, teacherDir, 8);
    assert.deepEqual(same.data, made.data);
    const other = synthesizeLatents(teacher, { ...settings, seed: 4 }, teacherDir, 8);
    assert.notDeepEqual(other.data, made.data);

    await assert.rejects(
      synthesize({ teacher, teacherDir, outFile: file, settings: { ...settings, cfg: 5 } }),
      /was made with .*"cfg":2.*choose another file, or replace it with `ladder synth --force`/,
    );
  });

  it('record the teacher that made them, and a set made by another teacher is refused unless forced', async () => {
    const settings = defaultSynthSettings(teacher, { count: 10, steps: 1 });
    const file = join(root, 'recorded.safetensors');
    const made = (await synthesize({ teacher, teacherDir, outFile: file, settings })) as SyntheticSet;
    assert.deepEqual((await loadSynthetic(file)).madeBy, {
      teacher: resolve(teacherDir),
      teacherWeightsSha256: await sha256(join(teacherDir, 'weights.safetensors')),
      autoencoder: resolve(root, 'ae'),
      autoencoderWeightsSha256: await sha256(join(root, 'ae', 'weights.safetensors')),
    });

    const otherDir = await writeTinyTeacher(join(root, 'other'), {
      seed: 11,
      sampling: { steps: [4], cfg: 2 },
    });
    const other = await loadDiffusionModel(otherDir);
    try {
      await assert.rejects(
        synthesize({ teacher: other, teacherDir: otherDir, outFile: file, settings }),
        /recorded\.safetensors was made by teacher .*\/teacher \(weights sha256 [0-9a-f]{12}, autoencoder .*\), not by .*other\/teacher/,
      );
      const replaced = <SyntheticSet>await synthesize({
        teacher: other,
        teacherDir: otherDir,
        outFile: file,
        settings,
        force: true,
      });
      assert.notDeepEqual(replaced.data, made.data);
      assert.equal((await loadSynthetic(file)).madeBy?.teacher, resolve(otherDir));
    } finally {
      disposeParams(other.params);
      disposeParams(other.autoencoder.params);
    }

    // A set from an older ladder records no teacher: reused, with a warning.
    const old = join(root, 'old.safetensors');
    const { madeBy: _madeBy, ...unrecorded } = made;
    await saveSynthetic(old, unrecorded);
    const warning = await captureStderr(() => synthesize({ teacher, teacherDir, outFile: old, settings }));
    assert.match(warning, /old\.safetensors does not record which teacher made it/);
  });

  it('refuse settings that cannot work before generating', () => {
    assert.throws(
      () => synthesizeLatents(teacher, defaultSynthSettings(teacher, { count: 4, cfg: 1e308 }), teacherDir),
      /synthetic CFG scale must be a number from 0 to 100, got 1e\+308/,
    );
    assert.throws(
      () =>
        synthesizeLatents(
          teacher,
          defaultSynthSettings(teacher, { count: 10_000_000 }),
          teacherDir,
          10_000_000,
        ),
      /--batch 10000000 needs about [\d.]+ GB .*: use --batch \d+ or less/,
    );
    // A chunk holds at most the set: 4 latents fit whatever the batch.
    const four = synthesizeLatents(
      teacher,
      defaultSynthSettings(teacher, { count: 4, steps: 1 }),
      teacherDir,
      10_000_000,
    );
    assert.equal(four.labels.length, 4);
  });

  it("are this teacher's own: a student's set is not its root teacher's, except for distillation", async () => {
    const settings = defaultSynthSettings(teacher, { count: 10, steps: 1 });
    const file = join(root, 'root-teacher.safetensors');
    const made = (await synthesize({ teacher, teacherDir, outFile: file, settings })) as SyntheticSet;
    await writeFolders(root, [
      [
        'student',
        tinyTeacherConfig({ kind: 'student', distill: { method: 'ladd', teacher: '../teacher' } }),
        tinyUNetParams(new Rng(5)),
      ],
    ]);
    const studentDir = join(root, 'student');
    const student = await loadDiffusionModel(studentDir);
    try {
      const forStudent = { teacher: student, teacherDir: studentDir, outFile: file, settings };
      await assert.rejects(
        synthesize(forStudent),
        /root-teacher\.safetensors was made by teacher .*\/teacher \(.*\), not by .*\/student \(.*\): choose another file, or replace it with `ladder synth --force`/,
      );
      // Distillation trains a student heading a new ladder on its root teacher's set.
      const inherited = (await synthesize({ ...forStudent, acceptAncestors: true })) as SyntheticSet;
      assert.deepEqual(inherited.data, made.data);
      const own = (await synthesize({ ...forStudent, force: true })) as SyntheticSet;
      assert.notDeepEqual(own.data, made.data);
      assert.equal((await loadSynthetic(file)).madeBy?.teacher, resolve(studentDir));
    } finally {
      disposeParams(student.params);
      disposeParams(student.autoencoder.params);
    }
  });

  it('ladder synth: bad --cfg, an unwritable --out and a diverging teacher fail before writing (real CLI)', async () => {
    const cfg = ladder(
      'synth',
      '--teacher',
      teacherDir,
      '--cfg',
      '1e308',
      '--out',
      join(root, 'cfg.safetensors'),
    );
    assert.equal(cfg.status, 1);
    assert.match(cfg.stderr, /--cfg must be a number from 0 to 100, got "1e308"/);

    // Progress lines ("synth 1/20 ...") would show that generation had started.
    const unwritable = ladder(
      'synth',
      '--teacher',
      teacherDir,
      '--n',
      '20',
      '--out',
      '/etc/hostname/s.safetensors',
    );
    assert.equal(unwritable.status, 1);
    assert.match(unwritable.stderr, /cannot write to folder \/etc\/hostname/);
    assert.doesNotMatch(unwritable.stderr, /^synth \d+\/20/m);

    const diverging = await writeTinyTeacher(join(root, 'diverging'), { jitter: 1e20 });
    const out = join(root, 'nan.safetensors');
    const nan = ladder('synth', '--teacher', diverging, '--n', '4', '--steps', '2', '--out', out);
    assert.equal(nan.status, 1);
    assert.match(nan.stderr, /diverging\/teacher made NaN or infinite latents at 2 sampling steps/);
    assert.ok(!existsSync(out));
  });

  it('ladder synth: an existing --out made otherwise is refused, and replaced with --force (real CLI)', async () => {
    const out = join(root, 'cli.safetensors');
    const args = ['synth', '--teacher', teacherDir, '--steps', '1', '--out', out];
    assert.equal(ladder(...args, '--n', '10').status, 0);
    const made = statSync(out).mtimeMs;
    const other = ladder(...args, '--n', '12');
    assert.equal(other.status, 1);
    assert.match(
      other.stderr,
      /cli\.safetensors was made with .*"count":10.*replace it with `ladder synth --force`/,
    );
    assert.equal(statSync(out).mtimeMs, made);
    const forced = ladder(...args, '--n', '12', '--force');
    assert.equal(forced.status, 0, forced.stderr);
    assert.equal(((await loadSynthetic(out)) as SyntheticSet).labels.length, 12);
  });

  it('refuses a file that is not a synthetic set', async () => {
    const file = join(root, 'other.safetensors');
    const t = tf.zeros([2, 2]);
    await saveTensors(file, { x: t });
    t.dispose();
    await assert.rejects(loadSynthetic(file), /not a synthetic latent set: make one with `ladder synth`/);
  });
});

describe("a caption teacher's synthetic prompts", () => {
  const captions = { source: 'captions' } as const;
  const bucket = (n: number, tag: string) => ({ texts: Array.from({ length: n }, (_, i) => `${tag} ${i}`) });

  it('fill `count` exactly over any number of buckets, in proportion to their captions, at least one each', () => {
    for (const [count, sizes] of [
      [11, [5, 5, 5]],
      [10000, [3, 3, 3, 3, 3, 3, 3]],
      [7, [100, 1, 1]],
      [4, [1, 1, 1, 1]],
    ] as const) {
      const prompts = synthPrompts(
        captions,
        count,
        0,
        sizes.map((n, k) => bucket(n, `b${k}`)),
      );
      assert.equal(prompts.flat().length, count, `${count} over [${sizes}]`);
      assert.ok(prompts.every((p) => p.length >= 1));
      for (const [k, p] of prompts.entries()) assert.ok(p.every((text) => text.startsWith(`b${k} `)));
    }
    const skewed = synthPrompts(captions, 100, 0, [bucket(90, 'a'), bucket(10, 'b')]);
    assert.deepEqual(
      skewed.map((p) => p.length),
      [89, 11], // one each, then the other 98 in proportion (88.2 and 9.8), largest remainders rounded up
    );
    assert.throws(
      () => synthPrompts(captions, 2, 0, [bucket(1, 'a'), bucket(1, 'b'), bucket(1, 'c')]),
      /at least 3/,
    );
  });
});
