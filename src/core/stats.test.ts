import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median } from './stats.js';

describe('median', () => {
  it('takes the middle value, or the mean of the middle two, whatever the order', () => {
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([4, 1, 3, 100]), 3.5);
    assert.equal(median([7]), 7);
    assert.ok(Number.isNaN(median([])));
  });
});
