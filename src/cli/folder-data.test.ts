// A folder of the user's own images through the real command line: a tiny pipeline end to end, and the bad inputs.
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { isPromptSet, loadSynthetic } from '../distill/shared/synth.js';
import { detokenize } from '../nn/text-encoder.js';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));

interface Run {
  readonly status: number | null;
  readonly stderr: string;
}

const ladder = (...args: string[]): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject).on('close', (status) => resolve({ status, stderr }));
  });

const ok = (run: Run): void => assert.equal(run.status, 0, run.stderr);

/** A 20x30 RGB PNG: a disc (class "discs") or a bar (class "bars") of a random colour on white. */
async function drawing(path: string, kind: 'discs' | 'bars', seed: number): Promise<void> {
  const [w, h] = [20, 30];
  const colour = [(seed * 73) % 256, (seed * 151) % 256, (seed * 29) % 256];
  const data = Buffer.alloc(w * h * 3, 255);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const inside = kind === 'discs' ? (x - 10) ** 2 + (y - 15) ** 2 < 49 : Math.abs(x - 10) < 3;
      if (inside) data.set(colour, (y * w + x) * 3);
    }
  }
  await writeFile(
    path,
    await sharp(data, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toBuffer(),
  );
}

let root = '';
let images = '';
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ladder-folder-cli-'));
  images = join(root, 'shapes');
  for (const kind of ['discs', 'bars'] as const) {
    await mkdir(join(images, kind), { recursive: true });
    for (let i = 0; i < 20; i++)
      await drawing(join(images, kind, `${i}.png`), kind, i + (kind === 'bars' ? 50 : 0));
  }
});

