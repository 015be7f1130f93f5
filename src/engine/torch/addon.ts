// Loads the ladder_torch Node-API addon (native/) and explains precisely why when it cannot.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Facts the addon reports after init. */
export interface NativeInfo {
  readonly device: string;
  readonly threads: number;
  readonly torchVersion: string;
  readonly cudaAvailable: boolean;
}

/** The addon's raw interface (see native/src/addon.cc). Handles are small positive integers. */
export interface NativeAddon {
  init(
    buffer: ArrayBuffer,
    intCap: number,
    floatOffset: number,
    floatCap: number,
    outOffset: number,
    outCap: number,
    device: string,
    threads: number,
    allowTF32: boolean,
    cpuCacheMiB: number,
  ): NativeInfo;
  opNames(): string[];
  /** Copies values into a new tensor; its shape is read from the shared int region (rank, dims...). */
  create(values: Float32Array | Int32Array | Uint8Array, dtypeCode: number): number;
  /** Copies a tensor's row-major values into `out` (sizes must match). */
  read(handle: number, out: Float32Array | Int32Array | Uint8Array): void;
  dispose(handle: number): void;
  disposeAll(): void;
  /** Runs op `code` on the arguments in the shared buffer; returns the number of outputs. */
  run(code: number): number;
  /** [live tensors, live bytes, bytes held by the CPU block cache]. */
  stats(): [number, number, number];
  /** Frees the CPU block cache. */
  emptyCache(): void;
  synchronize(): void;
}

/** Where `npm run build:native` puts the addon; LADDER_TORCH_ADDON overrides it. */
export function addonPath(): string {
  const fromEnv = process.env.LADDER_TORCH_ADDON;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  // src/engine/torch and dist/engine/torch both sit three levels below the package root.
  return fileURLToPath(new URL('../../../native/build/Release/ladder_torch.node', import.meta.url));
}

let cached: NativeAddon | undefined;

/** Loads the addon once (from {@link addonPath}). Throws an Error saying what is missing and how to fix it. */
export function loadAddon(): NativeAddon {
  cached ??= loadAddonFrom(addonPath());
  return cached;
}

/** Loads an addon file without caching; the errors are those of {@link loadAddon}. */
export function loadAddonFrom(path: string): NativeAddon {
  if (!existsSync(path)) {
    throw new Error(
      `torch backend unavailable: the native addon is not built (${path} is missing). ` +
        'Run `npm run build:native` (it needs libtorch: `apt-get install libtorch-dev`, ' +
        'or set LIBTORCH=/path/to/libtorch with include/ and lib/).',
    );
  }
  // OpenMP threads wait between parallel regions. Sleeping at once (OMP_WAIT_POLICY=PASSIVE) wakes them for every
  // kernel, about 45% on a 2-thread training step; spinning long (libgomp's default, 300,000 spins) makes them
  // fight any other process for the CPU. A short spin keeps back-to-back kernels' hand-offs fast and yields soon.
  // It must be set before libtorch (and its OpenMP runtime) loads; explicit settings are kept.
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.GOMP_SPINCOUNT ??= '10000';
  try {
    return createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/lib(torch|c10)[a-z_]*\.so/.test(message)) {
      throw new Error(
        `torch backend unavailable: libtorch cannot be loaded (${message}). ` +
          'Install it (`apt-get install libtorch-dev`) or rebuild with LIBTORCH=/path/to/libtorch ' +
          '(`npm run build:native`).',
      );
    }
    if (message.includes('cannot open shared object file')) {
      throw new Error(
        `torch backend unavailable: a library the addon needs is missing (${message}). ` +
          'For a CUDA libtorch, install the CUDA libraries it was built with (the nvidia-* pip packages ' +
          'beside torch) or add their directory to LD_LIBRARY_PATH; otherwise rebuild with `npm run build:native`.',
      );
    }
    throw new Error(
      `torch backend unavailable: loading ${path} failed (${message}). ` +
        'Rebuild it with `npm run build:native`.',
    );
  }
}
