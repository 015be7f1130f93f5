// Every trainer's step reads nothing back to the host (on a GPU each read waits for the queue to drain): the
// autoencoder, teacher and feature-net trainers profiled over a few steps between log lines. The distillation
// methods are checked by their conformance suite (distill/methods.test.ts); the loop itself by loop.test.ts.
import * as assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { trainAutoencoder } from '../autoencoder/train.js';
import { trainFeatureNet } from '../eval/train-features.js';
import { FLOW_DEFAULTS, trainTeacher, VP_DEFAULTS } from '../teacher/train.js';
import { testBackend } from '../test-utils/backend.js';
import type { TrainResult } from './loop.js';

const STEPS = 3;
const quiet = { seed: 0, resume: false, checkpointEvery: 100, limit: 64, batchSize: 4, lr: 1e-3 };

/** Reads in the profiled steps (the trainers log every 10 steps: none falls among steps 2 to 4). */
function reads(result: TrainResult): number {
  assert.ok(result.profile, 'the trainer returned no profile');
  assert.equal(result.profile.iterations, STEPS);
  return Math.round(result.profile.reads * result.profile.iterations);
}

const AE_ARCH = { channels: [8, 8, 8], groups: 4 };
let root = '';
let aeDir = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-no-sync-'));
  aeDir = join(root, 'ae'); // a finished autoencoder for the teachers
  await trainAutoencoder({ ...quiet, dataset: 'mnist', outDir: aeDir, steps: 2, arch: AE_ARCH });
});

describe('trainer steps read nothing back to the host', () => {
  it('autoencoder', async () => {
    const result = await trainAutoencoder({
      ...quiet,
      dataset: 'mnist',
      outDir: join(root, 'ae-profiled'),
      steps: 20,
      arch: AE_ARCH,
      profile: STEPS,
    });
    assert.equal(reads(result), 0);
  });

  for (const formulation of [FLOW_DEFAULTS, VP_DEFAULTS]) {
    it(`teacher (${formulation.kind}, with label dropout)`, async () => {
      const result = await trainTeacher({
        ...quiet,
        aeDir,
        outDir: join(root, `teacher-${formulation.kind}`),
        formulation,
        steps: 20,
        labelDropout: 0.5,
        emaDecay: 0.9,
        unet: {
          channels: [8, 8],
          blocksPerLevel: 1,
          attentionLevels: [1],
          midAttention: true,
          groups: 4,
          heads: 2,
        },
        profile: STEPS,
      });
      assert.equal(reads(result), 0);
    });
  }

  it('feature net', async () => {
    const result = await trainFeatureNet({
      ...quiet,
      dataset: 'mnist',
      outDir: join(root, 'features'),
      steps: 20,
      maxShift: 2,
      emaDecay: 0.9,
      testLimit: 64,
      arch: { channels: [4, 8], featureDim: 16 },
      profile: STEPS,
    });
    assert.equal(reads(result), 0);
  });
});
