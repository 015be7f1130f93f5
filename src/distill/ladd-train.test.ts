import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { ArraySource } from '../data/loader.js';
import { decodeSafetensors } from '../io/safetensors.js';
import { loadDiffusionModel } from '../models/folder.js';
import { defaultSampler, generateImages } from '../models/pipeline.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { readRunLog } from '../test-utils/run-log.js';
import {
  tinyTeacherConfig,
  tinyUNetParams,
  writeFolders,
  writeTinyTeacher,
} from '../test-utils/tiny-models.js';
import { latestCheckpointStep } from '../train/checkpoint.js';
import { tinyLaddOptions } from './fixtures/tiny-ladd-run.js';
import { makeTinyTeacher } from './fixtures/tiny-teacher.js';
import { distillLadd } from './ladd-train.js';
import { trainingLatents } from './shared/latents.js';
import { loadSynthetic, saveSynthetic, synthesize } from './shared/synth.js';

const fixture = fileURLToPath(new URL('./fixtures/tiny-ladd-run.ts', import.meta.url));
const ITERATIONS = 8;

let root = '';
let teacherDir = '';
let synthFile = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-distill-'));
  teacherDir = await makeTinyTeacher(root);
  synthFile = join(root, 'synth.safetensors');
  const teacher = await loadDiffusionModel(teacherDir);
  await synthesize({
    teacher,
    teacherDir,
    outFile: synthFile,
    settings: { count: 16, steps: 2, cfg: 2, sampler: 'euler', seed: 0 },
  });
  disposeParams(teacher.params);
  disposeParams(teacher.autoencoder.params);
});

const weights = async (dir: string) =>
  decodeSafetensors(await readFile(join(dir, 'weights.safetensors'))).tensors;

