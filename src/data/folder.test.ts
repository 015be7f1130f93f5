import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { loadDataset, loadDatasetBuckets } from './dataset.js';
import type { FolderDatasetSpec } from './image-dataset.js';

type Rgba = readonly [number, number, number, number];

/** A PNG (or other format) of `width` x `height` filled by `pixel(x, y)`. */
async function imageFile(
  path: string,
  width: number,
  height: number,
  pixel: (x: number, y: number) => Rgba,
  format: 'png' | 'jpeg' | 'webp' = 'png',
): Promise<void> {
  const data = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 4);
  const image = sharp(data, { raw: { width, height, channels: 4 } });
  const bytes = await (format === 'png'
    ? image.png()
    : format === 'jpeg'
      ? image.flatten().jpeg({ quality: 95 })
      : image.webp({ lossless: true })
  ).toBuffer();
  await writeFile(path, bytes);
}

const solid = (rgba: Rgba) => (): Rgba => rgba;

let root = '';
let cacheDir = '';
const spec = (folder: string, extra: Partial<FolderDatasetSpec> = {}): FolderDatasetSpec => ({
  folder: join(root, folder),
  size: [6, 4],
  fit: 'cover',
  background: [255, 255, 255],
  ...extra,
});
const load = (s: FolderDatasetSpec, split: 'train' | 'test' = 'train') =>
  loadDataset(s, split, { cacheDir, progress: false });
/** The RGB of pixel (x, y) of image i, back in 0..255. */
const rgbAt = (images: Float32Array, i: number, x: number, y: number, h: number, w: number) =>
  [0, 1, 2].map((c) => Math.round((images[((i * h + y) * w + x) * 3 + c]! + 1) * 127.5));

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ladder-folder-'));
  cacheDir = join(root, 'cache');
  // Two classes of ten solid images, in three formats.
  for (const [name, colour] of [
    ['red', [230, 20, 20, 255]],
    ['blue', [20, 20, 230, 255]],
  ] as const) {
    await mkdir(join(root, 'labelled', name), { recursive: true });
    for (let i = 0; i < 10; i++) {
      const format = (['png', 'jpeg', 'webp'] as const)[i % 3]!;
      await imageFile(
        join(root, 'labelled', name, `${i}.${format === 'jpeg' ? 'jpg' : format}`),
        8,
        8,
        solid(colour),
        format,
      );
    }
  }
  await writeFile(
    join(root, 'labelled', 'metadata.jsonl'),
    `${JSON.stringify({ file_name: 'red/0.png', text: 'a red square' })}\n`,
  );
});

