// The one place that selects and initialises ladder's TF.js backend (wasm by default, or LADDER_BACKEND).
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '../core/tf.js';
import { registerGradientFixes } from './gradients.js';
import { registerWasmKernels } from './wasm-kernels.js';

/** Backends ladder knows how to set up. */
export type BackendName = 'wasm' | 'cpu' | 'torch' | 'webgpu';

/** Every backend name, in order of preference. */
export const BACKEND_NAMES: readonly BackendName[] = ['wasm', 'cpu', 'torch', 'webgpu'];

const DEFAULT_BACKEND: BackendName = 'wasm';
// Specifiers held in variables: these modules may be absent, and tsc must not require them.
const WEBGPU_TFJS_MODULE = '@tensorflow/tfjs-backend-webgpu';
const WEBGPU_DAWN_MODULE = 'webgpu';
const WEBGPU_INSTALL = 'npm install webgpu @tensorflow/tfjs-backend-webgpu@4.22.0';

function isBackendName(name: string): name is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(name);
}

/** True when TF.js has an initialised instance of `name` (no side effects, unlike tf.findBackend). */
function isInitialised(name: string): boolean {
  return tf.engine().registry[name] !== undefined;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---
// Per-backend preparation: import the package and register it (and ladder's kernels) with TF.js.
// Each runs once per process; later calls reuse the settled promise.

let wasmPathsSet = false;

async function prepareWasm(): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (!wasmPathsSet) {
    // Load the .wasm binaries from the installed package, whatever the working directory.
    const entry = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(`${dirname(entry)}/`);
    wasmPathsSet = true;
  }
  // SIMD is detected and used by default; Node gets one thread (no wasm threads in Node).
  registerWasmKernels();
}

async function prepareCpu(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
}

interface TorchModule {
  registerTorchBackend: () => Promise<void>;
}

function isTorchModule(mod: unknown): mod is TorchModule {
  return (
    typeof mod === 'object' && mod !== null && typeof Reflect.get(mod, 'registerTorchBackend') === 'function'
  );
}

async function prepareTorch(): Promise<void> {
  let mod: unknown;
  try {
    mod = await import('./torch/register.js'); // a literal, so Node bundles (scripts/gpu-kit.sh) include it
  } catch (e) {
    throw new Error(`the torch backend module could not be loaded (${reason(e)})`);
  }
  if (!isTorchModule(mod))
    throw new Error('src/engine/torch/register.ts does not export registerTorchBackend()');
  await mod.registerTorchBackend();
}

async function prepareWebgpu(): Promise<void> {
  const missing: string[] = [];
  let dawn: unknown;
  try {
    dawn = await import(WEBGPU_DAWN_MODULE);
  } catch {
    missing.push(WEBGPU_DAWN_MODULE);
  }
  try {
    await import(WEBGPU_TFJS_MODULE);
  } catch {
    missing.push(WEBGPU_TFJS_MODULE);
  }
  if (missing.length > 0) {
    throw new Error(
      `it needs ${missing.join(' and ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed`,
    );
  }
  // Dawn's Node bindings supply the browser's WebGPU globals and navigator.gpu.
  const create = Reflect.get(dawn as object, 'create');
  const globals = Reflect.get(dawn as object, 'globals');
  if (typeof create !== 'function') throw new Error(`the '${WEBGPU_DAWN_MODULE}' package has no create()`);
  if (typeof globals === 'object' && globals !== null) Object.assign(globalThis, globals);
  const gpu: unknown = create([]);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

const PREPARE: Record<BackendName, () => Promise<void>> = {
  wasm: prepareWasm,
  cpu: prepareCpu,
  torch: prepareTorch,
  webgpu: prepareWebgpu,
};

const prepared = new Map<BackendName, Promise<void>>();

function prepare(name: BackendName): Promise<void> {
  let p = prepared.get(name);
  if (p === undefined) {
    p = PREPARE[name]();
    prepared.set(name, p);
  }
  return p;
}

function unavailableMessage(name: BackendName, why: string): string {
  const fix: Record<BackendName, string> = {
    wasm: 'Reinstall dependencies (npm ci) or pick another backend.',
    cpu: 'Reinstall dependencies (npm ci) or pick another backend.',
    torch:
      'The addon is built at install when libtorch is found: install libtorch (Debian: apt-get install ' +
      'libtorch-dev libopenblas0-openmp), then run `npm rebuild ladder-diffusion` (in a checkout: ' +
      '`npm run build:native`), or use another backend (--backend wasm).',
    webgpu: `Install them with: ${WEBGPU_INSTALL}`,
  };
  return `The '${name}' backend is unavailable: ${why}. ${fix[name]}`;
}

// ---

/** Backends that can be set up on this machine (their packages or native addon load). */
export async function availableBackends(): Promise<BackendName[]> {
  const results = await Promise.all(
    BACKEND_NAMES.map((name) =>
      prepare(name).then(
        () => true,
        () => false,
      ),
    ),
  );
  return BACKEND_NAMES.filter((_, i) => results[i]);
}

/**
 * Selects and initialises the TF.js backend: `requested`, else env LADDER_BACKEND, else 'wasm'.
 * Also registers ladder's gradient fixes (gradients.ts) and, for wasm, ladder's extra kernels.
 * Calling it again with the active backend is cheap. After a switch, create new tensors: older ones
 * are copied to the new backend on first use, which is slow.
 */
export async function initBackend(requested?: string): Promise<BackendName> {
  const fromEnv = requested === undefined ? process.env.LADDER_BACKEND : undefined;
  const raw = (requested ?? fromEnv ?? DEFAULT_BACKEND).trim().toLowerCase();
  if (!isBackendName(raw)) {
    const available = await availableBackends();
    const source = requested === undefined ? ' (from LADDER_BACKEND)' : '';
    throw new Error(
      `Unknown backend '${raw}'${source}. Known backends: ${BACKEND_NAMES.join(', ')}; ` +
        `available on this machine: ${available.join(', ') || 'none'}. Pass one of the available names.`,
    );
  }
  registerGradientFixes();
  try {
    await prepare(raw);
  } catch (e) {
    throw new Error(unavailableMessage(raw, reason(e)));
  }
  const previous: string | undefined = tf.engine().backendName;
  if (previous === raw && isInitialised(raw)) return raw;
  if (!(await tf.setBackend(raw))) {
    // Leave the previously active backend in place rather than none at all.
    if (previous !== undefined && isInitialised(previous)) await tf.setBackend(previous);
    throw new Error(unavailableMessage(raw, 'TF.js could not initialise it (see the warning above)'));
  }
  await tf.ready();
  return raw;
}

/** The active backend. Throws if TF.js has none of ladder's backends active (call initBackend first). */
export function currentBackend(): BackendName {
  const active: string | undefined = tf.engine().backendName;
  if (active !== undefined && isBackendName(active) && isInitialised(active)) return active;
  throw new Error(
    `No ladder backend is active (TF.js backend: ${active ?? 'none'}); call initBackend() first.`,
  );
}
