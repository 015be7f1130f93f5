import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import { stopGradient } from './stop-gradient.js';
import * as tf from './tf.js';

before(testBackend);

describe('stopGradient', () => {
  it('passes values forward and no gradient back: d/dx [sg(x) * x] = sg(x)', async () => {
    const x = tf.tensor1d([1, -2, 3]);
    const grad = tf.grad((v: tf.Tensor) => stopGradient(v).mul(v).sum())(x);
    assert.deepEqual(Array.from(await grad.data()), [1, -2, 3]); // without sg it would be 2x
    tf.dispose([x, grad]);
  });

  it('keeps its values after the input is disposed, and frees them with the last owner', async () => {
    await expectNoLeak(async () => {
      const x = tf.tensor2d([
        [1, 2],
        [3, 4],
      ]);
      const y = stopGradient(x);
      x.dispose();
      assert.deepEqual(await y.array(), [
        [1, 2],
        [3, 4],
      ]);
      y.dispose();
    });
  });

  it('reads nothing back from the backend', () => {
    const backend = tf.backend();
    const reads = { count: 0 };
    const readSync = backend.readSync.bind(backend);
    const read = backend.read.bind(backend);
    backend.readSync = (id) => {
      reads.count++;
      return readSync(id);
    };
    backend.read = (id) => {
      reads.count++;
      return read(id);
    };
    try {
      const x = tf.ones([2, 3]);
      tf.dispose([stopGradient(x), x]);
    } finally {
      backend.readSync = readSync;
      backend.read = read;
    }
    assert.equal(reads.count, 0);
  });
});
