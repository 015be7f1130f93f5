// Where an iteration's time goes: native calls and the time inside them (torch backend), reads back to the host
// (each one a sync on a GPU) and uploads, per iteration. `ladder bench --profile` and `ladder distill --profile`
// print it; the no-sync tests count reads with it.
import * as tf from '../core/tf.js';

/** What the torch backend counts while a profile runs. */
export interface NativeCounters {
  calls: number;
  /** Milliseconds inside native calls (on a GPU: launching, not the kernels themselves). */
  ms: number;
  /** Tensors created from host values. */
  uploads: number;
  readonly byOp: Map<string, { calls: number; ms: number }>;
}

interface CountingBackend {
  startCounting(): void;
  stopCounting(): NativeCounters | undefined;
}

function isCounting(backend: unknown): backend is CountingBackend {
  return (
    typeof backend === 'object' &&
    backend !== null &&
    typeof Reflect.get(backend, 'startCounting') === 'function' &&
    typeof Reflect.get(backend, 'stopCounting') === 'function'
  );
}

/** Per-iteration means over a profiled stretch of work. */
export interface EngineProfile {
  readonly backend: string;
  readonly iterations: number;
  readonly wallMs: number;
  /** Values read back to the host (dataSync, data(), arraySync...): on a GPU, each waits for the queue. */
  readonly reads: number;
  /** Native calls, and milliseconds inside and outside them; null on backends that do not count them. */
  readonly nativeCalls: number | null;
  readonly nativeMs: number | null;
  readonly outsideNativeMs: number | null;
  readonly uploads: number | null;
  /** The native ops taking most time, per iteration. */
  readonly topOps: readonly { readonly op: string; readonly calls: number; readonly ms: number }[];
}

/** A running profile: {@link stop} it after `iterations` iterations of the work to profile. */
export interface ProfileRun {
  /** Reads so far (for tests that assert where reads happen). */
  reads(): number;
  stop(iterations: number): EngineProfile;
}

/**
 * Starts counting on the active backend. Reads are counted where tensors are read through the public API
 * (`dataSync`, `data`, `array`...: the engine's `readSync`/`read`), not reads a backend makes of its own memory
 * inside a kernel (wasm does, for some kernels: no host sync there). Only one profile may run at a time.
 */
export function startProfile(): ProfileRun {
  const engine = tf.engine();
  if (Object.hasOwn(engine, 'readSync')) throw new Error('a profile is already running');
  let reads = 0;
  const { readSync, read } = engine;
  engine.readSync = function countedReadSync(this: typeof engine, dataId: tf.DataId) {
    reads++;
    return readSync.call(this, dataId);
  };
  engine.read = function countedRead(this: typeof engine, dataId: tf.DataId) {
    reads++;
    return read.call(this, dataId);
  };
  const backend = tf.backend();
  const counting = isCounting(backend) ? backend : undefined;
  counting?.startCounting();
  const began = performance.now();
  let stopped = false;
  return {
    reads: () => reads,
    stop(iterations) {
      if (stopped) throw new Error('this profile has already stopped');
      stopped = true;
      const wallMs = performance.now() - began;
      const counters = counting?.stopCounting();
      Reflect.deleteProperty(engine, 'readSync'); // back to the prototype's methods
      Reflect.deleteProperty(engine, 'read');
      const per = (x: number): number => Math.round((x / iterations) * 1000) / 1000;
      const topOps = [...(counters?.byOp ?? new Map<string, { calls: number; ms: number }>())]
        .sort((a, b) => b[1].ms - a[1].ms)
        .slice(0, 12)
        .map(([op, e]) => ({ op, calls: per(e.calls), ms: per(e.ms) }));
      return {
        backend: tf.getBackend(),
        iterations,
        wallMs: per(wallMs),
        reads: per(reads),
        nativeCalls: counters ? per(counters.calls) : null,
        nativeMs: counters ? per(counters.ms) : null,
        outsideNativeMs: counters ? per(wallMs - counters.ms) : null,
        uploads: counters ? per(counters.uploads) : null,
        topOps,
      };
    },
  };
}
