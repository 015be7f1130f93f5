// One entry point over the samplers, and the student time grid.
import type { Rng } from '../core/rng.js';
import type * as tf from '../core/tf.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import { type Formulation, trailingTimes } from '../diffusion/formulation.js';
import type { SampleOptions } from './common.js';
import { sampleDpmSolver2M } from './dpm-solver.js';
import { sampleEuler } from './euler.js';
import { sampleFewStep } from './few-step.js';
import { sampleHeun } from './heun.js';

export type SamplerKind = 'euler' | 'heun' | 'dpmpp-2m' | 'few-step';
export const SAMPLER_KINDS: readonly SamplerKind[] = ['euler', 'heun', 'dpmpp-2m', 'few-step'];

export type TimeSpacing = 'trailing';

/** Sampler times for `steps` steps; "trailing" starts at pure noise, t = 1 (then t = 0 is implied). */
export function samplerTimes(f: Formulation, steps: number, spacing: TimeSpacing = 'trailing'): number[] {
  switch (spacing) {
    case 'trailing':
      return trailingTimes(f, steps);
  }
}

/** Options of `sample`; `rng` is required by 'few-step' (fresh noise) and ignored by the ODE samplers. */
export interface SamplerOptions extends SampleOptions {
  readonly rng?: Rng;
}

/**
 * Runs the sampler `kind` from `noise` [B, H, W, C] along `opts.times` down to t = 0. The ODE samplers
 * (euler, heun, dpmpp-2m) are deterministic; few-step re-noises from `opts.rng`. Caller keeps `noise` and
 * `opts.labels` and owns the result.
 */
export function sample(
  kind: SamplerKind,
  denoise: Denoiser,
  f: Formulation,
  noise: tf.Tensor4D,
  opts: SamplerOptions,
): tf.Tensor4D {
  switch (kind) {
    case 'euler':
      return sampleEuler(denoise, f, noise, opts);
    case 'heun':
      return sampleHeun(denoise, f, noise, opts);
    case 'dpmpp-2m':
      return sampleDpmSolver2M(denoise, f, noise, opts);
    case 'few-step': {
      const { rng } = opts;
      if (rng === undefined)
        throw new Error("sampler 'few-step' re-noises between steps: pass opts.rng (an Rng)");
      return sampleFewStep(denoise, f, noise, { ...opts, rng });
    }
  }
}
