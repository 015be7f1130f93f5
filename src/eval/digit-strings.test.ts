import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { balancedDigitStrings } from '../data/prompts.js';
import { cutCells } from './digit-strings.js';

describe('digit-string evaluation', () => {
  it('asks every digit equally often over all cells, in an order that follows the seed', () => {
    const prompts = balancedDigitStrings(3, 20, 7);
    assert.equal(prompts.length, 20);
    assert.ok(prompts.every((p) => /^[0-9]{3}$/.test(p)));
    const counts = new Array(10).fill(0);
    for (const digit of prompts.join('')) counts[Number(digit)]++;
    assert.deepEqual(counts, [6, 6, 6, 6, 6, 6, 6, 6, 6, 6]);
    assert.deepEqual(balancedDigitStrings(3, 20, 7), prompts);
    assert.notDeepEqual(balancedDigitStrings(3, 20, 8), prompts);
    assert.notDeepEqual(balancedDigitStrings(2, 30, 7).join(''), prompts.join(''));
  });

  it('cuts strings into their cells, left to right', () => {
    // Two strings of 3 cells; each pixel holds 10 * string + cell.
    const images = new Float32Array(2 * 28 * 84);
    for (let n = 0; n < 2; n++)
      for (let row = 0; row < 28; row++)
        for (let x = 0; x < 84; x++) images[(n * 28 + row) * 84 + x] = 10 * n + Math.floor(x / 28);
    const cells = cutCells(images, 2, 3);
    assert.equal(cells.length, 6 * 28 * 28);
    for (let k = 0; k < 6; k++) {
      const cell = cells.subarray(k * 784, (k + 1) * 784);
      const want = 10 * Math.floor(k / 3) + (k % 3);
      assert.ok(
        cell.every((v) => v === want),
        `cell ${k}`,
      );
    }
    assert.throws(() => cutCells(images, 2, 2), /not 2 images of 28x56/);
  });
});
