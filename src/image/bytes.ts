// Images in [-1, 1] as 0..255 bytes (browser-safe: the PNG module needs Node).
import type * as tf from '../core/tf.js';

/** Maps a value in [-1, 1] to 0..255, rounded and clipped (NaN -> 0). */
export function signedToByte(value: number): number {
  const v = Math.round((value + 1) * 127.5);
  return v > 0 ? Math.min(v, 255) : 0; // also maps NaN to 0
}

/** Reads an NHWC tensor in [-1, 1] as 0..255 bytes (rounded, clipped). Does not dispose `t`. */
export async function toUint8Images(t: tf.Tensor4D): Promise<Uint8Array> {
  const values = await t.data(); // data() waits for the backend (a GPU sync)
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = signedToByte(values[i]!);
  return out;
}
