// The page bundle: built for the browser from the same model code as Node, with no Node-only module in it.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildWeb, type WebBuild } from './bundle.js';

let out = '';
let built: WebBuild;

before(async () => {
  out = await mkdtemp(join(tmpdir(), 'ladder-web-'));
  built = await buildWeb(out);
});

after(async () => {
  await rm(out, { recursive: true, force: true });
});

describe('web bundle', () => {
  it('holds the page, both bundles and the wasm binaries', () => {
    for (const file of [
      'index.html',
      'style.css',
      'app.js',
      'worker.js',
      'wasm/tfjs-backend-wasm-simd.wasm',
    ]) {
      assert.ok(existsSync(join(out, file)), file);
    }
  });

  it("runs ladder's own networks, sampler and safetensors reader", () => {
    for (const file of [
      'src/models/pipeline.ts',
      'src/nn/unet.ts',
      'src/nn/autoencoder.ts',
      'src/samplers/sample.ts',
      'src/core/rng.ts',
      'src/io/safetensors-format.ts',
    ]) {
      assert.ok(built.inputs.includes(file), file);
    }
  });

  it('pulls in no Node-only module', () => {
    const nodeOnly = built.inputs.filter(
      (i) =>
        i.startsWith('node:') ||
        ['src/io/safetensors.ts', 'src/core/fs.ts', 'src/models/folder.ts', 'src/engine/backend.ts'].includes(
          i,
        ) ||
        i.startsWith('src/serve/server') ||
        i.startsWith('src/cli/'),
    );
    assert.deepEqual(nodeOnly, []);
  });

  it('refers to nothing online', async () => {
    const html = await readFile(join(out, 'index.html'), 'utf8');
    assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
  });
});
