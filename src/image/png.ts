// PNG image grids (samples by class or seed) and PNG decoding, through pngjs.
import { PNG } from 'pngjs';
import { writeFileAtomic } from '../core/fs.js';
import type * as tf from '../core/tf.js';
import { signedToByte, toUint8Images } from './bytes.js';

export interface GridOptions {
  /** Grid rows (e.g. one per class); images fill the grid row by row. */
  readonly rows: number;
  readonly cols: number;
  /** Gap between images and around the border, in output pixels (default 2). */
  readonly pad?: number;
  /** Integer nearest-neighbour upscale of each image (default 1). */
  readonly scale?: number;
  /** Gray level 0..255 of the gaps and of empty cells (default 128). */
  readonly background?: number;
}

/** A decoded PNG as 8-bit RGBA rows. */
export interface DecodedPng {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

// PNG colour types by channel count: grayscale, RGB, RGBA.
const COLOR_TYPE = { 1: 0, 3: 2, 4: 6 } as const;

/**
 * Lays out `n` NHWC images (`[-1, 1]` floats or 0..255 bytes, 1, 3 or 4 channels) in a rows x cols grid
 * and encodes it as a PNG of the same channel count.
 */
export function imageGridPng(
  images: Float32Array | Uint8Array,
  n: number,
  h: number,
  w: number,
  c: number,
  opts: GridOptions,
): Uint8Array {
  const { rows, cols, pad = 2, scale = 1, background = 128 } = opts;
  if (c !== 1 && c !== 3 && c !== 4) throw new Error(`image grid needs 1, 3 or 4 channels, got ${c}`);
  if (images.length !== n * h * w * c) {
    throw new Error(
      `image grid got ${images.length} values, but ${n} images of ${h}x${w}x${c} need ${n * h * w * c}`,
    );
  }
  for (const [key, value, min] of [
    ['rows', rows, 1],
    ['cols', cols, 1],
    ['pad', pad, 0],
    ['scale', scale, 1],
  ] as const) {
    if (!Number.isInteger(value) || value < min)
      throw new Error(`image grid ${key} must be an integer >= ${min}, got ${value}`);
  }
  if (n > rows * cols) throw new Error(`${n} images do not fit a ${rows}x${cols} grid: raise rows or cols`);
  const cellH = h * scale;
  const cellW = w * scale;
  const width = cols * cellW + (cols + 1) * pad;
  const height = rows * cellH + (rows + 1) * pad;
  const out = Buffer.alloc(width * height * c, background);
  if (c === 4) for (let i = 3; i < out.length; i += 4) out[i] = 255; // opaque gaps
  const isFloat = images instanceof Float32Array;
  for (let i = 0; i < n; i++) {
    const top = pad + Math.floor(i / cols) * (cellH + pad);
    const left = pad + (i % cols) * (cellW + pad);
    for (let y = 0; y < cellH; y++) {
      const src = (i * h + Math.floor(y / scale)) * w * c;
      const dst = ((top + y) * width + left) * c;
      for (let x = 0; x < cellW; x++) {
        const s = src + Math.floor(x / scale) * c;
        for (let ch = 0; ch < c; ch++) {
          const v = images[s + ch]!;
          out[dst + x * c + ch] = isFloat ? signedToByte(v) : v;
        }
      }
    }
  }
  const png = new PNG({ width, height });
  png.data = out;
  const colorType = COLOR_TYPE[c];
  // Input already has the output layout, so pngjs packs it without conversion.
  return PNG.sync.write(png, { colorType, inputColorType: colorType, inputHasAlpha: c === 4 });
}

/** Writes images `[n, h, w, c]` in [-1, 1] as a rows x cols PNG grid, atomically. Does not dispose `images`. */
export async function writeImageGrid(
  path: string,
  images: tf.Tensor4D,
  rows: number,
  cols: number,
  opts: Omit<GridOptions, 'rows' | 'cols'> = {},
): Promise<void> {
  const [n, h, w, c] = images.shape;
  const bytes = await toUint8Images(images);
  await writeFileAtomic(path, imageGridPng(bytes, n, h, w, c, { ...opts, rows, cols }));
}

/** Decodes any PNG to 8-bit RGBA. */
export function decodePng(bytes: Uint8Array): DecodedPng {
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new Error(`cannot decode PNG (${(err as Error).message})`);
  }
  return {
    width: png.width,
    height: png.height,
    data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length),
  };
}
