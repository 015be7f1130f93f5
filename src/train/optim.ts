// Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) over named parameters, global-norm gradient clipping,
// and the learning-rate warm-up. The state is plain named tensors so checkpoints can hold it.
import * as tf from '../core/tf.js';
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
   * One update: returns new parameters (the old ones are disposed) and the pre-clip gradient norm.
   * `grads` stay owned by the caller.
   */
  apply(params: Params, grads: Params, lrScale = 1): { params: Params; gradNorm: number } {
    const { beta1, beta2, eps, weightDecay, clipNorm } = this.config;
    const lr = this.learningRate(lrScale);
    const names = Object.keys(params);
    const gradNorm = globalNorm(names.map((n) => grads[n]).filter((g): g is tf.Tensor => g !== undefined));
    const clip = clipNorm > 0 && gradNorm > clipNorm ? clipNorm / gradNorm : 1;
    this.updates += 1;
    const c1 = 1 - beta1 ** this.updates;
    const c2 = 1 - beta2 ** this.updates;
    const next: Params = {};
    for (const name of names) {
      const p = params[name]!;
      const g = grads[name];
      if (!g) {
        next[name] = p; // no gradient reached this parameter: leave it and its moments as they are
        continue;
      }
      const [m, v, updated] = tf.tidy(() => {
        const gc = clip === 1 ? g : g.mul(clip);
        const m0 = this.m[name] ?? tf.zerosLike(p);
        const v0 = this.v[name] ?? tf.zerosLike(p);
        const m1 = m0.mul(beta1).add(gc.mul(1 - beta1));
        const v1 = v0.mul(beta2).add(gc.square().mul(1 - beta2));
        const step = m1.div(c1).div(v1.div(c2).sqrt().add(eps));
        const decayed = weightDecay > 0 ? p.mul(1 - lr * weightDecay) : p;
        return [m1, v1, decayed.sub(step.mul(lr))];
      });
      this.m[name]?.dispose();
      this.v[name]?.dispose();
      this.m[name] = m;
      this.v[name] = v;
      p.dispose();
      next[name] = updated;
    }
    return { params: next, gradNorm };
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

/** sqrt(sum of squared entries) over all tensors, as a number (one sync). */
export function globalNorm(tensors: readonly tf.Tensor[]): number {
  if (tensors.length === 0) return 0;
  const sq = tf.tidy(() => tf.addN(tensors.map((t) => t.square().sum())));
  const value = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  return value;
}
