// `ladder sample` through the real command line, on tiny untrained models: chunked output equal to the
// all-at-once generation, overwrite refusal, and inputs rejected before any work.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { guidedDenoiser } from '../diffusion/denoiser.js';
import { makeFormulation } from '../diffusion/formulation.js';
import { toUint8Images } from '../image/bytes.js';
import { decodeNpy } from '../io/npy.js';
import { type LoadedDiffusionModel, loadDiffusionModel } from '../models/folder.js';
import { balancedLabels, modelDenoiser } from '../models/pipeline.js';
import { decodeLatents } from '../nn/autoencoder.js';
import { disposeParams } from '../nn/params.js';
import { nullCondition } from '../nn/unet.js';
import { type SamplerKind, sample, samplerTimes } from '../samplers/sample.js';
import { assertBytesClose, pngPixels, testBackend } from '../test-utils/backend.js';
import {
  DIGITS,
  TINY_UNET,
  tinyTeacherConfig,
  tinyUNetParams,
  writeFolders,
  writeTinyTeacher,
} from '../test-utils/tiny-models.js';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));
const ladder = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', main, ...args], {
    encoding: 'utf8',
    env: { ...process.env },
  });

let root = '';
let teacher = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-sample-'));
  teacher = await writeTinyTeacher(root);
});
after(() => rm(root, { recursive: true, force: true }));

/**
 * What `sample` wrote before it streamed: noise per batch of 100 from one Rng(seed), every latent decoded in one
 * call, then converted to bytes. Kept here, independent of the chunked code, as the reference.
 */
async function allAtOnce(
  model: LoadedDiffusionModel,
  labels: Int32Array,
  steps: number,
  sampler: SamplerKind,
  seed: number,
): Promise<Uint8Array> {
  const { config } = model;
  const f = makeFormulation(config.formulation);
  const denoise = guidedDenoiser(modelDenoiser(model), config.sampling.cfg, (b) =>
    nullCondition(config.unet, b),
  );
  const times = samplerTimes(f, steps);
  const rng = new Rng(seed);
  const parts: tf.Tensor4D[] = [];
  for (let start = 0; start < labels.length; start += 100) {
    const chunk = labels.subarray(start, Math.min(labels.length, start + 100));
    parts.push(
      tf.tidy(() => {
        const noise = randn(rng, [chunk.length, ...config.latentShape]) as tf.Tensor4D;
        return sample(sampler, denoise, f, noise, { times, labels: tf.tensor1d(chunk, 'int32'), rng });
      }),
    );
  }
  const ae = model.autoencoder;
  const images = tf.tidy(() =>
    decodeLatents(ae.params, ae.config.autoencoder, tf.concat(parts) as tf.Tensor4D).clipByValue(-1, 1),
  );
  tf.dispose(parts);
  const bytes = await toUint8Images(images as tf.Tensor4D);
  images.dispose();
  return bytes;
}

const npyPixels = async (file: string): Promise<Uint8Array> =>
  decodeNpy(await readFile(file)).data as Uint8Array;

