// The page's generation worker: picks a backend, fetches models, and turns generate requests into RGBA grids,
// off the main thread so the page stays responsive while a teacher takes its 32 steps.
import * as tf from '../core/tf.js';
import { type FetchedModel, fetchDiffusionModel } from '../models/fetch.js';
import { defaultSampler, generateImages, promptLatentSize } from '../models/pipeline.js';
import { imagesToGrid, type RgbaGrid } from './grid.js';
import { type BackendReport, gridImages, type WorkerReply, type WorkerRequest } from './protocol.js';
import { selectWebBackend } from './web-backend.js';

/** The parts of a dedicated worker's global scope used here (the project's types describe a window). */
export interface WorkerScope {
  readonly location: { readonly href: string };
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerReply, transfer?: Transferable[]): void;
}

const models = new Map<string, Promise<FetchedModel>>();
let backend: Promise<BackendReport> | undefined;

function loadModel(url: string): Promise<FetchedModel> {
  let model = models.get(url);
  if (model === undefined) {
    model = fetchDiffusionModel(url);
    // A failed load is retried on the next request (the file may have been fixed meanwhile).
    model.catch(() => models.delete(url));
    models.set(url, model);
  }
  return model;
}

async function handle(scope: WorkerScope, request: WorkerRequest): Promise<void> {
  if (request.type === 'init') {
    backend ??= selectWebBackend(new URL('wasm/', scope.location.href).href, request.backend);
    scope.postMessage({ type: 'ready', id: request.id, ...(await backend) });
    return;
  }
  if (backend === undefined) throw new Error('the worker got a generate request before init');
  await backend;
  const model = await loadModel(request.url);
  const began = performance.now();
  const { condition } = request;
  const whom =
    'labels' in condition
      ? { labels: condition.labels }
      : {
          prompts: Array<string>(condition.count).fill(condition.prompt),
          latentSize: promptLatentSize(model, condition.prompt),
        };
  const images = generateImages(model, {
    ...whom,
    steps: request.steps,
    cfg: request.cfg ?? model.config.sampling.cfg,
    sampler: defaultSampler(model.config),
    seed: request.seed,
  });
  let grid: RgbaGrid;
  try {
    grid = await imagesToGrid(images, request.columns);
  } finally {
    images.dispose();
  }
  const ms = performance.now() - began;
  const tensors = tf.memory().numTensors;
  const reply: WorkerReply = {
    type: 'grid',
    id: request.id,
    ...grid,
    images: gridImages(condition),
    ms,
    tensors,
  };
  scope.postMessage(reply, [grid.rgba.buffer]);
}

/** Starts serving requests on this worker's scope; requests run one at a time, in order. */
export function runWorker(scope: WorkerScope): void {
  let queue = Promise.resolve();
  scope.onmessage = (event) => {
    const request = event.data;
    queue = queue.then(() =>
      handle(scope, request).catch((err: unknown) =>
        scope.postMessage({
          type: 'error',
          id: request.id,
          message: err instanceof Error ? err.message : String(err),
        }),
      ),
    );
  };
}
