// The engine benchmark: ms per U-Net training step (forward, backward, Adam) on the active backend, so
// backends and machines can be compared on one number.

import { Rng, randn } from '../core/rng.js';
import { median } from '../core/stats.js';
import * as tf from '../core/tf.js';
import { currentBackend } from '../engine/backend.js';
import { startProfile } from '../engine/profile.js';
import { countParams, type Params } from '../nn/params.js';
import { initUNet, type UNetConfig, unetForward } from '../nn/unet.js';
import { ADAM_DEFAULTS, AdamW } from '../train/optim.js';

export interface UnetBenchOptions {
  readonly batch: number;
  readonly size: number;
  readonly channels: readonly number[];
  readonly steps: number;
  /** Also profile the timed steps: native calls, reads, ms inside and outside native calls per step. */
  readonly profile?: boolean;
}

/** GroupNorm groups of the benchmarked U-Net: its widths must be multiples of it. */
export const BENCH_GROUPS = 8;

export async function benchUnetStep(o: UnetBenchOptions) {
  const cfg: UNetConfig = {
    inChannels: 1,
    outChannels: 1,
    channels: o.channels,
    blocksPerLevel: 1,
    attentionLevels: [],
    midAttention: false,
    numClasses: 10,
    embedDim: 4 * o.channels[0]!,
    groups: BENCH_GROUPS,
    heads: 1,
  };
  const rng = new Rng(0);
  let params: Params = initUNet(cfg, rng);
  const optimizer = new AdamW(ADAM_DEFAULTS);
  const x = randn(rng, [o.batch, o.size, o.size, 1]) as tf.Tensor4D;
  const target = randn(rng, [o.batch, o.size, o.size, 1]) as tf.Tensor4D;
  const t = tf.tensor1d(Array.from({ length: o.batch }, (_, i) => (i * 997) % 1000));
  const labels = tf.tensor1d(
    Array.from({ length: o.batch }, (_, i) => i % 10),
    'int32',
  );
  const names = Object.keys(params);
  const step = (): void => {
    const { value, grads } = tf.valueAndGrads((...xs: tf.Tensor[]) => {
      const p = Object.fromEntries(names.map((n, i) => [n, xs[i]!]));
      return unetForward(p, cfg, x, t, labels).out.sub(target).square().mean() as tf.Scalar;
    })(names.map((n) => params[n]!));
    value.dataSync(); // wait for the step to finish (the one read of a step)
    const update = optimizer.apply(params, Object.fromEntries(names.map((n, i) => [n, grads[i]!])), 1);
    params = update.params;
    tf.dispose([value, update.gradNorm, ...grads]);
  };
  for (let i = 0; i < 2; i++) step();
  const times: number[] = [];
  const profiling = o.profile ? startProfile() : undefined;
  for (let i = 0; i < o.steps; i++) {
    const began = performance.now();
    step();
    times.push(performance.now() - began);
  }
  const profile = profiling?.stop(o.steps);
  const result = {
    benchmark: 'unet-train-step',
    backend: currentBackend(),
    params: countParams(params),
    batch: o.batch,
    size: o.size,
    channels: o.channels,
    steps: o.steps,
    msPerStepMedian: Math.round(median(times)),
    msPerStepMin: Math.round(Math.min(...times)),
    ...(profile && { profile }),
  };
  tf.dispose([x, target, t, labels, ...Object.values(params)]);
  optimizer.dispose();
  return result;
}
