import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { maxAbsDiff, testBackend } from '../test-utils/backend.js';
import { rotary } from './layers.js';
import { initParams, ParamScope } from './params.js';
import {
  BOS_TOKEN,
  detokenize,
  emptyPromptTokens,
  PAD_TOKEN,
  promptPositions,
  type TextEncoderConfig,
  textEncoderForward,
  tokenize,
  tokenizeAll,
} from './text-encoder.js';

before(testBackend);

const cfg: TextEncoderConfig = { maxTokens: 12, width: 16, layers: 2, heads: 4 };

describe('byte tokenizer', () => {
  it('round-trips digit strings, captions and non-ASCII text exactly', () => {
    for (const prompt of ['', '407', '0123456789', 'a red fox', 'café ☕', 'naïve 日本']) {
      const ids = tokenize(prompt, 24);
      assert.equal(ids.length, 24);
      assert.equal(ids[0], BOS_TOKEN);
      assert.equal(detokenize(ids), prompt);
    }
  });

  it('gives one token per digit after BOS, then padding', () => {
    assert.deepEqual([...tokenize('407', 6)], [BOS_TOKEN, 54, 50, 57, PAD_TOKEN, PAD_TOKEN]);
    assert.deepEqual([...tokenize('', 3)], [BOS_TOKEN, PAD_TOKEN, PAD_TOKEN]);
  });

  it('refuses a prompt longer than the model reads, naming the limit', () => {
    assert.doesNotThrow(() => tokenize('12345678901', 12));
    assert.throws(() => tokenize('123456789012', 12), /12 bytes; this model reads at most 11/);
    // Multi-byte characters count by their bytes, so none is ever cut in half.
    assert.throws(() => tokenize('☕☕☕☕', 12), /12 bytes/);
  });

  it('refuses token ids no prompt produces', () => {
    assert.throws(() => detokenize([BOS_TOKEN, 300]), /token 300 at position 1/);
    assert.throws(() => detokenize([BOS_TOKEN, 2 + 0xff]), /decode|invalid|encoded/i);
  });

  it('lays out several prompts row by row, and the empty prompt as BOS alone', () => {
    const ids = tokenizeAll(['1', '', '22'], 4);
    assert.deepEqual([...ids], [1, 51, 0, 0, 1, 0, 0, 0, 1, 52, 52, 0]);
    const empty = emptyPromptTokens(2, 4);
    assert.deepEqual(empty.shape, [2, 4]);
    assert.deepEqual([...empty.dataSync()], [1, 0, 0, 0, 1, 0, 0, 0]);
    empty.dispose();
  });
});

describe('text encoder', () => {
  it('gives token states and a pooled vector that depend on the prompt', () => {
    const params = initParams(new Rng(0), (s) =>
      textEncoderForward(s, cfg, emptyPromptTokens(1, cfg.maxTokens)),
    );
    // The blocks' output layers start at zero (each block the identity): move them off it, as training does.
    for (const [name, p] of Object.entries(params)) {
      params[name] = tf.tidy(() => p.add(randn(new Rng(name.length), p.shape).mul(0.1)));
      p.dispose();
    }
    const encode = (prompts: string[]) =>
      textEncoderForward(
        ParamScope.apply(params),
        cfg,
        tf.tensor2d(tokenizeAll(prompts, cfg.maxTokens), [prompts.length, cfg.maxTokens], 'int32'),
      );
    tf.tidy(() => {
      const { tokens, pooled } = encode(['407', '408', '407', '704']);
      assert.deepEqual(tokens.shape, [4, 12, 16]);
      assert.deepEqual(pooled.shape, [4, 16]);
      const row = (t: tf.Tensor, i: number) => t.slice([i], [1]);
      assert.equal(maxAbsDiff(row(pooled, 0), row(pooled, 2)), 0);
      assert.ok(maxAbsDiff(row(pooled, 0), row(pooled, 1)) > 1e-4, 'the pooled vector sees the last digit');
      assert.ok(maxAbsDiff(row(pooled, 0), row(pooled, 3)) > 1e-4, 'the pooled vector sees the order');
    });
    assert.throws(
      () => textEncoderForward(ParamScope.apply(params), cfg, emptyPromptTokens(1, 8)),
      /got 8 tokens per prompt, the model reads 12/,
    );
    tf.dispose(Object.values(params));
  });
});

describe('prompt positions', () => {
  it("spread any prompt's bytes over [0, 1] in reading order, with BOS and padding at 0", () => {
    const ids = tf.tensor2d(tokenizeAll(['7', '407', '123456'], 8), [3, 8], 'int32');
    const got = promptPositions(ids).arraySync();
    const want = [
      [0, 0.5, 0, 0, 0, 0, 0, 0],
      [0, 1 / 6, 3 / 6, 5 / 6, 0, 0, 0, 0],
      [0, 1 / 12, 3 / 12, 5 / 12, 7 / 12, 9 / 12, 11 / 12, 0],
    ];
    got.forEach((row, i) => {
      row.forEach((p, j) => {
        assert.ok(Math.abs(p - want[i]![j]!) < 1e-6, `prompt ${i}, token ${j}: ${p} vs ${want[i]![j]}`);
      });
    });
    ids.dispose();
  });

  it('enter attention only as the difference between query and key positions (rotary)', () => {
    const rng = new Rng(3);
    const heads = 2;
    const frequencies = [Math.PI, 2 * Math.PI, 4 * Math.PI];
    tf.tidy(() => {
      const q = randn(rng, [2 * heads, 5, 8]) as tf.Tensor3D;
      const k = randn(rng, [2 * heads, 4, 8]) as tf.Tensor3D;
      const qAt = randn(rng, [1, 5]).abs() as tf.Tensor2D;
      const kAt = randn(rng, [2, 4]).abs() as tf.Tensor2D;
      const scores = (shift: number) =>
        tf.matMul(
          rotary(q, qAt.add(shift) as tf.Tensor2D, heads, frequencies),
          rotary(k, kAt.add(shift) as tf.Tensor2D, heads, frequencies),
          false,
          true,
        );
      assert.ok(maxAbsDiff(scores(0), scores(0.37)) < 1e-4, 'a common shift leaves the scores unchanged');
      const moved = tf.matMul(
        rotary(q, qAt.add(0.2) as tf.Tensor2D, heads, frequencies),
        rotary(k, kAt, heads, frequencies),
        false,
        true,
      );
      assert.ok(maxAbsDiff(scores(0), moved) > 1e-2, 'moving the queries alone changes them');
      // The channels past 2 * frequencies.length pass unchanged; rotation keeps each vector's length.
      const turned = rotary(q, qAt, heads, frequencies);
      assert.equal(maxAbsDiff(turned.slice([0, 0, 6], [-1, -1, 2]), q.slice([0, 0, 6], [-1, -1, 2])), 0);
      assert.ok(maxAbsDiff(turned.norm('euclidean', 2), q.norm('euclidean', 2)) < 1e-4);
    });
  });
});
