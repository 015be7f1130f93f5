// Entry of the generation worker bundle (worker.js); see src/serve/worker.ts.
import { runWorker, type WorkerScope } from '../src/serve/worker.js';

runWorker(globalThis as unknown as WorkerScope);
