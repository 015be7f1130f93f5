// Pipelines in Node: models from a folder, a URL or the models shipped in the package, on a TF.js backend of
// this machine (engine/backend.ts), with PNG output.

import { fileURLToPath } from 'node:url';
import { type BackendName, currentBackend, initBackend } from '../engine/backend.js';
import { imageGridPng } from '../image/png.js';
import { fetchCard, fetchDiffusionModel } from '../models/fetch.js';
import { loadDiffusionModel, readCard } from '../models/folder.js';
import { resolveModelFolder } from '../models/shipped.js';
import { Pipeline, type PngEncoder, pipelineInfo } from './pipeline.js';

export interface LoadPipelineOptions {
  /**
   * TF.js backend: wasm, cpu, torch or webgpu. Left out, an active ladder backend is kept, else $LADDER_BACKEND
   * or wasm is started.
   */
  readonly backend?: BackendName;
}

const encodePng: PngEncoder = (pixels, width, height, channels) =>
  imageGridPng(pixels, 1, height, width, channels, { rows: 1, cols: 1, pad: 0 });

const isRemote = (source: string | URL): boolean => /^https?:\/\//i.test(String(source));

/**
 * A teacher or student as a pipeline: `source` is a model folder, an http(s) URL of one, or a shipped model's
 * name ("mnist/ladd-dmd-4step"); its autoencoder comes from the folder its config names.
 *
 *   const pipe = await loadPipeline('mnist/ladd-dmd-4step');
 *   const images = await pipe.generate({ classes: [7], n: 8 });
 *   await writeFile('seven.png', images[0].toPNG());
 */
export async function loadPipeline(source: string | URL, opts: LoadPipelineOptions = {}): Promise<Pipeline> {
  if (opts.backend !== undefined) await initBackend(opts.backend);
  else {
    try {
      currentBackend();
    } catch {
      await initBackend();
    }
  }
  if (isRemote(source)) {
    const url = String(source);
    // The card first: a broken card then fails before any weights are loaded.
    const card = await fetchCard(url);
    const model = await fetchDiffusionModel(url);
    return new Pipeline(model, pipelineInfo(model, url, card), encodePng);
  }
  const dir = resolveModelFolder(String(source).startsWith('file:') ? fileURLToPath(source) : String(source));
  const card = await readCard(dir);
  const model = await loadDiffusionModel(dir);
  return new Pipeline(model, pipelineInfo(model, String(source), card), encodePng);
}
