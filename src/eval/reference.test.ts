// Tests for the reference-statistics cache: keyed by dataset, split, limit and feature net; reused; rebuilt
// when damaged. Likewise the FID floor cached next to it.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type LoadedFeatureNet, loadFeatureNet } from '../models/feature-net.js';
import { disposeParams } from '../nn/params.js';
import { testBackend } from '../test-utils/backend.js';
import { writeTinyFeatureNet } from './fixtures/tiny-models.js';
import { featureStats } from './metrics.js';
import { fidFloorCachePath, loadFidFloor, loadReference, referenceCachePath } from './reference.js';

let root = '';
let cacheDir = '';
let net: LoadedFeatureNet;
before(async () => {
  await testBackend();
  root = await mkdtemp(join(tmpdir(), 'ladder-ref-'));
  cacheDir = join(root, 'cache');
  await writeTinyFeatureNet(join(root, 'net'));
  net = await loadFeatureNet(join(root, 'net'));
});
after(async () => {
  disposeParams(net.params);
  await rm(root, { recursive: true, force: true });
});

describe('loadReference', () => {
  it('names the cache file by dataset, split, limit and feature net hash', () => {
    const path = referenceCachePath(net, 'test', { cacheDir, limit: 40 });
    assert.equal(path, join(cacheDir, 'fid-ref', `mnist-test-first40-${net.hash}.safetensors`));
    assert.equal(
      basename(referenceCachePath(net, 'train', { cacheDir })),
      `mnist-train-${net.hash}.safetensors`,
    );
  });

  it('computes the features and their stats once, then reads them from the cache', async () => {
    const opts = { cacheDir, limit: 40 };
    const first = await loadReference(net, 'test', opts);
    assert.equal(first.count, 40);
    assert.equal(first.dim, 16);
    assert.equal(first.labels.length, 40);
    const direct = featureStats(first.features, 40, 16);
    // Kept as the cache stores them (float32 pairs: about 1e-14 off the float64 stats).
    assert.ok(first.stats.mu.every((v, i) => Math.abs(v - direct.mu[i]!) < 1e-12));
    assert.ok(existsSync(first.path));
    const written = (await stat(first.path)).mtimeMs;
    const second = await loadReference(net, 'test', opts);
    assert.equal((await stat(first.path)).mtimeMs, written, 'the cache was rewritten instead of read');
    assert.deepEqual([...second.features], [...first.features]);
    assert.deepEqual([...second.labels], [...first.labels]);
    // A first run scores exactly as the runs that read its cache.
    assert.deepEqual([...second.stats.mu], [...first.stats.mu]);
    assert.deepEqual([...second.stats.cov], [...first.stats.cov]);
  });

  it('rebuilds a damaged cache file', async () => {
    const opts = { cacheDir, limit: 30 };
    const first = await loadReference(net, 'test', opts);
    await writeFile(first.path, 'not safetensors');
    const rebuilt = await loadReference(net, 'test', opts);
    assert.deepEqual([...rebuilt.features], [...first.features]);
    assert.equal((await loadReference(net, 'test', opts)).count, 30);
  });
});

describe('loadFidFloor', () => {
  const labels = Int32Array.from({ length: 30 }, (_, i) => i % 10);

  it('scores class-balanced training images once per (net, samples, reference), then reads the cache', async () => {
    const opts = { cacheDir, limit: 40 };
    const reference = await loadReference(net, 'test', opts);
    const path = fidFloorCachePath(net, 30, 'test', opts);
    assert.equal(basename(path), `mnist-floor-train30-vs-test-first40-${net.hash}.json`);
    const floor = await loadFidFloor(net, reference, labels, opts);
    assert.ok(floor !== undefined && Number.isFinite(floor.fid) && floor.fid > 0, `floor ${floor?.fid}`);
    assert.deepEqual({ ...floor, fid: 0 }, { fid: 0, samples: 30, classBalanced: true });
    const written = (await stat(path)).mtimeMs;
    assert.deepEqual(await loadFidFloor(net, reference, labels, opts), floor);
    assert.equal((await stat(path)).mtimeMs, written, 'the floor was recomputed instead of read');
    assert.equal(JSON.parse(await readFile(path, 'utf8')).featureNet, net.name);
    const fewer = await loadFidFloor(net, reference, labels.subarray(0, 20), opts);
    assert.notEqual(fewer?.fid, floor.fid, 'another sample count is another floor');
  });

  it('recomputes a damaged or mismatched floor file', async () => {
    const opts = { cacheDir, limit: 40 };
    const reference = await loadReference(net, 'test', opts);
    const floor = await loadFidFloor(net, reference, labels, opts);
    const path = fidFloorCachePath(net, 30, 'test', opts);
    await writeFile(
      path,
      JSON.stringify({ ...JSON.parse(await readFile(path, 'utf8')), featureNet: 'other' }),
    );
    assert.deepEqual(await loadFidFloor(net, reference, labels, opts), floor);
    assert.equal(JSON.parse(await readFile(path, 'utf8')).featureNet, net.name, 'rewritten');
    await writeFile(path, '{');
    assert.deepEqual(await loadFidFloor(net, reference, labels, opts), floor);
  });
});
