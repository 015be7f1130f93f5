// Shared-buffer calling convention with the addon: ints/floats in, handles/dtypes/shapes out.
// Arguments are written in the order the native op reads them (see native/src/common.h), so a
// kernel call costs one N-API call with a single number argument.

/** Total size of the shared buffer and its three regions. */
const BYTES = 1 << 20;
export const INT_CAP = 65536; // bytes [0, 256 KiB)
export const FLOAT_OFFSET = 262144; // 8192 float64 = 64 KiB
export const FLOAT_CAP = 8192;
export const OUT_OFFSET = 524288; // 131072 int32 = 512 KiB
export const OUT_CAP = 131072;

/** tfjs dtypes the addon stores, by code. */
export type NativeDtype = 'float32' | 'int32' | 'bool';
export const DTYPE_CODES: Readonly<Record<NativeDtype, number>> = { float32: 0, int32: 1, bool: 2 };
export const DTYPES_BY_CODE: readonly NativeDtype[] = ['float32', 'int32', 'bool'];

/** Sequential writer over the argument regions, plus a view of the output region. */
export class ArgWriter {
  readonly buffer = new ArrayBuffer(BYTES);
  readonly out = new Int32Array(this.buffer, OUT_OFFSET, OUT_CAP);
  private readonly intSlots = new Int32Array(this.buffer, 0, INT_CAP);
  private readonly floatSlots = new Float64Array(this.buffer, FLOAT_OFFSET, FLOAT_CAP);
  private ip = 0;
  private fp = 0;

  reset(): this {
    this.ip = 0;
    this.fp = 0;
    return this;
  }

  int(value: number): this {
    this.intSlots[this.ip++] = value;
    return this;
  }

  flag(value: boolean): this {
    this.intSlots[this.ip++] = value ? 1 : 0;
    return this;
  }

  num(value: number): this {
    this.floatSlots[this.fp++] = value;
    return this;
  }

  /** Length-prefixed int list. */
  ints(values: ArrayLike<number>): this {
    this.reserveInts(values.length + 1);
    this.intSlots[this.ip++] = values.length;
    for (let k = 0; k < values.length; k++) this.intSlots[this.ip++] = values[k] ?? 0;
    return this;
  }

  /** Length-prefixed float list (the length goes to the int region). */
  nums(values: ArrayLike<number>): this {
    if (this.fp + values.length > FLOAT_CAP) {
      throw new Error(`torch backend: ${values.length} float arguments exceed the ${FLOAT_CAP}-slot buffer`);
    }
    this.int(values.length);
    for (let k = 0; k < values.length; k++) this.floatSlots[this.fp++] = values[k] ?? 0;
    return this;
  }

  /** Length-prefixed char codes (ASCII strings such as einsum equations). */
  str(text: string): this {
    this.reserveInts(text.length + 1);
    this.intSlots[this.ip++] = text.length;
    for (let k = 0; k < text.length; k++) this.intSlots[this.ip++] = text.charCodeAt(k);
    return this;
  }

  private reserveInts(n: number): void {
    if (this.ip + n > INT_CAP) {
      throw new Error(`torch backend: ${n} int arguments exceed the ${INT_CAP}-slot buffer`);
    }
  }
}

/** True when two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

/** Zero values of a dtype (strings: empty byte strings). */
export function zerosFor(dtype: string, size: number): Float32Array | Int32Array | Uint8Array | Uint8Array[] {
  if (dtype === 'int32') return new Int32Array(size);
  if (dtype === 'bool') return new Uint8Array(size);
  if (dtype === 'string') return Array.from({ length: size }, () => new Uint8Array(0));
  return new Float32Array(size);
}

/** The typed array the addon expects for a dtype, converting when tfjs hands over another kind. */
export function asNativeArray(values: unknown, dtype: NativeDtype): Float32Array | Int32Array | Uint8Array {
  if (dtype === 'float32') {
    return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  }
  if (dtype === 'int32')
    return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
  if (values instanceof Uint8Array) return values;
  return Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0));
}
