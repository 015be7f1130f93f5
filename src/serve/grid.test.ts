// Grid layout of generated images for the page's canvas.
import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '../core/tf.js';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import { imagesToGrid, layoutGrid } from './grid.js';

before(async () => {
  await testBackend();
});

const pixel = (rgba: Uint8ClampedArray, width: number, x: number, y: number) =>
  Array.from(rgba.subarray((y * width + x) * 4, (y * width + x) * 4 + 4));

describe('layoutGrid', () => {
  it('places grey images in rows of `columns`, opaque, with empty cells black', () => {
    // Three 1x2 grey images (values 10+k, 20+k) in rows of two: a 4x2 picture.
    const values = [10, 20, 11, 21, 12, 22];
    const { rgba, width, height } = layoutGrid(values, [3, 1, 2, 1], 2);
    assert.deepEqual([width, height], [4, 2]);
    assert.deepEqual(pixel(rgba, width, 0, 0), [10, 10, 10, 255]);
    assert.deepEqual(pixel(rgba, width, 3, 0), [21, 21, 21, 255]);
    assert.deepEqual(pixel(rgba, width, 1, 1), [22, 22, 22, 255]);
    assert.deepEqual(pixel(rgba, width, 2, 1), [0, 0, 0, 255]);
  });

  it('keeps colour channels', () => {
    const { rgba, width } = layoutGrid([1, 2, 3, 4, 5, 6], [2, 1, 1, 3], 2);
    assert.deepEqual(pixel(rgba, width, 1, 0), [4, 5, 6, 255]);
  });

  it('rejects data that does not fit the shape', () => {
    assert.throws(() => layoutGrid([1, 2, 3], [1, 2, 2, 1], 1), /3 values do not make 1 images of 2x2x1/);
    assert.throws(() => layoutGrid([1, 2], [1, 1, 1, 2], 1), /2 channels/);
  });
});

describe('imagesToGrid', () => {
  it('maps [-1, 1] to bytes without leaking', async () => {
    await expectNoLeak(async () => {
      const images = tf.tensor4d([-1, 0, 1, 2], [1, 2, 2, 1]);
      const { rgba } = await imagesToGrid(images, 1);
      images.dispose();
      assert.deepEqual([rgba[0], rgba[4], rgba[8], rgba[12]], [0, 128, 255, 255]);
    });
  });
});
