// Safetensors format, pure and browser-safe: u64 LE header length, JSON header, then raw little-endian
// tensor bytes. File IO lives in safetensors.ts.
import * as tf from '../core/tf.js';

/** Element types this module reads and writes. F16 is widened to float32 and I64 narrowed to int32 on read. */
export type SafetensorsDtype = 'F32' | 'F16' | 'I32' | 'I64' | 'U8' | 'BOOL';

/**
 * One tensor as plain data. `data` is Float32Array for F32/F16, Int32Array for I32/I64 and Uint8Array
 * for U8/BOOL (BOOL values are 0 or 1); its length is the product of `shape`.
 */
export interface TensorRecord {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array | Uint8Array;
}

export interface DecodedSafetensors {
  readonly tensors: Record<string, TensorRecord>;
  readonly metadata: Record<string, string>;
}

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = {
  F32: 4,
  F16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  BOOL: 1,
};
// The in-memory array type of each dtype (F16 widened to float32, I64 narrowed to int32).
const ARRAY_TYPE = {
  F32: Float32Array,
  F16: Float32Array,
  I32: Int32Array,
  I64: Int32Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};
const DTYPES = Object.keys(BYTES_PER_ELEMENT) as SafetensorsDtype[];
const METADATA_KEY = '__metadata__';

const isDtype = (value: unknown): value is SafetensorsDtype =>
  typeof value === 'string' && (DTYPES as string[]).includes(value);

const elementCount = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const corrupt = (problem: string): Error => new Error(`corrupt safetensors file: ${problem}`);

// Typed arrays use the platform's byte order; the format is little-endian, so bulk copies need that too.
const IS_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// ---
// Half-precision conversion (IEEE 754 binary16), round to nearest even.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function floatToHalf(value: number): number {
  f32[0] = value;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0); // Inf or NaN
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign; // underflow -> signed zero
    // Subnormal: shift the mantissa (with its implicit 1) right, rounding to nearest even.
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    const rounded = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    const up = rest > half || (rest === half && (rounded & 1) === 1) ? 1 : 0;
    return sign | (rounded + up);
  }
  const base = sign | (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and may reach Inf).
  return base + (rest > 0x1000 || (rest === 0x1000 && (base & 1) === 1) ? 1 : 0);
}

function halfToFloat(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >>> 10) & 0x1f;
  const mantissa = half & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

// ---
// Encoding.

function checkRecord(name: string, record: TensorRecord): void {
  const { dtype, shape, data } = record;
  if (!isDtype(dtype))
    throw new Error(`tensor "${name}": unknown dtype ${String(dtype)} (use one of ${DTYPES})`);
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`tensor "${name}": shape [${shape}] must hold non-negative integers`);
  }
  if (data.length !== elementCount(shape)) {
    throw new Error(
      `tensor "${name}": data has ${data.length} values but shape [${shape}] needs ${elementCount(shape)}`,
    );
  }
  const expected = ARRAY_TYPE[dtype];
  if (!(data instanceof expected)) {
    throw new Error(
      `tensor "${name}": dtype ${dtype} needs a ${expected.name}, got ${data.constructor.name}`,
    );
  }
}

function writeTensorBytes(record: TensorRecord, out: DataView, offset: number): void {
  const { dtype, data } = record;
  if (IS_LITTLE_ENDIAN && (dtype === 'F32' || dtype === 'I32' || dtype === 'U8')) {
    new Uint8Array(out.buffer, out.byteOffset + offset, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    return;
  }
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (dtype === 'F32') out.setFloat32(offset + 4 * i, v, true);
    else if (dtype === 'F16') out.setUint16(offset + 2 * i, floatToHalf(v), true);
    else if (dtype === 'I32') out.setInt32(offset + 4 * i, v, true);
    else if (dtype === 'I64') out.setBigInt64(offset + 8 * i, BigInt(v), true);
    else if (dtype === 'BOOL') out.setUint8(offset + i, v ? 1 : 0);
    else out.setUint8(offset + i, v);
  }
}

/**
 * Serialises tensors (sorted by name, so equal input gives equal bytes) and optional string metadata.
 * The header is padded with spaces so the data section starts at an 8-byte boundary.
 */
export function encodeSafetensors(
  tensors: Record<string, TensorRecord>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string')
        throw new Error(`metadata "${key}" must be a string, got ${typeof value}`);
    }
    header[METADATA_KEY] = Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : 1)));
  }
  let dataLength = 0;
  for (const name of names) {
    if (name === METADATA_KEY) throw new Error(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    const record = tensors[name]!;
    checkRecord(name, record);
    const byteLength = record.data.length * BYTES_PER_ELEMENT[record.dtype];
    header[name] = {
      dtype: record.dtype,
      shape: [...record.shape],
      data_offsets: [dataLength, dataLength + byteLength],
    };
    dataLength += byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + headerLength + dataLength);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  bytes.set(json, 8);
  bytes.fill(0x20, 8 + json.length, 8 + headerLength);
  for (const name of names) {
    const entry = header[name] as { data_offsets: [number, number] };
    writeTensorBytes(tensors[name]!, view, 8 + headerLength + entry.data_offsets[0]);
  }
  return bytes;
}