describe('ladder sample', () => {
  it('streams in chunks: the images equal the all-at-once generation and do not depend on --batch', async () => {
    const model = await loadDiffusionModel(teacher);
    try {
      // 130 images: two chunks at the default --batch (100); the euler teacher and the stochastic few-step sampler.
      const labels = balancedLabels([...DIGITS.keys()], 130);
      for (const sampler of ['euler', 'few-step'] as const) {
        const out = join(root, `${sampler}.npy`);
        const r = ladder(
          'sample',
          '--model',
          teacher,
          '--n',
          '130',
          '--sampler',
          sampler,
          '--seed',
          '3',
          '--out',
          out,
        );
        assert.equal(r.status, 0, r.stderr);
        const want = await allAtOnce(model, labels, 2, sampler, 3);
        assertBytesClose(await npyPixels(out), want, `${sampler}: chunked images differ from all-at-once`);
        assert.deepEqual(decodeNpy(await readFile(join(root, `${sampler}.labels.npy`))).data, labels);
      }
    } finally {
      disposeParams(model.params);
      disposeParams(model.autoencoder.params);
    }
    // An ODE sampler only draws the starting noise, so chunks of 7 give the same images as one chunk.
    const small = join(root, 'small-chunks.npy');
    const r = ladder(
      'sample',
      '--model',
      teacher,
      '--n',
      '130',
      '--seed',
      '3',
      '--batch',
      '7',
      '--out',
      small,
    );
    assert.equal(r.status, 0, r.stderr);
    assertBytesClose(
      await npyPixels(small),
      await npyPixels(join(root, 'euler.npy')),
      'chunks of 7 differ from chunks of 100',
    );
    const grids: Buffer[] = [];
    for (const batch of ['3', '1000']) {
      const png = join(root, `grid-${batch}.png`);
      const g = ladder('sample', '--model', teacher, '--n', '2', '--batch', batch, '--out', png);
      assert.equal(g.status, 0, g.stderr);
      grids.push(await readFile(png));
    }
    assertBytesClose(pngPixels(grids[0]!), pngPixels(grids[1]!), 'the grid depends on --batch');
  });

  it('refuses to overwrite --out (or its .labels.npy) unless --force is given', async () => {
    const out = join(root, 'kept.png');
    await writeFile(out, 'precious');
    const r = ladder('sample', '--model', teacher, '--n', '1', '--out', out);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /kept\.png already exists: pass --force to overwrite, or choose another --out/);
    assert.equal(await readFile(out, 'utf8'), 'precious');

    const npy = join(root, 'kept.npy');
    await writeFile(join(root, 'kept.labels.npy'), 'precious');
    const labels = ladder('sample', '--model', teacher, '--n', '1', '--out', npy);
    assert.equal(labels.status, 1);
    assert.match(labels.stderr, /kept\.labels\.npy already exists/);
    assert.ok(!existsSync(npy));

    const forced = ladder('sample', '--model', teacher, '--n', '1', '--out', out, '--force');
    assert.equal(forced.status, 0, forced.stderr);
    assert.notEqual(await readFile(out, 'utf8'), 'precious');
  });

  it('rejects bad values when parsing, before loading the model', () => {
    const out = join(root, 'bad.png');
    for (const [flag, value, message] of [
      ['--n', '0', /--n must be an integer >= 1, got "0"/],
      ['--classes', '9-0', /--classes: range "9-0" runs backwards; write 0-9/],
      ['--latent-size', '0x0', /--latent-size: height and width must be at least 1, got "0x0"/],
      ['--cfg', '1e308', /--cfg must be a number from 0 to 100, got "1e308"/],
      ['--batch', '0', /--batch must be an integer >= 1, got "0"/],
    ] as const) {
      const r = ladder('sample', '--model', join(root, 'no-such-model'), flag, value, '--out', out);
      assert.equal(r.status, 1, `${flag} ${value} was accepted`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /concat|no-such-model/, `${flag} ${value} got past parsing`);
    }
    assert.ok(!existsSync(out));
  });

  it('refuses a latent size or a --batch whose memory cannot fit, before generating', async () => {
    const out = join(root, 'huge.npy');
    const wide = ladder('sample', '--model', teacher, '--latent-size', '100000x100000', '--out', out);
    assert.equal(wide.status, 1);
    assert.match(
      wide.stderr,
      /latent size 100000x100000 needs about \d+ GB per image .*choose a smaller --latent-size/,
    );
    const batch = ladder('sample', '--model', teacher, '--n', '1000000', '--batch', '1000000', '--out', out);
    assert.equal(batch.status, 1);
    assert.match(batch.stderr, /--batch 1000000 needs about [\d.]+ GB .*: use --batch \d+ or less/);
    // A chunk holds at most --n images: one 40x40 image fits where the default --batch of 100 would not.
    const big = ladder('sample', '--model', teacher, '--latent-size', '40x40', '--n', '200', '--out', out);
    assert.equal(big.status, 1);
    assert.match(big.stderr, /--batch 100 needs about [\d.]+ GB .*: use --batch \d+ or less/);
    const one = join(root, 'one-large.npy');
    const single = ladder('sample', '--model', teacher, '--latent-size', '40x40', '--n', '1', '--out', one);
    assert.equal(single.status, 0, single.stderr);
    assert.equal(decodeNpy(await readFile(one)).shape[0], 1);
    const many = ladder('sample', '--model', teacher, '--n', '10000000', '--out', join(root, 'huge.png'));
    assert.equal(many.status, 1);
    assert.match(many.stderr, /--n 10000000 makes a \.png of about \d+ GB in memory, above the 2 GB cap/);
    assert.ok(!existsSync(out) && !existsSync(join(root, 'huge.png')));
  });

  it('fails on NaN or infinite output, naming the model and step count, and writes nothing', async () => {
    const diverging = join(root, 'diverging');
    await writeTinyTeacher(diverging, { jitter: 1e20 });
    const out = join(root, 'nan.npy');
    const r = ladder(
      'sample',
      '--model',
      join(diverging, 'teacher'),
      '--n',
      '4',
      '--steps',
      '3',
      '--out',
      out,
    );
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /diverging\/teacher made NaN or infinite latents at 3 sampling steps \(cfg 1, euler sampler\)/,
    );
    assert.ok(!existsSync(out) && !existsSync(join(root, 'nan.labels.npy')));
  });

  it('samples every class of the model by default (a 9-class model)', async () => {
    const nine = join(root, 'nine');
    await writeFolders(nine, [
      [
        'teacher',
        tinyTeacherConfig({
          autoencoder: '../../ae',
          classNames: DIGITS.slice(0, 9),
          unet: { ...TINY_UNET, numClasses: 9 },
        }),
        tinyUNetParams(new Rng(1), 0.1, { ...TINY_UNET, numClasses: 9 }),
      ],
    ]);
    const r = ladder('sample', '--model', join(nine, 'teacher'), '--n', '2', '--out', join(root, 'nine.png'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /18 images/);
  });
});