describe('ladder on a folder of images', () => {
  it('trains an autoencoder, a feature net and a teacher on 16x24 RGB, then samples and evaluates', async () => {
    const data = ['--data', images, '--size', '16x24'];
    const tiny = ['--iterations', '2', '--batch', '4', '--checkpoint-every', '1'];
    const ae = join(root, 'models', 'autoencoder');
    ok(await ladder('train-ae', ...data, '--channels', '8,8,8', ...tiny, '--out', ae));
    const aeConfig = JSON.parse(await readFile(join(ae, 'config.json'), 'utf8'));
    assert.deepEqual(aeConfig.autoencoder.imageShape, [24, 16, 3]);
    assert.deepEqual(aeConfig.dataset, {
      folder: images,
      size: [24, 16],
      fit: 'cover',
      background: [255, 255, 255],
      channels: 3,
    });
    const features = join(root, 'models', 'features');
    ok(
      await ladder(
        'train-features',
        ...data,
        '--channels',
        '8',
        '--feature-dim',
        '8',
        ...tiny,
        '--out',
        features,
      ),
    );
    const teacher = join(root, 'models', 'teacher');
    ok(
      await ladder(
        'train-teacher',
        '--ae',
        ae,
        '--channels',
        '8,8',
        '--blocks',
        '1',
        ...tiny,
        '--out',
        teacher,
      ),
    );
    const teacherConfig = JSON.parse(await readFile(join(teacher, 'config.json'), 'utf8'));
    assert.deepEqual(teacherConfig.classNames, ['bars', 'discs']);
    assert.deepEqual(teacherConfig.latentShape, [6, 4, 4]);

    const grid = join(root, 'discs.png');
    const sampled = await ladder(
      'sample',
      '--model',
      teacher,
      '--steps',
      '2',
      '--classes',
      'discs',
      '--n',
      '3',
      '--out',
      grid,
    );
    ok(sampled);
    assert.match(sampled.stderr, /rows: 1 discs/);
    const meta = await sharp(await readFile(grid)).metadata();
    assert.deepEqual(
      [meta.channels, meta.height],
      [3, 24 * 2 + 2 * 2],
      'one RGB row of 24-pixel images, doubled',
    );

    // The feature net beside the teacher is eval's default for a folder dataset.
    const evalJson = join(root, 'eval', 'teacher.json');
    ok(
      await ladder(
        'eval',
        '--model',
        teacher,
        '--steps',
        '2',
        '--samples',
        '12',
        '--bootstrap',
        '0',
        '--json',
        evalJson,
      ),
    );
    const result = JSON.parse(await readFile(evalJson, 'utf8'));
    assert.match(result.dataset, /^shapes-[0-9a-f]{8}$/);
    assert.ok(Number.isFinite(result.results[0].fid), JSON.stringify(result.results[0]));
  });

  it('refuses bad folders and sizes with a message, and writes no run folder', async () => {
    const cases: [string, string[], RegExp][] = [];
    await mkdir(join(root, 'empty'));
    cases.push([
      'empty folder',
      ['--data', join(root, 'empty')],
      /is empty: put PNG, JPEG or WebP images in it/,
    ]);
    await mkdir(join(root, 'notes'));
    await writeFile(join(root, 'notes', 'readme.txt'), 'x');
    cases.push([
      'no images',
      ['--data', join(root, 'notes')],
      /holds no PNG, JPEG or WebP images, only readme\.txt/,
    ]);
    await mkdir(join(root, 'broken'));
    for (let i = 0; i < 5; i++) await drawing(join(root, 'broken', `${i}.png`), 'discs', i);
    await writeFile(join(root, 'broken', 'cut.png'), 'PNG?');
    cases.push([
      'unreadable files',
      ['--data', join(root, 'broken')],
      /1 of 6 files .* could not be read as images .*cut\.png/,
    ]);
    await mkdir(join(root, 'classes', 'a'), { recursive: true });
    await mkdir(join(root, 'classes', 'b'), { recursive: true });
    await drawing(join(root, 'classes', 'a', '0.png'), 'bars', 1);
    cases.push([
      'empty class',
      ['--data', join(root, 'classes')],
      /class folder .*b has no PNG, JPEG or WebP images/,
    ]);
    await mkdir(join(root, 'singles', 'a'), { recursive: true });
    await mkdir(join(root, 'singles', 'b'), { recursive: true });
    await drawing(join(root, 'singles', 'a', '0.png'), 'bars', 2);
    await drawing(join(root, 'singles', 'b', '0.png'), 'discs', 3);
    cases.push(['no test images', ['--data', join(root, 'singles')], /the test split of .*singles is empty/]);
    cases.push([
      'size not a multiple',
      ['--data', images, '--size', '30'],
      /--size 30 is not a multiple of 4.*use --size 32/,
    ]);
    cases.push([
      'folder flags on mnist',
      ['--data', 'mnist', '--size', '32'],
      /--size apply to folder datasets only/,
    ]);
    cases.push([
      'missing folder',
      ['--data', join(root, 'nowhere')],
      /no such folder, and not a built-in dataset/,
    ]);
    cases.push(['bad size', ['--data', images, '--size', '16by24'], /--size must be N or WxH/]);
    for (const [name, args, message] of cases) {
      const run = await ladder('train-ae', ...args, '--iterations', '1', '--out', join(root, 'out', name));
      assert.equal(run.status, 1, `${name}: ${run.stderr}`);
      assert.match(run.stderr, message, name);
      assert.ok(!existsSync(join(root, 'out', name)), `${name}: no run folder`);
    }
  });

  it('trains a prompt-conditional teacher on the captions of metadata.jsonl, samples, scores and distils it', async () => {
    // Class folders too, so a feature net (a classifier) can be trained on it to score the captions.
    const captioned = join(root, 'captioned');
    const lines: string[] = [];
    // 20 a class: the test split (10%) holds 4, the fewest a reference takes.
    for (let i = 0; i < 40; i++) {
      const kind = i % 2 === 0 ? 'discs' : 'bars';
      await mkdir(join(captioned, kind), { recursive: true });
      await drawing(join(captioned, kind, `${i}.png`), kind, i);
      lines.push(
        JSON.stringify({
          file_name: `${kind}/${i}.png`,
          text: `a ${i % 4 < 2 ? 'dark' : 'bright'} ${kind.slice(0, -1)}`,
        }),
      );
    }
    await writeFile(join(captioned, 'metadata.jsonl'), `${lines.join('\n')}\n`);
    const tiny = ['--iterations', '2', '--batch', '4', '--checkpoint-every', '1'];
    const ae = join(root, 'captions', 'autoencoder');
    ok(
      await ladder(
        'train-ae',
        '--data',
        captioned,
        '--size',
        '16x24',
        '--channels',
        '8,8,8',
        ...tiny,
        '--out',
        ae,
      ),
    );
    const teacher = join(root, 'captions', 'teacher');
    ok(
      await ladder(
        'train-teacher',
        '--ae',
        ae,
        '--data',
        'captions',
        '--channels',
        '8,16',
        ...tiny,
        '--out',
        teacher,
      ),
    );
    const config = JSON.parse(await readFile(join(teacher, 'config.json'), 'utf8'));
    assert.deepEqual(config.prompts, { source: 'captions' });
    assert.equal(config.unet.text.maxTokens, 16);

    const npy = join(root, 'captions', 'disc.npy');
    ok(
      await ladder(
        'sample',
        '--model',
        teacher,
        '--prompt',
        'a dark disc',
        '--n',
        '2',
        '--steps',
        '2',
        '--out',
        npy,
      ),
    );
    const header = (await readFile(npy)).subarray(0, 128).toString('latin1');
    assert.match(header, /'shape': \(2, 24, 16, 3\)/);

    const synthetic = join(root, 'captions', 'synth.safetensors');
    ok(await ladder('synth', '--teacher', teacher, '--n', '6', '--steps', '2', '--out', synthetic));
    const student = join(root, 'captions', 'ladd');
    ok(
      await ladder(
        'distill',
        '--method',
        'ladd',
        '--teacher',
        teacher,
        '--synthetic',
        synthetic,
        '--steps',
        '1',
        '--batch',
        '2',
        '--iterations',
        '2',
        '--checkpoint-every',
        '1',
        '--out',
        student,
      ),
    );
    ok(
      await ladder(
        'sample',
        '--model',
        student,
        '--prompt',
        'a bright bar',
        '--n',
        '1',
        '--out',
        join(root, 'captions', 's.png'),
      ),
    );

    // Scored like a class model, with each test image's caption as the prompt and those images as the reference.
    const captionFeatures = join(root, 'captions', 'features');
    ok(
      await ladder(
        'train-features',
        '--data',
        captioned,
        '--size',
        '16x24',
        '--channels',
        '8',
        '--feature-dim',
        '8',
        ...tiny,
        '--out',
        captionFeatures,
      ),
    );
    const evalJson = join(root, 'captions', 'eval.json');
    ok(
      await ladder(
        'eval',
        '--model',
        teacher,
        '--steps',
        '1',
        '--samples',
        '6',
        '--bootstrap',
        '0',
        '--kid-subsets',
        '2',
        '--cache-dir',
        join(root, 'captions'),
        '--json',
        evalJson,
      ),
    );
    const scored = JSON.parse(await readFile(evalJson, 'utf8'));
    assert.equal(scored.prompts, 'test-split captions');
    assert.equal(scored.featureNetDir, captionFeatures);
    assert.ok(Number.isFinite(scored.results[0].fid));

    // A folder without captions says what to do.
    const shapesAe = join(root, 'captions', 'uncaptioned-ae');
    ok(
      await ladder(
        'train-ae',
        '--data',
        images,
        '--size',
        '16x24',
        '--channels',
        '8,8,8',
        ...tiny,
        '--out',
        shapesAe,
      ),
    );
    const none = await ladder(
      'train-teacher',
      '--ae',
      shapesAe,
      '--data',
      'captions',
      ...tiny,
      '--out',
      join(root, 'nocap'),
    );
    assert.equal(none.status, 1);
    assert.match(none.stderr, /has no captions: put a metadata\.jsonl beside its images/);
  });

  it('trains in aspect-ratio buckets: tall and wide images keep their shapes through the autoencoder, a caption teacher, synth and LADD', async () => {
    const folder = join(root, 'mixed');
    await mkdir(folder, { recursive: true });
    const lines: string[] = [];
    for (let i = 0; i < 20; i++) {
      const wide = i % 2 === 1;
      const file = join(folder, `${i}.png`);
      await drawing(file, 'bars', i);
      if (wide)
        await writeFile(
          file,
          await sharp(await readFile(file))
            .rotate(90)
            .png()
            .toBuffer(),
        );
      lines.push(JSON.stringify({ file_name: `${i}.png`, text: wide ? 'a wide bar' : 'a tall bar' }));
    }
    await writeFile(join(folder, 'metadata.jsonl'), `${lines.join('\n')}\n`);
    const tiny = ['--iterations', '2', '--batch', '4', '--checkpoint-every', '1'];
    const ae = join(root, 'mixed-models', 'autoencoder');
    const aeArgs = ['train-ae', '--data', folder, '--buckets', '16x24,24x16', '--channels', '8,8,8', ...tiny];
    ok(await ladder(...aeArgs, '--out', ae));
    const aeConfig = JSON.parse(await readFile(join(ae, 'config.json'), 'utf8'));
    assert.deepEqual(aeConfig.buckets, [
      [24, 16],
      [16, 24],
    ]);
    assert.deepEqual(aeConfig.autoencoder.imageShape, [24, 16, 3]);
    assert.deepEqual(aeConfig.dataset.size, [24, 16]);
    const aeCard = JSON.parse(await readFile(join(ae, 'card.json'), 'utf8'));
    // Ten of each shape: one of each held out.
    assert.deepEqual(aeCard.imagesPerBucket, { '16x24': 9, '24x16': 9 });
    assert.deepEqual(Object.keys(aeCard.metrics.testPsnrDbByGroup), ['16x24', '24x16']);

    const teacher = join(root, 'mixed-models', 'teacher');
    ok(
      await ladder(
        'train-teacher',
        '--ae',
        ae,
        '--data',
        'captions',
        '--channels',
        '8,16',
        ...tiny,
        '--out',
        teacher,
      ),
    );
    const config = JSON.parse(await readFile(join(teacher, 'config.json'), 'utf8'));
    assert.deepEqual(config.prompts, { source: 'captions', sizes: aeConfig.buckets });

    const synthetic = join(root, 'mixed-models', 'synth.safetensors');
    ok(await ladder('synth', '--teacher', teacher, '--n', '6', '--steps', '2', '--out', synthetic));
    const set = await loadSynthetic(synthetic);
    assert.ok(isPromptSet(set));
    // Latents 4x downsampled, each bucket with its own captions.
    assert.deepEqual(
      set.buckets.map((b) => [
        b.shape,
        b.tokens.length / set.maxTokens,
        detokenize(b.tokens.subarray(0, set.maxTokens)),
      ]),
      [
        [[6, 4, 4], 3, 'a tall bar'],
        [[4, 6, 4], 3, 'a wide bar'],
      ],
    );
    const student = join(root, 'mixed-models', 'ladd');
    ok(
      await ladder(
        'distill',
        '--method',
        'ladd',
        '--teacher',
        teacher,
        '--synthetic',
        synthetic,
        '--steps',
        '1',
        '--batch',
        '2',
        '--iterations',
        '2',
        '--out',
        student,
      ),
    );
    const npy = join(root, 'mixed-models', 'wide.npy');
    ok(
      await ladder(
        'sample',
        '--model',
        student,
        '--prompt',
        'a wide bar',
        '--latent-size',
        '4x6',
        '--n',
        '1',
        '--out',
        npy,
      ),
    );
    const header = (await readFile(npy)).subarray(0, 128).toString('latin1');
    assert.match(header, /'shape': \(1, 16, 24, 3\)/);

    const both = await ladder(
      'train-ae',
      '--data',
      folder,
      '--buckets',
      '16x24',
      '--size',
      '16',
      '--out',
      join(root, 'x'),
    );
    assert.equal(both.status, 1);
    assert.match(both.stderr, /--buckets sets the sizes .*: drop --size/);
    const builtIn = await ladder(
      'train-ae',
      '--data',
      'mnist',
      '--buckets',
      '28x28',
      '--out',
      join(root, 'x'),
    );
    assert.equal(builtIn.status, 1);
    assert.match(builtIn.stderr, /--buckets is for folder datasets: mnist has one image size/);
    const odd = await ladder(
      ...aeArgs.slice(0, 3),
      '--buckets',
      '16x24,18x12',
      '--channels',
      '8,8,8',
      '--out',
      join(root, 'x'),
    );
    assert.equal(odd.status, 1);
    assert.match(odd.stderr, /--buckets 18x12 is not a multiple of 4.*use --buckets 20x12/);
  });
});
