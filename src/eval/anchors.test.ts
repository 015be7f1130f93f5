// Tests for the FID anchors and the blur they use.
import * as assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadFeatureNet } from '../models/feature-net.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { computeAnchors, gaussianBlur } from './anchors.js';
import { writeTinyFeatureNet } from './fixtures/tiny-models.js';

let root = '';
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-anchors-'));
});
after(() => rm(root, { recursive: true, force: true }));

describe('gaussianBlur', () => {
  it('keeps a constant image and the total of a dot away from the edges', () => {
    const constant = gaussianBlur(new Float32Array(2 * 6 * 6 * 2).fill(0.3), 2, 6, 6, 2, 1);
    assert.ok(constant.every((v) => Math.abs(v - 0.3) < 1e-6));
    const dot = new Float32Array(15 * 15);
    dot[7 * 15 + 7] = 1;
    const blurred = gaussianBlur(dot, 1, 15, 15, 1, 1);
    assert.ok(Math.abs(blurred.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    assert.ok(blurred[7 * 15 + 7]! < 0.2 && blurred[7 * 15 + 8]! > 0.05, 'the dot spreads to its neighbours');
    assert.ok(Math.abs(blurred[7 * 15 + 8]! - blurred[8 * 15 + 7]!) < 1e-7, 'both axes are blurred alike');
  });
});

describe('computeAnchors', () => {
  it('puts the test halves far below noise, with every value finite', async () => {
    await writeTinyFeatureNet(join(root, 'net'));
    const net = await loadFeatureNet(join(root, 'net'));
    const anchors = await computeAnchors(net, { cacheDir: join(root, 'cache'), limit: 60 });
    disposeParams(net.params);
    assert.equal(anchors.referenceCount, 60);
    assert.equal(anchors.samples, 30);
    const { testHalves, train, blurred, noise } = anchors.fid;
    for (const v of [testHalves, train, blurred, noise]) assert.ok(Number.isFinite(v) && v >= 0, `${v}`);
    assert.ok(noise > 3 * testHalves, `noise ${noise} vs halves ${testHalves}`);
    for (const v of Object.values(anchors.classAccuracy)) assert.ok(v >= 0 && v <= 1);
  });
});
