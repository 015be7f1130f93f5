// Prompt conditioning: a byte-level tokenizer and a small transformer over its tokens, trained with the teacher
// (no pretrained text encoder can be downloaded here). Bytes rather than a learned vocabulary: nothing to train or
// ship, every string round-trips exactly, and a digit string is one token per digit, which is what per-digit
// conditioning needs (ByT5 makes the same choice for the same robustness).
import * as tf from '../core/tf.js';
import { attention } from '../engine/fused.js';
import { layerNorm, linear, type PromptContext, rotary, silu } from './layers.js';
import { normal, type ParamScope } from './params.js';

/** Padding after the prompt's bytes; attended to like any token, so masks are never needed. */
export const PAD_TOKEN = 0;
/** Begins every sequence: its final state is the pooled prompt embedding, and the empty prompt is BOS alone. */
export const BOS_TOKEN = 1;
const BYTE_OFFSET = 2;
export const VOCAB_SIZE = 256 + BYTE_OFFSET;

export interface TextEncoderConfig {
  /** Sequence length, BOS included: a prompt may have up to maxTokens - 1 UTF-8 bytes. */
  readonly maxTokens: number;
  readonly width: number;
  /** Transformer blocks. */
  readonly layers: number;
  readonly heads: number;
}

export function validateTextEncoderConfig(cfg: TextEncoderConfig): void {
  const fail = (msg: string): never => {
    throw new Error(`invalid text encoder config: ${msg}`);
  };
  if (!(Number.isInteger(cfg.maxTokens) && cfg.maxTokens >= 2))
    fail(`maxTokens must be >= 2, got ${cfg.maxTokens}`);
  if (!(Number.isInteger(cfg.layers) && cfg.layers >= 1)) fail(`layers must be >= 1, got ${cfg.layers}`);
  if (cfg.width % cfg.heads !== 0) fail(`heads=${cfg.heads} does not divide width ${cfg.width}`);
  // Token order enters only through rotary positions, which need a pair of channels per head at least.
  if (cfg.width / cfg.heads < 4)
    fail(`width ${cfg.width} over ${cfg.heads} heads leaves under 4 channels per head: use fewer heads`);
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** Token ids of one prompt: BOS, its UTF-8 bytes, then padding to `maxTokens`. */
export function tokenize(prompt: string, maxTokens: number): Int32Array {
  const bytes = utf8.encode(prompt);
  if (bytes.length > maxTokens - 1) {
    throw new Error(
      `prompt "${prompt.length > 40 ? `${prompt.slice(0, 40)}...` : prompt}" is ${bytes.length} bytes; this model reads at most ${maxTokens - 1}: shorten it`,
    );
  }
  const ids = new Int32Array(maxTokens); // PAD_TOKEN is 0
  ids[0] = BOS_TOKEN;
  bytes.forEach((byte, i) => {
    ids[i + 1] = byte + BYTE_OFFSET;
  });
  return ids;
}

/** Token ids of several prompts back to back, [prompts.length * maxTokens]. */
export function tokenizeAll(prompts: readonly string[], maxTokens: number): Int32Array {
  const ids = new Int32Array(prompts.length * maxTokens);
  prompts.forEach((prompt, i) => {
    ids.set(tokenize(prompt, maxTokens), i * maxTokens);
  });
  return ids;
}

/** The prompt a token sequence encodes (BOS and padding dropped); fails on ids no prompt produces. */
export function detokenize(ids: ArrayLike<number>): string {
  const bytes: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id === PAD_TOKEN || (id === BOS_TOKEN && i === 0)) continue;
    if (!(Number.isInteger(id) && id >= BYTE_OFFSET && id < VOCAB_SIZE)) {
      throw new Error(`token ${id} at position ${i} is not a byte token`);
    }
    bytes.push(id - BYTE_OFFSET);
  }
  return utf8Decoder.decode(Uint8Array.from(bytes));
}

