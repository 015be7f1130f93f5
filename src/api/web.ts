// Pipelines in the browser: models from a URL, on the best TF.js backend the browser has (WebGPU, WebGL, wasm).

import { fetchCard, fetchDiffusionModel } from '../models/fetch.js';
import type { WebBackend } from '../serve/protocol.js';
import { selectWebBackend } from '../serve/web-backend.js';
import { Pipeline, pipelineInfo } from './pipeline.js';

export interface LoadWebPipelineOptions {
  /** Use this backend only (default: WebGPU, else hardware WebGL, else wasm). */
  readonly backend?: WebBackend;
  /** URL folder of tfjs-backend-wasm's .wasm files (default: the `wasm/` folder beside this script). */
  readonly wasmBase?: string | URL;
}

let backendStarted: Promise<unknown> | undefined;

/**
 * A teacher or student fetched from `url` (its folder; the autoencoder folder its config names is fetched
 * relative to it) as a pipeline. The first call starts the backend.
 *
 *   const pipe = await loadPipeline('https://example.org/models/mnist/ladd-dmd-4step/');
 *   const [image] = await pipe.generate({ classes: [7] });
 *   canvas.getContext('2d').putImageData(image.toImageData(), 0, 0);
 */
export async function loadPipeline(url: string | URL, opts: LoadWebPipelineOptions = {}): Promise<Pipeline> {
  const wasmBase = String(opts.wasmBase ?? new URL('./wasm/', import.meta.url));
  backendStarted ??= selectWebBackend(wasmBase, opts.backend).catch((err: unknown) => {
    backendStarted = undefined; // a later call may try again (e.g. with another backend)
    throw err;
  });
  await backendStarted;
  const absolute = new URL(String(url), globalThis.location?.href).href;
  const model = await fetchDiffusionModel(absolute);
  return new Pipeline(model, pipelineInfo(model, absolute, await fetchCard(absolute)));
}
