// TF.js backend whose tensors live in libtorch (through the ladder_torch addon); kernels run there too.
import { availableParallelism } from 'node:os';
import * as tf from '../../core/tf.js';
import { loadAddon, type NativeAddon, type NativeInfo } from './addon.js';
import { torchKernels } from './kernels/all.js';
import { type OpName, resolveOpCodes } from './ops.js';
import {
  ArgWriter,
  DTYPE_CODES,
  DTYPES_BY_CODE,
  FLOAT_CAP,
  FLOAT_OFFSET,
  INT_CAP,
  type NativeDtype,
  OUT_CAP,
  OUT_OFFSET,
} from './protocol.js';

/** Where torch kernels run. */
export type TorchDevice = 'cpu' | 'cuda';

/** Options of {@link registerTorchBackend}. */
export interface TorchBackendOptions {
  /** Intra-op threads; default LADDER_TORCH_THREADS, else os.availableParallelism(). */
  readonly threads?: number;
  /** Default LADDER_TORCH_DEVICE, else 'cpu'. */
  readonly device?: TorchDevice;
  /** Allow TF32 matmul/conv on recent NVIDIA GPUs (faster, ~1e-3 relative error). Default false. */
  readonly allowTF32?: boolean;
}

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

  constructor(
    private readonly native: NativeAddon,
    device: TorchDevice,
    threads: number,
    allowTF32: boolean,
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
      device,
      threads,
      allowTF32,
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
  } {
    const [numNativeTensors, numNativeBytes] = this.native.stats();
    return {
      unreliable: true,
      reasons: ['numBytes counts tfjs tensors; views share libtorch storage, see numNativeBytes'],
      numNativeTensors,
      numNativeBytes,
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
    this.native.run(this.code('reshape'));
    const view = this.writer.out[1] ?? 0;
    this.temps.push(view);
    return view;
  }

  /** Runs a native op on the written arguments; the caller owns the returned tensors. */
  run(op: OpName): tf.TensorInfo[] {
    try {
      const count = this.native.run(this.code(op));
      return this.collect(count);
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
    const handle = this.native.create(asNativeArray(values, dtype), DTYPE_CODES[dtype]);
    return { handle, shape: shape.slice(), dtype, refCount };
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

function zerosFor(dtype: tf.DataType, size: number): tf.backend_util.BackendValues {
  if (dtype === 'int32') return new Int32Array(size);
  if (dtype === 'bool') return new Uint8Array(size);
  if (dtype === 'string') return Array.from({ length: size }, () => new Uint8Array(0));
  return new Float32Array(size);
}

/** The typed array the addon expects for a dtype, converting when tfjs hands over another kind. */
function asNativeArray(
  values: tf.backend_util.BackendValues,
  dtype: NativeDtype,
): Float32Array | Int32Array | Uint8Array {
  if (dtype === 'float32')
    return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  if (dtype === 'int32')
    return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
  if (values instanceof Uint8Array) return values;
  return Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0));
}

// --- registration ------------------------------------------------------------------------------

function envDevice(): TorchDevice | undefined {
  const v = process.env.LADDER_TORCH_DEVICE;
  if (v === undefined || v === '') return undefined;
  if (v === 'cpu' || v === 'cuda') return v;
  throw new Error(`LADDER_TORCH_DEVICE=${v} is not a device; use 'cpu' or 'cuda'`);
}

function envThreads(): number | undefined {
  const v = process.env.LADDER_TORCH_THREADS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`LADDER_TORCH_THREADS=${v} is not a positive integer`);
  return n;
}

let registered: { device: TorchDevice; threads: number } | undefined;

/**
 * Loads the addon and registers the 'torch' backend and its kernels with tfjs (then call
 * `tf.setBackend('torch')`). Throws an Error saying why the backend is unavailable (addon not built,
 * libtorch missing, CUDA requested but absent). A second call is a no-op.
 */
export async function registerTorchBackend(opts: TorchBackendOptions = {}): Promise<void> {
  if (registered !== undefined) return;
  const native = loadAddon();
  const device = opts.device ?? envDevice() ?? 'cpu';
  const threads = opts.threads ?? envThreads() ?? availableParallelism();
  const allowTF32 = opts.allowTF32 ?? false;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`registerTorchBackend: threads=${threads} must be a positive integer`);
  }
  // Build one backend now so init errors surface here, not as a tfjs warning at setBackend time.
  let first: TorchBackend | undefined = new TorchBackend(native, device, threads, allowTF32);
  for (const kernel of torchKernels()) tf.registerKernel({ ...kernel, backendName: 'torch' });
  tf.registerBackend(
    'torch',
    () => {
      const backend = first ?? new TorchBackend(native, device, threads, allowTF32);
      first = undefined;
      return backend;
    },
    3,
  );
  registered = { device, threads };
}