describe('folder datasets', () => {
  it('labels by subfolder, splits each class 90/10, resizes and keeps captions', async () => {
    const train = await load(spec('labelled'));
    const test = await load(spec('labelled'), 'test');
    assert.deepEqual(train.classNames, ['blue', 'red']);
    assert.deepEqual([train.height, train.width, train.channels], [6, 4, 3]);
    assert.deepEqual([train.count, test.count], [18, 2]);
    assert.deepEqual([...test.labels].sort(), [0, 1]);
    assert.equal(train.images.length, 18 * 6 * 4 * 3);
    for (let i = 0; i < train.count; i++) {
      const rgb = rgbAt(train.images, i, 2, 3, 6, 4);
      const want = train.labels[i] === 1 ? [230, 20, 20] : [20, 20, 230];
      assert.ok(
        rgb.every((v, c) => Math.abs(v - want[c]!) <= 3),
        `image ${i}: ${rgb} vs ${want}`,
      );
    }
    assert.deepEqual(train.spec, { ...spec('labelled'), channels: 3 });
    const captions = [...(train.texts ?? []), ...(test.texts ?? [])];
    assert.equal(captions.filter((t) => t === 'a red square').length, 1);
    assert.equal(captions.filter((t) => t === '').length, 19);
  });

  it('decodes once: a second load reads the cache, and changed content makes a new one', async () => {
    await mkdir(join(root, 'cached', 'a'), { recursive: true });
    await mkdir(join(root, 'cached', 'b'), { recursive: true });
    for (const c of ['a', 'b'])
      for (let i = 0; i < 3; i++)
        await imageFile(join(root, 'cached', c, `${i}.png`), 4, 4, solid([i * 50, 0, 0, 255]));
    const folderCache = join(cacheDir, 'folders');
    const before = existsSync(folderCache) ? (await readdir(folderCache)).length : 0;
    const first = await load(spec('cached'));
    const files = await readdir(folderCache);
    assert.equal(files.length, before + 1);
    const second = await load(spec('cached'));
    assert.deepEqual(second.images, first.images);
    assert.equal((await readdir(folderCache)).length, files.length, 'no second cache file');
    await imageFile(join(root, 'cached', 'a', '0.png'), 4, 4, solid([0, 255, 0, 255]));
    await load(spec('cached'));
    assert.equal((await readdir(folderCache)).length, files.length + 1, 'new content, new cache entry');
  });

  it('flattens alpha onto the background, pads with it (contain) or crops the centre (cover)', async () => {
    await mkdir(join(root, 'shapes'), { recursive: true });
    // 8 wide, 4 tall: left half red, right half transparent.
    for (let i = 0; i < 2; i++) {
      await imageFile(join(root, 'shapes', `${i}.png`), 8, 4, (x) =>
        x < 4 ? [255, 0, 0, 255] : [0, 0, 0, 0],
      );
    }
    const black: [number, number, number] = [0, 0, 0];
    const covered = await load(spec('shapes', { size: [4, 4], background: black }));
    // cover keeps the middle 4 columns: red, red, black, black
    assert.deepEqual(rgbAt(covered.images, 0, 0, 1, 4, 4), [255, 0, 0]);
    assert.deepEqual(rgbAt(covered.images, 0, 3, 1, 4, 4), [0, 0, 0]);
    const contained = await load(spec('shapes', { size: [8, 8], fit: 'contain', background: [0, 255, 0] }));
    // contain: the image fills rows 2..5, rows 0 and 7 are green padding; the transparent half is green too
    assert.deepEqual(rgbAt(contained.images, 0, 1, 0, 8, 8), [0, 255, 0]);
    assert.deepEqual(rgbAt(contained.images, 0, 1, 4, 8, 8), [255, 0, 0]);
    assert.deepEqual(rgbAt(contained.images, 0, 6, 4, 8, 8), [0, 255, 0]);
    assert.deepEqual(contained.classNames, ['shapes'], 'no subfolders: one class named after the folder');
  });

  it('numbers numeric class folders in numeric order and stores every class among the first images', async () => {
    for (const name of ['2', '10', '1']) {
      await mkdir(join(root, 'numbered', name), { recursive: true });
      for (let i = 0; i < 10; i++)
        await imageFile(join(root, 'numbered', name, `${i}.png`), 2, 2, solid([i, 0, 0, 255]));
    }
    const first = await loadDataset(spec('numbered', { size: [2, 2] }), 'train', {
      cacheDir,
      progress: false,
      limit: 9,
    });
    assert.deepEqual(first.classNames, ['1', '2', '10']);
    assert.equal(new Set(first.labels).size, 3, `labels of the first 9: ${[...first.labels]}`);
  });

  it('is grey when every image is grey, unless RGB is asked for', async () => {
    await mkdir(join(root, 'grey'), { recursive: true });
    for (let i = 0; i < 4; i++)
      await imageFile(join(root, 'grey', `${i}.png`), 4, 4, solid([100, 100, 100, 255]));
    const grey = await load(spec('grey', { size: [4, 4] }));
    assert.equal(grey.channels, 1);
    assert.equal(grey.images.length, grey.count * 16);
    assert.equal(Math.round((grey.images[0]! + 1) * 127.5), 100);
    assert.deepEqual(grey.spec, { ...spec('grey', { size: [4, 4] }), channels: 1 });
    const rgb = await load(spec('grey', { size: [4, 4], channels: 3 }));
    assert.equal(rgb.channels, 3);
  });

  it('skips a few unreadable files with a note, and fails when more than 1% are', async () => {
    await mkdir(join(root, 'few-bad'), { recursive: true });
    for (let i = 0; i < 120; i++)
      await imageFile(join(root, 'few-bad', `${i}.png`), 2, 2, solid([i, i, i, 255]));
    await writeFile(join(root, 'few-bad', 'broken.png'), 'not a png');
    const ds = await load(spec('few-bad', { size: [2, 2] }));
    assert.equal(ds.count + (await load(spec('few-bad', { size: [2, 2] }), 'test')).count, 120);

    await mkdir(join(root, 'many-bad'), { recursive: true });
    for (let i = 0; i < 8; i++)
      await imageFile(join(root, 'many-bad', `${i}.png`), 2, 2, solid([9, 9, 9, 255]));
    const good = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } })
      .png()
      .toBuffer();
    await writeFile(join(root, 'many-bad', 'truncated.png'), good.subarray(0, Math.floor(good.length * 0.6)));
    await writeFile(join(root, 'many-bad', 'text.jpg'), 'hello');
    await assert.rejects(
      load(spec('many-bad', { size: [2, 2] })),
      /2 of 10 files .* could not be read.*text\.jpg.*truncated\.png/s,
    );
  });

  it('refuses an empty folder, a folder of non-images, an empty class and loose images beside classes', async () => {
    await mkdir(join(root, 'empty'), { recursive: true });
    await assert.rejects(load(spec('empty')), /is empty: put PNG, JPEG or WebP images in it/);
    await mkdir(join(root, 'texts'), { recursive: true });
    await writeFile(join(root, 'texts', 'a.txt'), 'x');
    await writeFile(join(root, 'texts', 'b.gif'), 'x');
    await assert.rejects(load(spec('texts')), /holds no PNG, JPEG or WebP images, only a\.txt, b\.gif/);
    await mkdir(join(root, 'hollow', 'cats'), { recursive: true });
    await mkdir(join(root, 'hollow', 'dogs'), { recursive: true });
    await imageFile(join(root, 'hollow', 'cats', '0.png'), 2, 2, solid([1, 2, 3, 255]));
    await assert.rejects(load(spec('hollow')), /class folder .*dogs has no PNG, JPEG or WebP images/);
    await imageFile(join(root, 'hollow', 'dogs', '0.png'), 2, 2, solid([1, 2, 3, 255]));
    await imageFile(join(root, 'hollow', 'stray.png'), 2, 2, solid([1, 2, 3, 255]));
    await assert.rejects(load(spec('hollow')), /also images outside them \(stray\.png\)/);
    await assert.rejects(load(spec('missing')), /dataset folder .*missing does not exist/);
  });

  it('refuses a metadata.jsonl line that is not JSON or names a missing image', async () => {
    await mkdir(join(root, 'meta'), { recursive: true });
    for (let i = 0; i < 2; i++) await imageFile(join(root, 'meta', `${i}.png`), 2, 2, solid([5, 5, 5, 255]));
    await writeFile(join(root, 'meta', 'metadata.jsonl'), '{"file_name": "0.png", "text": "ok"}\n{oops\n');
    await assert.rejects(load(spec('meta')), /metadata\.jsonl line 2 is not JSON/);
    await writeFile(join(root, 'meta', 'metadata.jsonl'), '{"file_name": "7.png", "text": "gone"}\n');
    await assert.rejects(load(spec('meta')), /line 1 names 7\.png, which is not an image/);
  });
});

