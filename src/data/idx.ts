// IDX files (the MNIST container: big-endian dims after a 4-byte magic), raw or gzipped, uint8 data only.
import { open, readFile, stat } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

/** An IDX array of unsigned bytes; `dims[0]` counts the items. */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

const UBYTE = 0x08;

const corrupt = (path: string, problem: string): Error => new Error(`corrupt IDX file ${path}: ${problem}`);

function parseHeader(head: Uint8Array, fileBytes: number, path: string, rank: number): number[] {
  if (fileBytes < 4 + 4 * rank) throw corrupt(path, `only ${fileBytes} bytes, too short for a header`);
  if (head[0] !== 0 || head[1] !== 0) throw corrupt(path, 'magic number does not start with two zero bytes');
  if (head[2] !== UBYTE)
    throw corrupt(path, `element type 0x${head[2]!.toString(16)} is not unsigned byte (0x08)`);
  if (head[3] !== rank) throw corrupt(path, `it has ${head[3]} dimensions, expected ${rank}`);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
}

/**
 * Reads the first `limit` items (all by default) of an IDX file of the given rank. A raw file is read
 * partially; a `.gz` file is inflated whole. The file size is checked against the dims either way.
 */
export async function readIdx(
  path: string,
  rank: number,
  limit = Number.POSITIVE_INFINITY,
): Promise<IdxArray> {
  const headerBytes = 4 + 4 * rank;
  let head: Uint8Array;
  let fileBytes: number;
  let whole: Uint8Array | undefined;
  if (path.endsWith('.gz')) {
    try {
      whole = gunzipSync(await readFile(path));
    } catch (err) {
      throw corrupt(path, `cannot inflate it (${(err as Error).message})`);
    }
    head = whole.subarray(0, headerBytes);
    fileBytes = whole.length;
  } else {
    fileBytes = (await stat(path)).size;
    const handle = await open(path, 'r');
    try {
      head = new Uint8Array(headerBytes);
      await handle.read(head, 0, headerBytes, 0);
    } finally {
      await handle.close();
    }
  }
  const dims = parseHeader(head, fileBytes, path, rank);
  const itemBytes = dims.slice(1).reduce((a, b) => a * b, 1);
  const expected = headerBytes + dims[0]! * itemBytes;
  if (fileBytes !== expected) throw corrupt(path, `${fileBytes} bytes but dims [${dims}] need ${expected}`);
  const count = Math.min(dims[0]!, limit);
  const length = count * itemBytes;
  if (whole !== undefined)
    return { dims: [count, ...dims.slice(1)], data: whole.subarray(headerBytes, headerBytes + length) };
  const data = new Uint8Array(length);
  const handle = await open(path, 'r');
  try {
    await handle.read(data, 0, length, headerBytes);
  } finally {
    await handle.close();
  }
  return { dims: [count, ...dims.slice(1)], data };
}
