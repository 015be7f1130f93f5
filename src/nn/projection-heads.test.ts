import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { expectNoLeak, testBackend } from '../test-utils/backend.js';
import { disposeParams } from './params.js';
import { initProjectionHeads, type ProjectionHeadsConfig, projectionHeadLogits } from './projection-heads.js';

before(testBackend);

const heads: ProjectionHeadsConfig = {
  features: [
    { name: 'conv.0', channels: 3 },
    { name: 'conv.1', channels: 5 },
  ],
  channels: 8,
  groups: 4,
  embedDim: 6,
  numClasses: 4,
  imageDim: 7,
};

const values = (t: tf.Tensor): number[] => Array.from(t.dataSync());

describe('projection heads', () => {
  const rng = new Rng(2);
  const maps = [randn(rng, [2, 6, 6, 3]), randn(rng, [2, 3, 3, 5])] as tf.Tensor4D[];
  const image = randn(rng, [2, 7]) as tf.Tensor2D;
  const labels = tf.tensor1d([1, 2], 'int32');
  const params = initProjectionHeads(heads, new Rng(1));

  it('give one logit per sample and head, and each sample its own (no batch statistics)', async () => {
    await expectNoLeak(() =>
      tf.tidy(() => {
        const out = projectionHeadLogits(params, heads, maps, { labels, image });
        assert.equal(out.length, 2);
        for (const l of out) assert.deepEqual(l.shape, [2]);
        // Change sample 1's maps only: sample 0's logits stay.
        const moved = maps.map((m) =>
          m.add(tf.onesLike(m).mul(tf.tensor4d([0, 1], [2, 1, 1, 1]))),
        ) as tf.Tensor4D[];
        const again = projectionHeadLogits(params, heads, moved, { labels, image });
        for (const [k, l] of out.entries()) {
          assert.equal(values(again[k]!)[0], values(l)[0]);
          assert.notEqual(values(again[k]!)[1], values(l)[1]);
        }
      }),
    );
  });

  it('are conditioned on the real-image descriptor and on the class', () =>
    tf.tidy(() => {
      const base = projectionHeadLogits(params, heads, maps, { labels, image });
      const otherImage = projectionHeadLogits(params, heads, maps, {
        labels,
        image: image.mul(-1) as tf.Tensor2D,
      });
      const otherClass = projectionHeadLogits(params, heads, maps, {
        labels: tf.tensor1d([3, 0], 'int32'),
        image,
      });
      for (const [k, l] of base.entries()) {
        const a = values(l);
        assert.ok(
          values(otherImage[k]!).every((v, i) => Math.abs(v - a[i]!) > 1e-6),
          `head ${k} ignores the image embedding`,
        );
        assert.ok(
          values(otherClass[k]!).every((v, i) => Math.abs(v - a[i]!) > 1e-6),
          `head ${k} ignores the class`,
        );
      }
    }));

  it('name a map whose width does not match its head, and refuse empty or repeated taps', () => {
    assert.throws(
      () => tf.tidy(() => [...projectionHeadLogits(params, heads, [maps[1]!, maps[0]!], { labels, image })]),
      /"conv.0" has 5 channels but its head was built for 3/,
    );
    assert.throws(() => initProjectionHeads({ ...heads, features: [] }, new Rng(0)), /at least one/);
    assert.throws(
      () => initProjectionHeads({ ...heads, features: [heads.features[0]!, heads.features[0]!] }, new Rng(0)),
      /repeat/,
    );
    assert.throws(() => initProjectionHeads({ ...heads, groups: 3 }, new Rng(0)), /do not divide/);
  });

  after(() => {
    tf.dispose([...maps, image, labels]);
    disposeParams(params);
  });
});
