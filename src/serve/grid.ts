// Images to one RGBA picture for a canvas (pure, browser-safe).
import * as tf from '../core/tf.js';

export interface RgbaGrid {
  readonly rgba: Uint8ClampedArray;
  readonly width: number;
  readonly height: number;
}

/**
 * Lays out `n` images of h x w x c byte values (NHWC, c = 1 grey, 3 RGB or 4 RGBA) in rows of `columns`,
 * as opaque RGBA. Cells past the last image stay black.
 */
export function layoutGrid(
  values: ArrayLike<number>,
  shape: readonly [number, number, number, number],
  columns: number,
): RgbaGrid {
  const [n, h, w, c] = shape;
  if (c !== 1 && c !== 3 && c !== 4) throw new Error(`cannot show images with ${c} channels (use 1, 3 or 4)`);
  if (values.length !== n * h * w * c) {
    throw new Error(`${values.length} values do not make ${n} images of ${h}x${w}x${c}`);
  }
  const cols = Math.max(1, Math.min(columns, n));
  const rows = Math.ceil(n / cols);
  const width = cols * w;
  const height = rows * h;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
  for (let k = 0; k < n; k++) {
    const x0 = (k % cols) * w;
    const y0 = Math.floor(k / cols) * h;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const src = ((k * h + y) * w + x) * c;
        const dst = ((y0 + y) * width + x0 + x) * 4;
        const r = values[src]!;
        rgba[dst] = r;
        rgba[dst + 1] = c === 1 ? r : values[src + 1]!;
        rgba[dst + 2] = c === 1 ? r : values[src + 2]!;
      }
    }
  }
  return { rgba, width, height };
}

/** Images in [-1, 1] as a grid picture (reads the tensor back; does not dispose it). */
export async function imagesToGrid(images: tf.Tensor4D, columns: number): Promise<RgbaGrid> {
  const bytes = tf.tidy(() => images.add(1).mul(127.5).round().clipByValue(0, 255).cast('int32'));
  try {
    const [n, h, w, c] = images.shape;
    return layoutGrid(await bytes.data(), [n, h, w, c], columns);
  } finally {
    bytes.dispose();
  }
}
