// Exponential moving average of weights (Polyak averaging), with the usual warm-up of the decay so early
// averages are not dominated by the random initialisation.
import * as tf from '../core/tf.js';
import { emaStep } from '../engine/fused.js';
import { cloneParams, disposeParams, type Params } from '../nn/params.js';

export class Ema {
  params: Params;

  constructor(
    source: Params,
    readonly decay: number,
  ) {
    this.params = cloneParams(source);
  }

  /** Decay for the given update count: min(decay, (1 + n) / (10 + n)). */
  decayAt(updates: number): number {
    return Math.min(this.decay, (1 + updates) / (10 + updates));
  }

  update(source: Params, updates: number): void {
    const names = Object.keys(source);
    for (const name of names) if (!this.params[name]) throw new Error(`EMA has no parameter ${name}`);
    const old = names.map((n) => this.params[n]!);
    const next = emaStep(
      old,
      names.map((n) => source[n]!),
      this.decayAt(updates),
    );
    names.forEach((n, i) => {
      this.params[n] = next[i]!;
    });
    tf.dispose(old);
  }

  /** Replaces the averaged weights, taking ownership of `params`. */
  load(params: Params): void {
    disposeParams(this.params);
    this.params = params;
  }

  dispose(): void {
    disposeParams(this.params);
  }
}
