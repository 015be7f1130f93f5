// The shipped models give the samples they gave when this file's fixture was recorded: a refactor of the
// networks, denoisers or samplers that changes what a model generates fails here. Regenerate the fixture only
// for an intended change: LADDER_RECORD_SAMPLES=1 npx tsx --test src/models/shipped-samples.test.ts
import * as assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { type LoadedDiffusionModel, loadDiffusionModel } from './folder.js';
import { defaultSampler, latentChunks } from './pipeline.js';

const FIXTURE = new URL('./fixtures/shipped-samples.json', import.meta.url);
const RECORD = process.env.LADDER_RECORD_SAMPLES === '1';

// Every shipped diffusion model at each of its step counts (the teacher at few steps and at its default).
const CASES: readonly { readonly dir: string; readonly steps: readonly number[] }[] = [
  { dir: 'models/mnist/teacher', steps: [1, 4, 32] },
  { dir: 'models/mnist/ladd', steps: [1, 4] },
  { dir: 'models/mnist/ladd-4step', steps: [2, 4] },
  { dir: 'models/mnist/ladd-1step', steps: [1] },
  { dir: 'models/mnist/add-4step', steps: [1, 4] },
  { dir: 'models/mnist/padd/stage-8', steps: [8] },
  { dir: 'models/mnist/padd/stage-4', steps: [4] },
  { dir: 'models/mnist/padd/stage-1', steps: [1] },
  { dir: 'models/mnist/padd-1step', steps: [1] },
];
const LABELS = Int32Array.from([3, 8]);
const SEED = 7;

type Fixture = Record<string, number[]>;

let recorded: Fixture = {};
const made: Fixture = {};
before(async () => {
  await testBackend();
  if (!RECORD) recorded = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Fixture;
});
after(() => {
  if (RECORD) writeFileSync(FIXTURE, `${JSON.stringify(made)}\n`);
});

describe('shipped models', () => {
  for (const { dir, steps } of CASES) {
    it(`${dir} samples as recorded at ${steps.join(', ')} steps (default sampler and cfg)`, async () => {
      const model: LoadedDiffusionModel = await loadDiffusionModel(dir);
      try {
        for (const n of steps) {
          const key = `${dir}@${n}`;
          const [chunk] = [
            ...latentChunks(model, {
              labels: LABELS,
              steps: n,
              cfg: model.config.sampling.cfg,
              sampler: defaultSampler(model.config),
              seed: SEED,
            }),
          ];
          const values = Array.from(await chunk!.tensor.data(), (v) => Number(v.toPrecision(7)));
          chunk!.tensor.dispose();
          made[key] = values;
          if (RECORD) continue;
          const expected = recorded[key];
          assert.ok(expected, `no recorded samples for ${key}`);
          assert.equal(values.length, expected.length);
          // Latents are O(1): 1e-4 absorbs backend and batch-blocking rounding, not a changed computation.
          let worst = 0;
          values.forEach((v, i) => {
            worst = Math.max(worst, Math.abs(v - expected[i]!));
          });
          assert.ok(worst < 1e-4, `${key}: largest difference ${worst} from the recorded samples`);
        }
      } finally {
        disposeParams(model.params);
        disposeParams(model.autoencoder.params);
      }
    });
  }
});
