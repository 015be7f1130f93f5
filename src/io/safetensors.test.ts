import * as assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '../core/tf.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  loadTensors,
  saveTensors,
  type TensorRecord,
} from './safetensors.js';

const ascii = (text: string): number[] => [...text].map((ch) => ch.charCodeAt(0));

/** Builds a file from a header object and raw data bytes, the way the format spec lays it out. */
function buildFile(header: unknown, data: number[], headerLength?: number): Uint8Array {
  const json = ascii(JSON.stringify(header));
  const length = headerLength ?? json.length;
  const lengthBytes = [length & 0xff, (length >> 8) & 0xff, (length >> 16) & 0xff, 0, 0, 0, 0, 0];
  return Uint8Array.from([...lengthBytes, ...json, ...data]);
}

describe('safetensors', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('round-trips every dtype', () => {
    const tensors: Record<string, TensorRecord> = {
      f32: { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1.5, -2.25, 1e-20, 3.4e38]) },
      // Values exactly representable in half precision, incl. a subnormal and the max finite value.
      f16: { dtype: 'F16', shape: [5], data: Float32Array.from([0.5, -1024, 2 ** -24, 65504, 0]) },
      i32: { dtype: 'I32', shape: [3], data: Int32Array.from([-2147483648, 0, 2147483647]) },
      i64: { dtype: 'I64', shape: [3], data: Int32Array.from([-5, 0, 2147483647]) },
      u8: { dtype: 'U8', shape: [1, 3], data: Uint8Array.from([0, 128, 255]) },
      flags: { dtype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) },
      scalar: { dtype: 'F32', shape: [], data: Float32Array.from([7]) },
      empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    };
    const { tensors: back } = decodeSafetensors(encodeSafetensors(tensors));
    assert.deepEqual(Object.keys(back).sort(), Object.keys(tensors).sort());
    for (const [name, record] of Object.entries(tensors)) {
      assert.equal(back[name]!.dtype, record.dtype, name);
      assert.deepEqual(back[name]!.shape, record.shape, name);
      assert.deepEqual(back[name]!.data, record.data, name);
    }
  });

  it('rounds float32 to the nearest half on F16 writes', () => {
    const data = Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, -1e-9, Number.NaN]);
    const back = decodeSafetensors(encodeSafetensors({ h: { dtype: 'F16', shape: [5], data } })).tensors.h!
      .data;
    // Ties go to the even mantissa; overflow becomes Inf; tiny values become signed zero.
    assert.deepEqual([...back], [1, 1 + 2 ** -9, Number.POSITIVE_INFINITY, -0, Number.NaN]);
  });

  it('writes deterministic bytes with sorted keys and an 8-byte aligned header', () => {
    const a = { dtype: 'F32', shape: [1], data: Float32Array.from([1]) } as const;
    const b = { dtype: 'U8', shape: [3], data: Uint8Array.from([1, 2, 3]) } as const;
    const first = encodeSafetensors({ a, b }, { z: '1', y: '2' });
    const second = encodeSafetensors({ b, a }, { y: '2', z: '1' });
    assert.deepEqual(first, second);
    const headerLength = Number(new DataView(first.buffer).getBigUint64(0, true));
    assert.equal(headerLength % 8, 0);
    const header = new TextDecoder().decode(first.subarray(8, 8 + headerLength));
    assert.ok(header.indexOf('"a"') < header.indexOf('"b"'));
    assert.match(header, / *$/);
  });

  it('decodes a buffer written by hand from the spec', () => {
    const header = {
      __metadata__: { format: 'pt' },
      weight: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      step: { dtype: 'I64', shape: [], data_offsets: [8, 16] },
      half: { dtype: 'F16', shape: [2], data_offsets: [16, 20] },
      mask: { dtype: 'BOOL', shape: [2], data_offsets: [20, 22] },
    };
    const data = [
      ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0], // f32 1.0, -2.5
      ...[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // i64 -3
      ...[0x00, 0x3c, 0x00, 0xc0], // f16 1.0, -2.0
      ...[0x01, 0x00], // bool true, false
    ];
    // Header padded with two spaces, as writers do for alignment.
    const json = JSON.stringify(header);
    const bytes = buildFile(header, [], json.length + 2);
    const file = Uint8Array.from([...bytes, 0x20, 0x20, ...data]);
    const { tensors, metadata } = decodeSafetensors(file);
    assert.deepEqual(metadata, { format: 'pt' });
    assert.deepEqual(tensors.weight, { dtype: 'F32', shape: [2], data: Float32Array.from([1, -2.5]) });
    assert.deepEqual(tensors.step, { dtype: 'I64', shape: [], data: Int32Array.from([-3]) });
    assert.deepEqual(tensors.half, { dtype: 'F16', shape: [2], data: Float32Array.from([1, -2]) });
    assert.deepEqual(tensors.mask, { dtype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) });
  });

  describe('rejects corrupt files with a clear error', () => {
    const entry = (dtype: string, shape: number[], offsets: number[]) => ({
      dtype,
      shape,
      data_offsets: offsets,
    });
    const cases: [string, Uint8Array, RegExp][] = [
      ['too short', Uint8Array.from([1, 0, 0]), /too short/],
      ['header length beyond the file', buildFile({}, [], 500), /header length 500 runs past the end/],
      ['bad JSON', Uint8Array.from([3, 0, 0, 0, 0, 0, 0, 0, ...ascii('{x}')]), /not valid UTF-8 JSON/],
      ['header not an object', buildFile([1, 2], []), /not a JSON object/],
      ['unknown dtype', buildFile({ t: entry('F8', [1], [0, 1]) }, [0]), /unknown dtype "F8"/],
      ['bad shape', buildFile({ t: entry('U8', [-1], [0, 1]) }, [0]), /invalid shape/],
      [
        'offsets out of range',
        buildFile({ t: entry('U8', [4], [0, 4]) }, [0, 0]),
        /outside the 2-byte data section/,
      ],
      [
        'size mismatch',
        buildFile({ t: entry('F32', [2], [0, 4]) }, [0, 0, 0, 0]),
        /spans 4 bytes but F32\[2\] needs 8/,
      ],
      [
        'overlapping tensors',
        buildFile({ a: entry('U8', [2], [0, 2]), b: entry('U8', [2], [1, 3]) }, [0, 0, 0]),
        /"a" and "b" overlap/,
      ],
      [
        'gap in the data',
        buildFile({ a: entry('U8', [1], [1, 2]) }, [0, 0]),
        /bytes 0..1 belong to no tensor/,
      ],
      [
        'trailing bytes',
        buildFile({ a: entry('U8', [1], [0, 1]) }, [0, 0]),
        /has 2 bytes but tensors cover 1/,
      ],
      ['non-string metadata', buildFile({ __metadata__: { step: 3 } }, []), /"step" is not a string/],
      ['BOOL value above 1', buildFile({ a: entry('BOOL', [1], [0, 1]) }, [2]), /holds a value > 1/],
    ];
    for (const [label, bytes, pattern] of cases) {
      it(label, () => {
        assert.throws(
          () => decodeSafetensors(bytes),
          (err: Error) => {
            assert.match(err.message, /^corrupt safetensors file: /);
            assert.match(err.message, pattern);
            return true;
          },
        );
      });
    }
    it('int64 value that does not fit int32', () => {
      const bytes = buildFile({ a: entry('I64', [1], [0, 8]) }, [0, 0, 0, 0, 1, 0, 0, 0]);
      assert.throws(() => decodeSafetensors(bytes), /value 4294967296 does not fit in int32/);
    });
  });

  it('rejects records whose data does not match dtype or shape', () => {
    const bad = { dtype: 'F32', shape: [3], data: new Float32Array(2) } as const;
    assert.throws(() => encodeSafetensors({ bad }), /data has 2 values but shape \[3\] needs 3/);
    const wrongType = { dtype: 'I32', shape: [1], data: new Float32Array(1) } as const;
    assert.throws(() => encodeSafetensors({ wrongType }), /needs a Int32Array, got Float32Array/);
  });

  describe('tensor files', () => {
    let dir = '';
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'ladder-st-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('round-trips tensors and metadata through a file without leaking', async () => {
      const path = join(dir, 'ckpt.safetensors');
      const before = tf.memory().numTensors;
      const inputs = {
        w: tf.tensor2d([
          [1, 2],
          [3, 4.5],
        ]),
        step: tf.scalar(12, 'int32'),
        on: tf.tensor1d([true, false], 'bool'),
      };
      await saveTensors(path, inputs, { step: '12', method: 'ladd' });
      const { tensors, metadata } = await loadTensors(path);
      assert.deepEqual(metadata, { method: 'ladd', step: '12' });
      for (const [name, t] of Object.entries(inputs)) {
        const loaded = tensors[name]!;
        assert.equal(loaded.dtype, t.dtype, name);
        assert.deepEqual(loaded.shape, t.shape, name);
        assert.deepEqual(await loaded.data(), await t.data(), name);
      }
      tf.dispose([...Object.values(inputs), ...Object.values(tensors)]);
      assert.equal(tf.memory().numTensors, before);
    });

    it('loads U8 and F16 as int32 and float32 tensors', async () => {
      const path = join(dir, 'mixed.safetensors');
      await writeFile(
        path,
        encodeSafetensors({
          px: { dtype: 'U8', shape: [2], data: Uint8Array.from([0, 255]) },
          h: { dtype: 'F16', shape: [1], data: Float32Array.from([0.25]) },
        }),
      );
      const { tensors } = await loadTensors(path);
      assert.equal(tensors.px!.dtype, 'int32');
      assert.deepEqual([...(await tensors.px!.data())], [0, 255]);
      assert.equal(tensors.h!.dtype, 'float32');
      assert.deepEqual([...(await tensors.h!.data())], [0.25]);
      tf.dispose(Object.values(tensors));
    });

    it('names a missing file', async () => {
      const path = join(dir, 'nope.safetensors');
      await assert.rejects(
        loadTensors(path),
        (err: Error) => err.message.includes(path) && /does not exist/.test(err.message),
      );
    });

    it('names a corrupt file', async () => {
      const path = join(dir, 'bad.safetensors');
      const good = encodeSafetensors({ a: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
      await writeFile(path, good.subarray(0, good.length - 3));
      await assert.rejects(loadTensors(path), (err: Error) =>
        err.message.startsWith(`${path}: corrupt safetensors file`),
      );
      assert.equal((await readFile(path)).length, good.length - 3);
    });
  });
});