// ---
// Decoding.

interface Entry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

function parseEntry(name: string, raw: unknown, dataLength: number): Entry {
  if (typeof raw !== 'object' || raw === null) throw corrupt(`header entry "${name}" is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (!isDtype(dtype))
    throw corrupt(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)} (known: ${DTYPES})`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw corrupt(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    throw corrupt(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataLength) {
    throw corrupt(
      `tensor "${name}" data_offsets [${begin}, ${end}] lie outside the ${dataLength}-byte data section`,
    );
  }
  const expected = elementCount(shape as number[]) * BYTES_PER_ELEMENT[dtype];
  if (end - begin !== expected) {
    throw corrupt(`tensor "${name}" spans ${end - begin} bytes but ${dtype}[${shape}] needs ${expected}`);
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

function toInt32(value: bigint, name: string): number {
  if (value > 2147483647n || value < -2147483648n) {
    throw new Error(`cannot read I64 tensor "${name}": its value ${value} does not fit in int32`);
  }
  return Number(value);
}

function readTensorData(entry: Entry, section: Uint8Array): TensorRecord['data'] {
  // A copy (new Uint8Array, not .slice(), which shares memory on a Node Buffer) so typed views are aligned.
  const raw = new Uint8Array(section.subarray(entry.begin, entry.end));
  const view = new DataView(raw.buffer);
  const length = elementCount(entry.shape);
  switch (entry.dtype) {
    case 'U8':
      return raw;
    case 'BOOL':
      if (raw.some((v) => v > 1)) throw corrupt(`BOOL tensor "${entry.name}" holds a value > 1`);
      return raw;
    case 'F32':
      if (IS_LITTLE_ENDIAN) return new Float32Array(raw.buffer);
      return Float32Array.from({ length }, (_, i) => view.getFloat32(4 * i, true));
    case 'I32':
      if (IS_LITTLE_ENDIAN) return new Int32Array(raw.buffer);
      return Int32Array.from({ length }, (_, i) => view.getInt32(4 * i, true));
    case 'F16':
      return Float32Array.from({ length }, (_, i) => halfToFloat(view.getUint16(2 * i, true)));
    case 'I64':
      return Int32Array.from({ length }, (_, i) => toInt32(view.getBigInt64(8 * i, true), entry.name));
  }
}

/** Parses and fully validates a safetensors byte buffer; errors start with "corrupt safetensors file:". */
export function decodeSafetensors(bytes: Uint8Array): DecodedSafetensors {
  if (bytes.length < 8) throw corrupt(`only ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(bytes.length - 8)) {
    throw corrupt(
      `header length ${declared} runs past the end of the ${bytes.length}-byte file (truncated?)`,
    );
  }
  const headerLength = Number(declared);
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
    header = JSON.parse(text);
  } catch (err) {
    throw corrupt(`header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw corrupt('header is not a JSON object');
  }
  const dataOffset = 8 + headerLength;
  const dataLength = bytes.length - dataOffset;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name !== METADATA_KEY) {
      entries.push(parseEntry(name, raw, dataLength));
      continue;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw corrupt('__metadata__ is not an object');
    for (const [key, value] of Object.entries(raw)) {
      if (typeof value !== 'string') throw corrupt(`__metadata__ "${key}" is not a string`);
      metadata[key] = value;
    }
  }
  // Tensors must tile the data section exactly: no overlaps, no gaps, no trailing bytes.
  const byBegin = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous = '';
  for (const entry of byBegin) {
    if (entry.begin < covered) {
      throw corrupt(
        `tensors "${previous}" and "${entry.name}" overlap (data_offsets ${entry.begin} < ${covered})`,
      );
    }
    if (entry.begin > covered) throw corrupt(`data bytes ${covered}..${entry.begin} belong to no tensor`);
    covered = entry.end;
    previous = entry.name;
  }
  if (covered !== dataLength)
    throw corrupt(`data section has ${dataLength} bytes but tensors cover ${covered}`);
  const dataSection = bytes.subarray(dataOffset);
  const tensors: Record<string, TensorRecord> = {};
  for (const entry of entries) {
    tensors[entry.name] = {
      dtype: entry.dtype,
      shape: entry.shape,
      data: readTensorData(entry, dataSection),
    };
  }
  return { tensors, metadata };
}

// ---
// tf.Tensor conversion.

/** Decoded records as tensors: F32/F16 -> float32, I32/I64/U8 -> int32, BOOL -> bool. Caller owns the result. */
export function recordsToTensors(records: Record<string, TensorRecord>): Record<string, tf.Tensor> {
  const tensors: Record<string, tf.Tensor> = {};
  for (const [name, { dtype, shape, data }] of Object.entries(records)) {
    if (dtype === 'F32' || dtype === 'F16') tensors[name] = tf.tensor(data, [...shape], 'float32');
    else if (dtype === 'BOOL') tensors[name] = tf.tensor(data, [...shape], 'bool');
    else tensors[name] = tf.tensor(Int32Array.from(data), [...shape], 'int32');
  }
  return tensors;
}
