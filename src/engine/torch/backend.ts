// TF.js backend whose tensors live in libtorch (through the ladder_torch addon); kernels run there too.
import * as tf from '../../core/tf.js';
import type { NativeCounters } from '../profile.js';
import type { NativeAddon, NativeInfo } from './addon.js';
import { type OpName, resolveOpCodes } from './ops.js';
import {
  ArgWriter,
  asNativeArray,
  DTYPE_CODES,
  DTYPES_BY_CODE,
  FLOAT_CAP,
  FLOAT_OFFSET,
  INT_CAP,
  OUT_CAP,
  OUT_OFFSET,
  sameShape,
  zerosFor,
} from './protocol.js';
import type { TorchSettings } from './settings.js';

export type { TorchBackendOptions, TorchDevice } from './settings.js';

/** One tensor's bookkeeping: the native handle, or JS-held bytes for string tensors. */
interface TensorRecord {
  handle: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
  strings?: Uint8Array[];
}

let nextDataId = 0;

/** KernelBackend over libtorch. Created by {@link registerTorchBackend}. */
export class TorchBackend extends tf.KernelBackend {
  readonly info: NativeInfo;
  private readonly data: tf.DataStorage<TensorRecord>;
  private readonly writer: ArgWriter;
  private readonly codes: ReadonlyMap<OpName, number>;
  private readonly temps: number[] = [];
  /** Set while a profile runs (see engine/profile.ts); undefined otherwise, so the hot path pays one check. */
  private counters: NativeCounters | undefined;

  constructor(
    private readonly native: NativeAddon,
    settings: TorchSettings,
  ) {
    super();
    this.codes = resolveOpCodes(native.opNames());
    this.writer = new ArgWriter();
    this.info = native.init(
      this.writer.buffer,
      INT_CAP,
      FLOAT_OFFSET,
      FLOAT_CAP,
      OUT_OFFSET,
      OUT_CAP,
      settings.device,
      settings.threads,
      settings.allowTF32,
      settings.cpuCacheMiB,
    );
    this.data = new tf.DataStorage(this, tf.engine());
  }

  // --- storage -------------------------------------------------------------------------------