describe('a folder in aspect-ratio buckets', () => {
  it('sends each image to the size nearest its aspect ratio and holds out what the folder at one size holds out', async () => {
    const folder = join(root, 'mixed');
    await mkdir(join(folder, 'a'), { recursive: true });
    await mkdir(join(folder, 'b'), { recursive: true });
    const lines: string[] = [];
    for (let i = 0; i < 40; i++) {
      const name = `${i % 2 === 0 ? 'a' : 'b'}/${i}.png`;
      // Tall 8x12, wide 12x8, and a few near-square 10x9 (nearer the wide bucket).
      const [w, h] = i % 3 === 0 ? [8, 12] : i % 3 === 1 ? [12, 8] : [10, 9];
      await imageFile(join(folder, name), w, h, solid([i * 6, 100, 200, 255]));
      lines.push(JSON.stringify({ file_name: name, text: `image ${i}` }));
    }
    await writeFile(join(folder, 'metadata.jsonl'), `${lines.join('\n')}\n`);
    const sizes: [number, number][] = [
      [6, 4],
      [4, 6],
    ];
    const s = spec('mixed');
    const opts = { cacheDir, progress: false };
    const [tall, wide] = await loadDatasetBuckets(s, sizes, 'train', opts);
    const [tallTest, wideTest] = await loadDatasetBuckets(s, sizes, 'test', opts);
    assert.deepEqual([tall!.height, tall!.width, wide!.height, wide!.width], [6, 4, 4, 6]);
    const index = (text: string) => Number(text.split(' ')[1]);
    const tallImages = [...tall!.texts!, ...tallTest!.texts!].map(index).sort((x, y) => x - y);
    assert.deepEqual(
      tallImages,
      Array.from({ length: 14 }, (_, k) => 3 * k),
    );
    assert.equal(tall!.count + wide!.count + tallTest!.count + wideTest!.count, 40);
    // The same test images as the folder loaded at one size (what train-features and eval read).
    const single = await loadDataset(s, 'test', opts);
    assert.deepEqual([...tallTest!.texts!, ...wideTest!.texts!].sort(), [...single.texts!].sort());
    assert.ok(single.count >= 4);
  });
});
