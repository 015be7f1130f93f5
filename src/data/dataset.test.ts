import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadDataset } from './dataset.js';
import type { ImageDataset } from './image-dataset.js';

const hasFashion = existsSync('/usr/share/datasets/fashion-mnist');

function assertWellFormed(ds: ImageDataset): void {
  assert.equal(ds.labels.length, ds.count);
  assert.equal(ds.images.length, ds.count * ds.height * ds.width * ds.channels);
  assert.equal(ds.classNames.length, ds.numClasses);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of ds.images) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  assert.ok(min >= -1 && max <= 1, `values in [${min}, ${max}]`);
  assert.ok(ds.labels.every((l) => l >= 0 && l < ds.numClasses));
}

describe('loadDataset', () => {
  it('loads MNIST train and test with published sizes and the first labels', async () => {
    const train = await loadDataset('mnist', 'train', { limit: 200 });
    assert.equal(train.count, 200);
    assert.deepEqual([train.height, train.width, train.channels, train.numClasses], [28, 28, 1, 10]);
    assertWellFormed(train);
    // The first training digits of MNIST are 5 0 4 1 9 2 1 3 1 4.
    assert.deepEqual([...train.labels.subarray(0, 10)], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    // Background is black (-1) and strokes reach white (+1).
    assert.equal(train.images[0], -1);
    assert.ok(train.images.subarray(0, 784).some((v) => v === 1));
    assert.equal(new Set(train.labels).size, 10);

    const test = await loadDataset('mnist', 'test');
    assert.equal(test.count, 10000);
    assertWellFormed(test);
    assert.deepEqual([...test.labels.subarray(0, 5)], [7, 2, 1, 0, 4]);
  });

  it('loads Fashion-MNIST', {
    skip: hasFashion ? false : 'dataset-fashion-mnist is not installed',
  }, async () => {
    const ds = await loadDataset('fashion-mnist', 'test', { limit: 50 });
    assert.equal(ds.count, 50);
    assert.deepEqual([ds.height, ds.width, ds.channels], [28, 28, 1]);
    assert.equal(ds.classNames[9], 'Ankle boot');
    assertWellFormed(ds);
    // The first test items of Fashion-MNIST are Ankle boot, Pullover, Trouser.
    assert.deepEqual([...ds.labels.subarray(0, 3)], [9, 2, 1]);
    const train = await loadDataset('fashion-mnist', 'train', { limit: 5 });
    assert.deepEqual([...train.labels], [9, 0, 0, 3, 0]);
  });

  it('loads emoji, writes a cache and reads it back identically', async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'ladder-emoji-'));
    try {
      const first = await loadDataset('emoji', 'train', { limit: 40, cacheDir });
      assert.equal(first.count, 40);
      assert.deepEqual([first.height, first.width, first.channels], [32, 32, 3]);
      assert.equal(first.numClasses, 9);
      assert.deepEqual([...first.classNames], [...first.classNames].sort());
      assert.ok(!first.classNames.includes('Component'));
      assert.match(first.credit ?? '', /CC BY 4\.0/);
      assertWellFormed(first);
      // Composited on white: each image's corner pixel is white.
      assert.deepEqual([...first.images.subarray(0, 3)], [1, 1, 1]);

      const cacheFile = (await readdir(cacheDir))[0] ?? '';
      assert.ok(cacheFile.endsWith('.safetensors'), cacheFile);
      const cachedAt = (await stat(join(cacheDir, cacheFile))).mtimeMs;
      const second = await loadDataset('emoji', 'train', { limit: 40, cacheDir });
      assert.equal((await stat(join(cacheDir, cacheFile))).mtimeMs, cachedAt); // read, not rebuilt
      assert.deepEqual(second.images, first.images);
      assert.deepEqual(second.labels, first.labels);

      // The split is about 90/10.
      const train = await loadDataset('emoji', 'train', { cacheDir });
      const test = await loadDataset('emoji', 'test', { cacheDir });
      const share = test.count / (train.count + test.count);
      assert.ok(share > 0.07 && share < 0.13, `test share ${share}`);
      assert.ok(train.count + test.count > 1800);
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
    }
  });

  it('loads the Noto artwork of the same catalogue: same classes, the same emoji in each split, other pixels', async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'ladder-emoji-'));
    try {
      const [twemoji, noto] = await Promise.all(
        (['emoji', 'emoji-noto'] as const).map((name) => loadDataset(name, 'test', { cacheDir })),
      );
      assertWellFormed(noto!);
      assert.match(noto!.credit ?? '', /Noto Emoji .*Apache License 2\.0/);
      assert.deepEqual(noto!.classNames, twemoji!.classNames);
      assert.equal(noto!.count, twemoji!.count);
      assert.deepEqual(noto!.labels, twemoji!.labels);
      let differing = 0;
      for (let i = 0; i < noto!.images.length; i++) if (noto!.images[i] !== twemoji!.images[i]) differing++;
      assert.ok(differing > noto!.images.length / 2, `${differing} of ${noto!.images.length} values differ`);
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
    }
  });

  it('names the known datasets for an unknown one and checks options', async () => {
    await assert.rejects(
      loadDataset('cifar', 'train'),
      /unknown dataset "cifar": choose one of mnist, fashion-mnist, emoji/,
    );
    await assert.rejects(
      loadDataset('mnist', 'train', { limit: 0 }),
      /limit must be a positive integer, got 0/,
    );
  });
});
