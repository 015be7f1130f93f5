// Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) over named parameters, global-norm gradient clipping,
// and the learning-rate warm-up. The state is plain named tensors so checkpoints can hold it.
import * as tf from '../core/tf.js';
import { adamStep } from '../engine/fused.js';
import type { Params } from '../nn/params.js';

export interface AdamConfig {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled weight decay (AdamW); 0 is plain Adam. */
  readonly weightDecay: number;
  /** Clip the global gradient norm to this value; 0 disables clipping. */
  readonly clipNorm: number;
  /** Linear warm-up of the learning rate over this many updates. */
  readonly warmupSteps: number;
}

export const ADAM_DEFAULTS: AdamConfig = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  clipNorm: 1,
  warmupSteps: 0,
};

export class AdamW {
  /** Updates applied so far (the t of the bias correction). */
  updates = 0;
  private m: Params = {};
  private v: Params = {};

  constructor(readonly config: AdamConfig) {}

  /** Learning rate for the next update, after warm-up and the trainer's rollback scale. */
  learningRate(lrScale = 1): number {
    const warm = this.config.warmupSteps > 0 ? Math.min(1, (this.updates + 1) / this.config.warmupSteps) : 1;
    return this.config.lr * warm * lrScale;
  }

  /**
   * One update: returns new parameters (the old ones are disposed) and the pre-clip gradient norm, a scalar the
   * caller owns (nothing is read back: the clipping factor stays on the device). `grads` stay owned by the caller.
   */
  apply(params: Params, grads: Params, lrScale = 1): { params: Params; gradNorm: tf.Scalar } {
    const { beta1, beta2, eps, weightDecay, clipNorm } = this.config;
    const lr = this.learningRate(lrScale);
    // A parameter no gradient reached keeps its weights and moments.
    const names = Object.keys(params).filter((n) => grads[n] !== undefined);
    if (names.length === 0) return { params: { ...params }, gradNorm: tf.scalar(0) };
    this.updates += 1;
    const zerosFor = (n: string): tf.Tensor => tf.zerosLike(params[n]!);
    const m = names.map((n) => this.m[n] ?? zerosFor(n));
    const v = names.map((n) => this.v[n] ?? zerosFor(n));
    const step = adamStep(
      names.map((n) => params[n]!),
      names.map((n) => grads[n]!),
      m,
      v,
      {
        lr,
        beta1,
        beta2,
        eps,
        weightDecay,
        clipNorm,
        c1: 1 - beta1 ** this.updates,
        c2: 1 - beta2 ** this.updates,
      },
    );
    tf.dispose([...m, ...v]);
    const next: Params = { ...params };
    names.forEach((n, i) => {
      params[n]!.dispose();
      next[n] = step.params[i]!;
      this.m[n] = step.m[i]!;
      this.v[n] = step.v[i]!;
    });
    return { params: next, gradNorm: step.gradNorm };
  }

  /** Moments by name, prefixed `m.` and `v.` (shared tensors, for checkpoints). */
  stateTensors(): Params {
    const out: Params = {};
    for (const [k, t] of Object.entries(this.m)) out[`m.${k}`] = t;
    for (const [k, t] of Object.entries(this.v)) out[`v.${k}`] = t;
    return out;
  }

  /** Replaces the state with `tensors` (taking ownership) and the update count. */
  loadState(tensors: Params, updates: number): void {
    this.dispose();
    for (const [k, t] of Object.entries(tensors)) {
      if (k.startsWith('m.')) this.m[k.slice(2)] = t;
      else if (k.startsWith('v.')) this.v[k.slice(2)] = t;
      else throw new Error(`optimizer state has an unknown tensor ${k}`);
    }
    this.updates = updates;
  }

  dispose(): void {
    for (const t of [...Object.values(this.m), ...Object.values(this.v)]) t.dispose();
    this.m = {};
    this.v = {};
  }
}