describe('distill --method ladd (tiny, end to end)', () => {
  const whole = (): string => join(root, 'whole');

  it('finishes without NaN, logs every metric, and writes a student that samples at 4, 2 and 1 steps', async () => {
    const result = await distillLadd(tinyLaddOptions(teacherDir, synthFile, whole(), ITERATIONS, false));
    assert.equal(result.completedSteps, ITERATIONS);
    const log = await readRunLog(whole());
    assert.equal(log.length, ITERATIONS);
    for (const line of log) {
      for (const key of ['generatorLoss', 'discriminatorLoss', 'realLogit', 'fakeLogit', 'msPerStep']) {
        assert.ok(Number.isFinite(line[key]), `log line ${JSON.stringify(line)} lacks a finite ${key}`);
      }
    }

    const student = await loadDiffusionModel(whole());
    const { config } = student;
    assert.equal(config.kind, 'student');
    assert.equal(config.autoencoder, '../ae');
    assert.deepEqual(config.sampling, { steps: [4, 2, 1], cfg: 1 });
    assert.equal(config.prediction, 'formulation');
    assert.equal(config.distill?.method, 'ladd');
    assert.equal(config.distill?.teacher, '../teacher');
    assert.equal((config.distill as { steps?: unknown } | undefined)?.steps, 4);
    const card = JSON.parse(await readFile(join(whole(), 'card.json'), 'utf8'));
    assert.equal(card.method, 'ladd');
    assert.equal(card.steps, ITERATIONS);
    assert.equal(card.segments, undefined, 'a run trained by one process needs no segment list');
    for (const steps of [4, 2, 1]) {
      const images = generateImages(student, {
        labels: Int32Array.from([0, 3, 9]),
        steps,
        cfg: 1,
        sampler: defaultSampler(config),
        seed: 2,
      });
      assert.deepEqual(images.shape, [3, 28, 28, 1]);
      assert.equal(
        tf.tidy(() => images.isNaN().sum().dataSync()[0]),
        0,
        `NaN in ${steps}-step samples`,
      );
      images.dispose();
    }
    disposeParams(student.params);
    disposeParams(student.autoencoder.params);
    await assert.rejects(
      distillLadd(tinyLaddOptions(teacherDir, synthFile, whole(), ITERATIONS, false)),
      /already holds a finished model/,
    );
  });

  it("trains on real latents (the dataset encoded by the teacher's autoencoder) when asked", async () => {
    const out = join(root, 'real');
    const base = tinyLaddOptions(teacherDir, synthFile, out, 2, false);
    await distillLadd({ ...base, config: { ...base.config, data: 'real' }, limit: 8 });
    const card = JSON.parse(await readFile(join(out, 'card.json'), 'utf8'));
    assert.deepEqual(card.data, { kind: 'real', dataset: 'mnist', count: 8 });
    assert.ok(!existsSync(join(out, 'synthetic.safetensors')));
  });

  it('the card of a run continued with other flags lists each segment and the settings it changed', async () => {
    const out = join(root, 'curriculum');
    const first = tinyLaddOptions(teacherDir, synthFile, out, 2, false);
    await distillLadd(first);
    // The second process also reads the synthetic set from another file: the data is part of the settings.
    const otherSynthFile = join(root, 'synthetic-copy.safetensors');
    await copyFile(synthFile, otherSynthFile);
    const second = tinyLaddOptions(teacherDir, otherSynthFile, out, 4, true);
    await distillLadd({ ...second, config: { ...second.config, probs: [1, 0, 0, 0] } });
    const card = JSON.parse(await readFile(join(out, 'card.json'), 'utf8'));
    assert.equal(card.steps, 4);
    assert.deepEqual(
      card.segments.map((s: { fromStep: number; toStep: number }) => [s.fromStep, s.toStep]),
      [
        [0, 2],
        [2, 4],
      ],
    );
    assert.deepEqual(Object.keys(card.segments[1].changed).sort(), ['iterations', 'probs', 'trainingSet']);
    assert.deepEqual(card.segments[1].changed.probs.to, [1, 0, 0, 0]);
    assert.equal(card.segments[1].changed.trainingSet.from.file, synthFile);
    assert.equal(card.segments[1].changed.trainingSet.to.file, otherSynthFile);
    assert.equal(card.data.file, otherSynthFile);
  });

  it('trains only on a synthetic set made by its teacher (or one it was distilled from); an unrecorded set warns', async () => {
    const otherDir = await writeTinyTeacher(join(root, 'other'), {
      seed: 11,
      sampling: { steps: [4], cfg: 2 },
    });
    const other = await loadDiffusionModel(otherDir);
    const source = { teacherDir: otherDir, outDir: join(root, 'other-run'), syntheticFile: synthFile };
    try {
      await assert.rejects(
        trainingLatents(source, 'synthetic', other),
        /synth\.safetensors was made by teacher .*\/teacher \(weights sha256 [0-9a-f]{12}, autoencoder .*\), not by .*other\/teacher .*: make a set for this teacher \(`ladder synth --teacher/,
      );
      // A student heading a new ladder trains on the set of the teacher it was distilled from.
      await writeFolders(root, [
        [
          'distilled',
          tinyTeacherConfig({ kind: 'student', distill: { method: 'ladd', teacher: '../teacher' } }),
          tinyUNetParams(new Rng(5)),
        ],
      ]);
      const student = await loadDiffusionModel(join(root, 'distilled'));
      const fromRoot = await trainingLatents(
        { ...source, teacherDir: join(root, 'distilled') },
        'synthetic',
        student,
      );
      disposeParams(student.params);
      disposeParams(student.autoencoder.params);
      assert.equal((fromRoot as ArraySource).labels.length, 16);
      // Written by an older ladder: accepted, with a warning on stderr.
      const old = join(root, 'unrecorded.safetensors');
      const { madeBy: _madeBy, ...unrecorded } = await loadSynthetic(synthFile);
      await saveSynthetic(old, unrecorded);
      const write = process.stderr.write;
      let warning = '';
      process.stderr.write = ((chunk: string | Uint8Array) => {
        warning += String(chunk);
        return true;
      }) as typeof process.stderr.write;
      let latents: Awaited<ReturnType<typeof trainingLatents>>;
      try {
        latents = await trainingLatents({ ...source, syntheticFile: old }, 'synthetic', other);
      } finally {
        process.stderr.write = write;
      }
      assert.equal((latents as ArraySource).labels.length, 16);
      assert.match(warning, /unrecorded\.safetensors does not record which teacher made it/);
    } finally {
      disposeParams(other.params);
      disposeParams(other.autoencoder.params);
    }
  });

  it('a run killed with SIGKILL resumes and ends with the same student as the uninterrupted run', async () => {
    const killed = join(root, 'killed');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fixture, teacherDir, synthFile, killed, String(ITERATIONS), '--kill-at', '4'],
      { stdio: 'ignore' },
    );
    const signal = await new Promise((r) => child.once('exit', (_code, sig) => r(sig)));
    assert.equal(signal, 'SIGKILL');
    const stoppedAt = await latestCheckpointStep(killed);
    assert.ok(stoppedAt !== undefined && stoppedAt >= 4 && stoppedAt < ITERATIONS, `stopped at ${stoppedAt}`);
    assert.ok(!existsSync(join(killed, 'config.json')));

    await distillLadd(tinyLaddOptions(teacherDir, synthFile, killed, ITERATIONS, true));
    const log = await readRunLog(killed);
    assert.ok(log.some((l) => l.event === 'resume'));
    const a = await weights(whole());
    const b = await weights(killed);
    assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
    for (const [name, rec] of Object.entries(a)) {
      assert.deepEqual(Array.from(b[name]!.data), Array.from(rec.data), `${name} differs after resume`);
    }
  });
});
