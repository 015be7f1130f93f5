// The two kinds of player every distillation method trains: the student (a copy of its teacher, with an optional
// EMA of its weights) and the discriminator's trainable part, each with its own AdamW.
import { cloneParams, disposeParams, type Params } from '../../nn/params.js';
import type { Player } from '../../train/checkpoint.js';
import { Ema } from '../../train/ema.js';
import { ADAM_DEFAULTS, AdamW } from '../../train/optim.js';

const adam = (lr: number, [beta1, beta2]: readonly [number, number]): AdamW =>
  new AdamW({ ...ADAM_DEFAULTS, lr, beta1, beta2 });

/** A student starting from a copy of `init` (the caller keeps `init`); EMA of its weights when emaDecay > 0. */
export function studentPlayer(
  init: Params,
  lr: number,
  betas: readonly [number, number],
  emaDecay: number,
): Player {
  const params = cloneParams(init);
  return { params, optimizer: adam(lr, betas), ...(emaDecay > 0 ? { ema: new Ema(params, emaDecay) } : {}) };
}

/** A discriminator player over `params` (which it owns from here on). */
export function discriminatorPlayer(params: Params, lr: number, betas: readonly [number, number]): Player {
  return { params, optimizer: adam(lr, betas) };
}

/** Frees every player's weights, optimiser state and EMA. */
export function disposePlayers(players: Readonly<Record<string, Player>>): void {
  for (const p of Object.values(players)) {
    disposeParams(p.params);
    p.optimizer.dispose();
    p.ema?.dispose();
  }
}
