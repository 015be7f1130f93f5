// Registers the 'torch' backend with tfjs: the backend class and its kernels meet here, so neither imports the other.
import * as tf from '../../core/tf.js';
import { loadAddon } from './addon.js';
import { TorchBackend } from './backend.js';
import { torchKernels } from './kernels/all.js';
import { resolveSettings, type TorchBackendOptions, type TorchSettings } from './settings.js';

let registered: TorchSettings | undefined;

/**
 * Loads the addon and registers the 'torch' backend and its kernels with tfjs, then call
 * `tf.setBackend('torch')` (registration never makes it the default: its priority is below wasm's).
 * Throws an Error saying why the backend is unavailable (addon not built, libtorch missing, CUDA
 * requested but absent). A second call is a no-op.
 */
export async function registerTorchBackend(opts: TorchBackendOptions = {}): Promise<void> {
  if (registered !== undefined) return;
  const settings = resolveSettings(opts);
  const native = loadAddon();
  // Build one backend now so init errors surface here, not as a tfjs warning at setBackend time.
  let first: TorchBackend | undefined = new TorchBackend(native, settings);
  for (const kernel of torchKernels()) tf.registerKernel({ ...kernel, backendName: 'torch' });
  tf.registerBackend(
    'torch',
    () => {
      const backend = first ?? new TorchBackend(native, settings);
      first = undefined;
      return backend;
    },
    1,
  );
  registered = settings;
}
