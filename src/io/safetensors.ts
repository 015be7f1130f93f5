// Safetensors checkpoint files: reading and writing tensors on disk (Node). The format itself, browser-safe,
// is in safetensors-format.ts and re-exported here.
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../core/fs.js';
import type * as tf from '../core/tf.js';
import {
  type DecodedSafetensors,
  decodeSafetensors,
  encodeSafetensors,
  recordsToTensors,
  type TensorRecord,
} from './safetensors-format.js';

export {
  type DecodedSafetensors,
  decodeSafetensors,
  encodeSafetensors,
  recordsToTensors,
  type SafetensorsDtype,
  type TensorRecord,
} from './safetensors-format.js';

// ---
// tf.Tensor helpers.

/** Writes tensors (float32, int32 or bool) and metadata to `path` atomically. Does not dispose the tensors. */
export async function saveTensors(
  path: string,
  tensors: Record<string, tf.Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const records: Record<string, TensorRecord> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const values = await t.data(); // data() waits for the backend (a GPU sync)
    if (t.dtype === 'float32') records[name] = { dtype: 'F32', shape: t.shape, data: values as Float32Array };
    else if (t.dtype === 'int32')
      records[name] = { dtype: 'I32', shape: t.shape, data: values as Int32Array };
    else if (t.dtype === 'bool')
      records[name] = { dtype: 'BOOL', shape: t.shape, data: Uint8Array.from(values as Uint8Array) };
    else
      throw new Error(
        `cannot save tensor "${name}" of dtype ${t.dtype} to ${path}: use float32, int32 or bool`,
      );
  }
  await writeFileAtomic(path, encodeSafetensors(records, metadata));
}

/**
 * Reads a safetensors file into tensors: F32/F16 -> float32, I32/I64/U8 -> int32, BOOL -> bool.
 * Caller owns the result.
 */
export async function loadTensors(
  path: string,
): Promise<{ tensors: Record<string, tf.Tensor>; metadata: Record<string, string> }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`safetensors file ${path} does not exist (check the path)`);
    throw new Error(`cannot read safetensors file ${path} (${code ?? (err as Error).message})`);
  }
  let decoded: DecodedSafetensors;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  return { tensors: recordsToTensors(decoded.tensors), metadata: decoded.metadata };
}
