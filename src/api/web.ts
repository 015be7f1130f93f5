// Pipelines in the browser: models from a URL, on the best TF.js backend the browser has (WebGPU, WebGL, wasm).

import { fetchCard, fetchDiffusionModel } from '../models/fetch.js';
import type { WebBackend } from '../serve/protocol.js';
import { selectWebBackend } from '../serve/web-backend.js';
import { Pipeline, pipelineInfo } from './pipeline.js';

export interface LoadWebPipelineOptions {
  /** Use this backend only (default: WebGPU, else hardware WebGL, else wasm). */
  readonly backend?: WebBackend;
  /**
   * URL folder of tfjs-backend-wasm's .wasm files. Default: `wasm/` beside the script, as in dist/web/ (the bundle
   * ladder.js with its wasm/ folder). Through a bundler (`ladder-diffusion/web`), copy dist/web/wasm/ to the site
   * and give its URL here.
   */
  readonly wasmBase?: string | URL;
}

// The backend is started once per page: TF.js has one active backend for all pipelines.
let backendStarted: { readonly asked: WebBackend | undefined; readonly ready: Promise<unknown> } | undefined;

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
  if (backendStarted !== undefined && opts.backend !== undefined && opts.backend !== backendStarted.asked) {
    throw new Error(
      `this page already started ${backendStarted.asked ?? 'the best available'} backend; TF.js runs one at a ` +
        `time, so ${opts.backend} cannot be used beside it: ask for the same backend in every loadPipeline call`,
    );
  }
  if (backendStarted === undefined) {
    const started = {
      asked: opts.backend,
      ready: selectWebBackend(wasmBase, opts.backend).catch((err: unknown) => {
        backendStarted = undefined; // a later call may try again (e.g. with another backend)
        throw err;
      }),
    };
    backendStarted = started;
  }
  await backendStarted.ready;
  const absolute = new URL(String(url), globalThis.location?.href).href;
  // The card first: a broken card then fails before any weights are on the GPU.
  const card = await fetchCard(absolute);
  const model = await fetchDiffusionModel(absolute);
  return new Pipeline(model, pipelineInfo(model, absolute, card));
}
