// Seeded, serialisable random numbers (xoshiro128**), so every run and every resume is reproducible
// across backends: noise is drawn here, on the CPU, never with a backend's own random kernels.
import * as tf from './tf.js';

/** The whole generator state; store it in a checkpoint and rebuild with `Rng.fromState`. */
export type RngState = readonly [number, number, number, number];

function splitMix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

export class Rng {
  private s: [number, number, number, number];

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`Rng seed must be an integer, got ${seed}`);
    const next = splitMix32(seed);
    this.s = [next(), next(), next(), next()];
  }

  static fromState(state: RngState): Rng {
    const rng = new Rng(0);
    rng.s = [state[0] >>> 0, state[1] >>> 0, state[2] >>> 0, state[3] >>> 0];
    return rng;
  }

  state(): RngState {
    return [...this.s];
  }

  /** An independent stream derived from this one (advances this generator by one draw). */
  fork(): Rng {
    return new Rng(this.nextUint32());
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller; both values of a pair are used by `fillNormal`). */
  normal(): number {
    const u = 1 - this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }

  fillNormal(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - this.uniform()));
      const theta = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(theta);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
    }
    return out;
  }

  fillUniform(out: Float32Array): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.uniform();
    return out;
  }

  /** Fisher-Yates permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = p[i]!;
      p[i] = p[j]!;
      p[j] = tmp;
    }
    return p;
  }
}

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Standard normal tensor drawn from `rng`; caller owns the result. */
export function randn(rng: Rng, shape: readonly number[]): tf.Tensor {
  return tf.tensor(rng.fillNormal(new Float32Array(size(shape))), [...shape]);
}

/** Uniform [0, 1) tensor drawn from `rng`; caller owns the result. */
export function randu(rng: Rng, shape: readonly number[]): tf.Tensor {
  return tf.tensor(rng.fillUniform(new Float32Array(size(shape))), [...shape]);
}
