// NumPy .npy files (format version 1.0) for uint8, int32 and float32 arrays in C order.

/** The arrays this module reads and writes. */
export type NpyData = Uint8Array | Int32Array | Float32Array;

export interface NpyArray {
  readonly data: NpyData;
  readonly shape: readonly number[];
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const PREAMBLE_BYTES = 10; // magic (6) + version (2) + header length u16 (2)
const ALIGNMENT = 64;

const descrOf = (data: NpyData): string =>
  data instanceof Float32Array ? '<f4' : data instanceof Int32Array ? '<i4' : '|u1';

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const corrupt = (problem: string): Error => new Error(`corrupt .npy file: ${problem}`);

function shapeLiteral(shape: readonly number[]): string {
  if (shape.length === 1) return `(${shape[0]},)`; // a one-element tuple needs its trailing comma
  return `(${shape.join(', ')})`;
}

/** Serialises a C-order array; the header is space-padded so the data starts at a multiple of 64 bytes. */
export function encodeNpy(data: NpyData, shape: readonly number[]): Uint8Array {
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`npy shape [${shape}] must hold non-negative integers`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count)
    throw new Error(`npy data has ${data.length} values but shape [${shape}] needs ${count}`);
  const dict = `{'descr': '${descrOf(data)}', 'fortran_order': False, 'shape': ${shapeLiteral(shape)}, }`;
  const unpadded = PREAMBLE_BYTES + dict.length + 1; // +1 for the closing newline
  const headerText = `${dict}${' '.repeat((ALIGNMENT - (unpadded % ALIGNMENT)) % ALIGNMENT)}\n`;
  if (headerText.length > 0xffff)
    throw new Error(`npy header of ${headerText.length} bytes is too long for v1.0`);
  const out = new Uint8Array(PREAMBLE_BYTES + headerText.length + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1; // major version
  out[7] = 0; // minor version
  new DataView(out.buffer).setUint16(8, headerText.length, true);
  out.set(new TextEncoder().encode(headerText), PREAMBLE_BYTES);
  const body = PREAMBLE_BYTES + headerText.length;
  if (IS_LITTLE_ENDIAN || data instanceof Uint8Array) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), body);
  } else {
    const view = new DataView(out.buffer, body);
    for (let i = 0; i < data.length; i++) {
      if (data instanceof Float32Array) view.setFloat32(4 * i, data[i]!, true);
      else view.setInt32(4 * i, data[i]!, true);
    }
  }
  return out;
}

function parseHeader(text: string): { descr: string; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw corrupt(`header ${JSON.stringify(text.trim())} lacks descr, fortran_order or shape`);
  }
  if (fortran === 'True')
    throw new Error('.npy file is in Fortran order; save it in C order (np.ascontiguousarray)');
  const parts = shapeText
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const shape = parts.map((p) => (/^\d+L?$/.test(p) ? Number.parseInt(p, 10) : Number.NaN));
  if (shape.some((d) => !Number.isSafeInteger(d))) throw corrupt(`invalid shape (${shapeText})`);
  return { descr, shape };
}

/** Parses a .npy file (version 1.0 to 3.0) holding uint8, int32 or float32 data in C order. */
export function decodeNpy(bytes: Uint8Array): NpyArray {
  if (bytes.length < PREAMBLE_BYTES || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw corrupt('it does not start with the \\x93NUMPY magic string');
  }
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Versions 2 and 3 only widen the header length field to 4 bytes.
  const lengthBytes = major === 1 ? 2 : major === 2 || major === 3 ? 4 : 0;
  if (lengthBytes === 0) throw corrupt(`unsupported format version ${major}.${bytes[7]}`);
  if (bytes.length < 8 + lengthBytes) throw corrupt('file ends inside the header length');
  const headerLength = lengthBytes === 2 ? view.getUint16(8, true) : view.getUint32(8, true);
  const body = 8 + lengthBytes + headerLength;
  if (body > bytes.length) throw corrupt(`header length ${headerLength} runs past the end of the file`);
  const { descr, shape } = parseHeader(new TextDecoder().decode(bytes.subarray(8 + lengthBytes, body)));
  const count = shape.reduce((a, b) => a * b, 1);
  const itemBytes = descr === '|u1' || descr === '<u1' ? 1 : descr === '<i4' || descr === '<f4' ? 4 : 0;
  if (itemBytes === 0)
    throw new Error(`.npy dtype ${descr} is not supported (use uint8, little-endian int32 or float32)`);
  if (bytes.length - body !== count * itemBytes) {
    throw corrupt(
      `data has ${bytes.length - body} bytes but ${descr} shape (${shape}) needs ${count * itemBytes}`,
    );
  }
  const raw = new Uint8Array(bytes.subarray(body)); // copy: aligned, and independent of a pooled Node Buffer
  if (itemBytes === 1) return { data: raw, shape };
  if (IS_LITTLE_ENDIAN) {
    return { data: descr === '<f4' ? new Float32Array(raw.buffer) : new Int32Array(raw.buffer), shape };
  }
  const dv = new DataView(raw.buffer);
  const data = descr === '<f4' ? new Float32Array(count) : new Int32Array(count);
  for (let i = 0; i < count; i++)
    data[i] = descr === '<f4' ? dv.getFloat32(4 * i, true) : dv.getInt32(4 * i, true);
  return { data, shape };
}