  override write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): tf.DataId {
    const dataId = { id: nextDataId++ };
    this.data.set(dataId, this.store(values, shape, dtype, 1));
    return dataId;
  }

  override move(
    dataId: tf.DataId,
    values: tf.backend_util.BackendValues,
    shape: number[],
    dtype: tf.DataType,
    refCount: number,
  ): void {
    this.data.set(dataId, this.store(values, shape, dtype, refCount));
  }

  /** Makes a tensor from values (zeros when values are absent). Caller owns the result. */
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo {
    const filled = values ?? zerosFor(dtype, tf.util.sizeFromShape(shape));
    return { dataId: this.write(filled, shape, dtype), shape, dtype };
  }

  override refCount(dataId: tf.DataId): number {
    return this.data.has(dataId) ? this.data.get(dataId).refCount : 0;
  }

  override incRef(dataId: tf.DataId): void {
    this.data.get(dataId).refCount++;
  }

  override numDataIds(): number {
    return this.data.numDataIds();
  }

  override async read(dataId: tf.DataId): Promise<tf.backend_util.BackendValues> {
    return this.readSync(dataId);
  }

  override readSync(dataId: tf.DataId): tf.backend_util.BackendValues {
    const rec = this.data.get(dataId);
    if (rec.strings !== undefined) return rec.strings;
    const size = tf.util.sizeFromShape(rec.shape);
    const out =
      rec.dtype === 'int32'
        ? new Int32Array(size)
        : rec.dtype === 'bool'
          ? new Uint8Array(size)
          : new Float32Array(size);
    this.native.read(rec.handle, out);
    return out;
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    if (!this.data.has(dataId)) return true;
    const rec = this.data.get(dataId);
    rec.refCount--;
    if (!force && rec.refCount > 0) return false;
    if (rec.handle > 0) this.native.dispose(rec.handle);
    this.data.delete(dataId);
    return true;
  }

  override memory(): {
    unreliable: boolean;
    reasons: string[];
    numNativeTensors: number;
    numNativeBytes: number;
    numCachedCpuBytes: number;
  } {
    const [numNativeTensors, numNativeBytes, numCachedCpuBytes] = this.native.stats();
    return {
      unreliable: true,
      reasons: ['numBytes counts tfjs tensors; views share libtorch storage, see numNativeBytes'],
      numNativeTensors,
      numNativeBytes,
      numCachedCpuBytes,
    };
  }

  override async time(f: () => void): Promise<tf.BackendTimingInfo> {
    const start = tf.util.now();
    f();
    this.native.synchronize();
    return { kernelMs: tf.util.now() - start };
  }

  override timerAvailable(): boolean {
    return true;
  }

  override floatPrecision(): 16 | 32 {
    return 32;
  }

  override dispose(): void {
    this.native.disposeAll();
    this.native.emptyCache();
  }

  /** Starts counting native calls, the time spent in them and uploads (until {@link stopCounting}). */
  startCounting(): void {
    this.counters = { calls: 0, ms: 0, uploads: 0, byOp: new Map() };
  }

  stopCounting(): NativeCounters | undefined {
    const counters = this.counters;
    this.counters = undefined;
    return counters;
  }

  /** Returns the CPU buffers cached for reuse to the system (they are rebuilt on demand). */
  emptyCache(): void {
    this.native.emptyCache();
  }

  // --- kernel plumbing -----------------------------------------------------------------------

  /**
   * Starts a native call: resolves the tensors' handles (which may move data from another backend),
   * then empties the argument writer and writes the handles (-1 for an absent optional tensor).
   * Resolve every tensor through here before writing other arguments: resolution may use the writer.
   */
  args(...tensors: ReadonlyArray<tf.TensorInfo | undefined>): ArgWriter {
    const handles = tensors.map((t) => (t === undefined ? -1 : this.handle(t)));
    const w = this.writer.reset();
    for (const h of handles) w.int(h);
    return w;
  }

  /** {@link args} for a length-prefixed tensor list (AddN, Concat, Pack, Einsum). */
  argsList(tensors: readonly tf.TensorInfo[]): ArgWriter {
    const handles = tensors.map((t) => this.handle(t));
    return this.writer.reset().ints(handles);
  }

  /** The native handle of a kernel input, moving it here from another backend if needed. */
  private handle(t: tf.TensorInfo): number {
    const rec = this.data.get(t.dataId);
    if (rec.strings !== undefined) throw new Error('torch backend: string tensors cannot be used in kernels');
    if (sameShape(rec.shape, t.shape)) return rec.handle;
    // Another backend shared this dataId between shapes (a reshape): view it with the asked shape.
    this.writer.reset().int(rec.handle).ints(t.shape);
    this.runNative('reshape');
    const view = this.writer.out[1] ?? 0;
    this.temps.push(view);
    return view;
  }

  /** Runs a native op on the written arguments; the caller owns the returned tensors. */
  run(op: OpName): tf.TensorInfo[] {
    try {
      return this.collect(this.runNative(op));
    } finally {
      if (this.temps.length > 0) this.releaseTemps();
    }
  }

  /** {@link run} for single-output ops. */
  run1(op: OpName): tf.TensorInfo {
    const outs = this.run(op);
    if (outs.length !== 1 || outs[0] === undefined)
      throw new Error(`torch backend: op ${op} gave ${outs.length} outputs`);
    return outs[0];
  }

  /** Shares x's data under a new TensorInfo (same shape and dtype). */
  alias(x: tf.TensorInfo): tf.TensorInfo {
    this.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }

  /** Waits for queued device work (a no-op on CPU). */
  synchronize(): void {
    this.native.synchronize();
  }

  private runNative(op: OpName): number {
    const counters = this.counters;
    if (counters === undefined) return this.native.run(this.code(op));
    const began = performance.now();
    const count = this.native.run(this.code(op));
    const ms = performance.now() - began;
    counters.calls++;
    counters.ms += ms;
    const entry = counters.byOp.get(op);
    if (entry === undefined) counters.byOp.set(op, { calls: 1, ms });
    else {
      entry.calls++;
      entry.ms += ms;
    }
    return count;
  }

  private code(op: OpName): number {
    const code = this.codes.get(op);
    if (code === undefined) throw new Error(`torch backend: unknown native op ${op}`);
    return code;
  }

  private collect(count: number): tf.TensorInfo[] {
    const out = this.writer.out;
    const infos: tf.TensorInfo[] = [];
    let p = 1;
    for (let k = 0; k < count; k++) {
      const handle = out[p++] ?? 0;
      const dtype = DTYPES_BY_CODE[out[p++] ?? 0] ?? 'float32';
      const rank = out[p++] ?? 0;
      const shape: number[] = new Array(rank);
      for (let d = 0; d < rank; d++) shape[d] = out[p++] ?? 0;
      const dataId = { id: nextDataId++ };
      this.data.set(dataId, { handle, shape, dtype, refCount: 1 });
      infos.push({ dataId, shape, dtype });
    }
    return infos;
  }

  private releaseTemps(): void {
    for (const h of this.temps) this.native.dispose(h);
    this.temps.length = 0;
  }

  private store(
    values: tf.backend_util.BackendValues,
    shape: number[],
    dtype: tf.DataType,
    refCount: number,
  ): TensorRecord {
    if (dtype === 'string') return { handle: -1, shape, dtype, refCount, strings: values as Uint8Array[] };
    if (dtype === 'complex64') {
      throw new Error('torch backend: complex64 tensors are not supported; use the cpu or wasm backend');
    }
    this.writer.reset().ints(shape);
    if (this.counters !== undefined) this.counters.uploads++;
    const handle = this.native.create(asNativeArray(values, dtype), DTYPE_CODES[dtype]);
    return { handle, shape: shape.slice(), dtype, refCount };
  }
}
