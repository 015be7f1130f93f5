import * as assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '../core/tf.js';
import { signedToByte, toUint8Images } from './bytes.js';
import { decodePng, imageGridPng, writeImageGrid } from './png.js';

/** RGBA pixel at (x, y) of a decoded PNG. */
const pixel = (png: ReturnType<typeof decodePng>, x: number, y: number): number[] => {
  const i = (y * png.width + x) * 4;
  return [...png.data.subarray(i, i + 4)];
};

describe('png', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('maps [-1, 1] to bytes with rounding and clipping', () => {
    assert.deepEqual([-1, 0, 1, -3, 2, Number.NaN, 0.999].map(signedToByte), [0, 128, 255, 0, 255, 0, 255]);
  });

  it('lays out a grayscale grid with padding, scaling and empty cells', () => {
    // Three 1x2 images: [0, 10], [20, 30], [40, 50] in a 2x2 grid, scale 2, pad 1.
    const images = Uint8Array.from([0, 10, 20, 30, 40, 50]);
    const png = decodePng(
      imageGridPng(images, 3, 1, 2, 1, { rows: 2, cols: 2, pad: 1, scale: 2, background: 99 }),
    );
    assert.equal(png.width, 2 * 4 + 3);
    assert.equal(png.height, 2 * 2 + 3);
    assert.deepEqual(pixel(png, 0, 0), [99, 99, 99, 255]); // border
    assert.deepEqual(pixel(png, 1, 1), [0, 0, 0, 255]); // image 0, left pixel, upscaled
    assert.deepEqual(pixel(png, 2, 2), [0, 0, 0, 255]);
    assert.deepEqual(pixel(png, 3, 1), [10, 10, 10, 255]);
    assert.deepEqual(pixel(png, 6, 2), [20, 20, 20, 255]); // image 1 starts after a 1-px gap
    assert.deepEqual(pixel(png, 9, 1), [30, 30, 30, 255]);
    assert.deepEqual(pixel(png, 1, 4), [40, 40, 40, 255]); // image 2, second row
    assert.deepEqual(pixel(png, 6, 4), [99, 99, 99, 255]); // empty fourth cell
  });

  it('writes RGB images from floats', () => {
    const images = Float32Array.from([-1, 0, 1, 1, -1, 0.5]); // two 1x1 RGB images
    const png = decodePng(imageGridPng(images, 2, 1, 1, 3, { rows: 1, cols: 2, pad: 0 }));
    assert.deepEqual([png.width, png.height], [2, 1]);
    assert.deepEqual(pixel(png, 0, 0), [0, 128, 255, 255]);
    assert.deepEqual(pixel(png, 1, 0), [255, 0, 191, 255]);
  });

  it('rejects inconsistent arguments', () => {
    assert.throws(
      () => imageGridPng(new Uint8Array(8), 2, 2, 2, 1, { rows: 1, cols: 1 }),
      /2 images do not fit a 1x1 grid/,
    );
    assert.throws(() => imageGridPng(new Uint8Array(7), 2, 2, 2, 1, { rows: 1, cols: 2 }), /got 7 values/);
    assert.throws(
      () => imageGridPng(new Uint8Array(8), 4, 1, 1, 2, { rows: 2, cols: 2 }),
      /1, 3 or 4 channels, got 2/,
    );
    assert.throws(() => decodePng(Uint8Array.from([1, 2, 3])), /cannot decode PNG/);
  });

  it('writes a tensor grid to a file that decodes to the expected pixels, without leaks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ladder-png-'));
    try {
      const images = tf.tensor4d([-1, 1, 0, 0.5], [4, 1, 1, 1]);
      const before = tf.memory().numTensors;
      assert.deepEqual([...(await toUint8Images(images))], [0, 255, 128, 191]);
      const path = join(dir, 'grid.png');
      await writeImageGrid(path, images, 2, 2, { pad: 0 });
      assert.equal(tf.memory().numTensors, before);
      const png = decodePng(await readFile(path));
      assert.deepEqual([png.width, png.height], [2, 2]);
      assert.deepEqual(
        [0, 1, 2, 3].map((i) => pixel(png, i % 2, Math.floor(i / 2))[0]),
        [0, 255, 128, 191],
      );
      images.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
