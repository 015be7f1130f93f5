import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import { maxAbsDiff, testBackend } from '../test-utils/backend.js';
import { initParams, ParamScope } from './params.js';
import {
  BOS_TOKEN,
  detokenize,
  emptyPromptTokens,
  PAD_TOKEN,
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
      const { tokens, pooled } = encode(['407', '408', '407']);
      assert.deepEqual(tokens.shape, [3, 12, 16]);
      assert.deepEqual(pooled.shape, [3, 16]);
      const row = (t: tf.Tensor, i: number) => t.slice([i], [1]);
      assert.equal(maxAbsDiff(row(pooled, 0), row(pooled, 2)), 0);
      assert.ok(maxAbsDiff(row(pooled, 0), row(pooled, 1)) > 1e-4, 'the pooled vector sees the last digit');
    });
    assert.throws(
      () => textEncoderForward(ParamScope.apply(params), cfg, emptyPromptTokens(1, 8)),
      /got 8 tokens per prompt, the model reads 12/,
    );
    tf.dispose(Object.values(params));
  });
});
