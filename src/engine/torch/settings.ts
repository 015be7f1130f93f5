// Torch backend settings: options, their environment-variable defaults, and validation.
import { availableParallelism, totalmem } from 'node:os';

/** Where torch kernels run. */
export type TorchDevice = 'cpu' | 'cuda';

/** Options of registerTorchBackend (register.ts). */
export interface TorchBackendOptions {
  /** Intra-op threads; default LADDER_TORCH_THREADS, else os.availableParallelism(). */
  readonly threads?: number;
  /** Default LADDER_TORCH_DEVICE, else 'cpu'. */
  readonly device?: TorchDevice;
  /** Allow TF32 matmul/conv on recent NVIDIA GPUs (faster, ~1e-3 relative error). Default false. */
  readonly allowTF32?: boolean;
  /**
   * Most MiB of freed CPU buffers kept for reuse (0 disables the cache); default
   * LADDER_TORCH_CPU_CACHE_MB, else min(4096, a quarter of RAM).
   */
  readonly cpuCacheMiB?: number;
}

/** Options with every default filled in. */
export interface TorchSettings {
  readonly device: TorchDevice;
  readonly threads: number;
  readonly allowTF32: boolean;
  readonly cpuCacheMiB: number;
}

function envInteger(name: string, min: number): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}=${raw} must be an integer >= ${min}`);
  return n;
}

function envDevice(): TorchDevice | undefined {
  const raw = process.env.LADDER_TORCH_DEVICE;
  if (raw === undefined || raw === '') return undefined;
  if (raw === 'cpu' || raw === 'cuda') return raw;
  throw new Error(`LADDER_TORCH_DEVICE=${raw} is not a device; use 'cpu' or 'cuda'`);
}

/** Fills defaults from the environment and checks the values. */
export function resolveSettings(opts: TorchBackendOptions): TorchSettings {
  const device = opts.device ?? envDevice() ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') {
    throw new Error(`registerTorchBackend: device '${String(device)}' must be 'cpu' or 'cuda'`);
  }
  const threads = opts.threads ?? envInteger('LADDER_TORCH_THREADS', 1) ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`registerTorchBackend: threads=${threads} must be a positive integer`);
  }
  const defaultCache = Math.min(4096, Math.floor(totalmem() / 4 / 2 ** 20));
  const cpuCacheMiB = opts.cpuCacheMiB ?? envInteger('LADDER_TORCH_CPU_CACHE_MB', 0) ?? defaultCache;
  if (!Number.isInteger(cpuCacheMiB) || cpuCacheMiB < 0) {
    throw new Error(`registerTorchBackend: cpuCacheMiB=${cpuCacheMiB} must be a non-negative integer`);
  }
  return { device, threads, allowTF32: opts.allowTF32 ?? false, cpuCacheMiB };
}