/** The empty prompt's tokens for `batch` rows: the unconditional input of classifier-free guidance. */
export function emptyPromptTokens(batch: number, maxTokens: number): tf.Tensor2D {
  return tf.tensor2d(tokenizeAll(Array(batch).fill(''), maxTokens), [batch, maxTokens], 'int32');
}

export interface TextEncoding extends PromptContext {
  /** The BOS token's final state [B, width]: the prompt as one vector. */
  readonly pooled: tf.Tensor2D;
}

// Pre-norm transformer block (GPT-2/CLIP layout): x + attn(LN x), then x + MLP(LN x). Bidirectional, no mask.
// Token order enters as rotary positions in the attention (relative, so no table of positions limits the length).
function block(s: ParamScope, x: tf.Tensor3D, heads: number, order: tf.Tensor2D): tf.Tensor3D {
  const [b, l, d] = x.shape;
  const dHead = d / heads;
  const qkv = linear(s.child('qkv'), layerNorm(s.child('norm1'), x), 3 * d);
  const split = qkv.reshape([b, l, 3, heads, dHead]).transpose([2, 0, 3, 1, 4]);
  const [q, k, v] = tf.unstack(split).map((t) => t.reshape([b * heads, l, dHead]) as tf.Tensor3D) as [
    tf.Tensor3D,
    tf.Tensor3D,
    tf.Tensor3D,
  ];
  // Half of each head's channels turn, the slowest pair once in about maxTokens tokens.
  const pairs = Math.floor(dHead / 4);
  const frequencies = Array.from({ length: pairs }, (_, i) => l ** (-i / pairs));
  const attended = attention(
    rotary(q, order, heads, frequencies),
    rotary(k, order, heads, frequencies),
    v,
    1 / Math.sqrt(dHead),
  )
    .reshape([b, heads, l, dHead])
    .transpose([0, 2, 1, 3])
    .reshape([b, l, d]);
  const h = x.add(linear(s.child('attn_out'), attended, d, { zeroInit: true })) as tf.Tensor3D;
  const mlp = linear(s.child('fc1'), layerNorm(s.child('norm2'), h), 4 * d);
  return h.add(linear(s.child('fc2'), silu(mlp), d, { zeroInit: true })) as tf.Tensor3D;
}

/**
 * Where each token sits in its prompt, for cross-attention: the k-th of n prompt bytes at (k + 0.5) / n, so the
 * first and last bytes of any prompt sit near 0 and 1 (BOS and padding at 0). ids: int32 [B, L] -> [B, L].
 */
export function promptPositions(ids: tf.Tensor2D): tf.Tensor2D {
  const isByte = ids.greaterEqual(BYTE_OFFSET).toFloat();
  const count = isByte.sum(1, true).maximum(1);
  return tf.cumsum(isByte, 1).sub(0.5).div(count).mul(isByte) as tf.Tensor2D;
}

/** Encodes token ids int32 [B, maxTokens]; runs inside the caller's tidy/gradient scope. */
export function textEncoderForward(s: ParamScope, cfg: TextEncoderConfig, ids: tf.Tensor2D): TextEncoding {
  const [b, l] = ids.shape;
  if (l !== cfg.maxTokens) {
    throw new Error(`text encoder: got ${l} tokens per prompt, the model reads ${cfg.maxTokens}`);
  }
  const table = s.param('tokens', [VOCAB_SIZE, cfg.width], normal(0.02)) as tf.Tensor2D;
  const order = tf.range(0, l).reshape([1, l]) as tf.Tensor2D;
  let x = tf.gather(table, ids.toInt().reshape([-1])).reshape([b, l, cfg.width]) as tf.Tensor3D;
  for (let i = 0; i < cfg.layers; i++) x = block(s.child('block').child(i), x, cfg.heads, order);
  const tokens = layerNorm(s.child('norm'), x) as tf.Tensor3D;
  const pooled = tokens.slice([0, 0, 0], [b, 1, cfg.width]).reshape([b, cfg.width]) as tf.Tensor2D;
  return { tokens, pooled, positions: promptPositions(ids.toInt()) };
}
