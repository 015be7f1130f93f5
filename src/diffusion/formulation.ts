// The two forward processes behind one interface (METHODS.md section 0): x_t = alpha_t * x0 + sigma_t * eps.
// Time t is in [0, 1] for both (t = 1 is pure noise); a VP model's discrete index is round(999 t).
import type { Rng } from '../core/rng.js';
import * as tf from '../core/tf.js';

/** Rectified flow (SD3): alpha = 1 - t, sigma = t, the net predicts velocity v = eps - x0. */
export interface FlowConfig {
  readonly kind: 'flow';
  /** Logit-normal training-time density: logit(t) ~ N(mean, std^2) (SD3 uses 0, 1). */
  readonly logitMean: number;
  readonly logitStd: number;
}

/** VP / DDPM (SD, SDXL) over 1000 discrete steps with SD's scaled-linear betas. */
export interface VpConfig {
  readonly kind: 'vp';
  /** What the net predicts: noise (eps) or v = alpha * eps - sigma * x0 (Salimans & Ho 2022). */
  readonly prediction: 'eps' | 'v';
  /** Rescale the schedule so abar_999 = 0 (Lin et al. 2023); needs v-prediction. */
  readonly zeroTerminalSnr: boolean;
  readonly betaStart: number;
  readonly betaEnd: number;
}

export type FormulationConfig = FlowConfig | VpConfig;

export const VP_STEPS = 1000;

export interface Formulation {
  readonly config: FormulationConfig;
  /** Signal and noise scales at time t. */
  alphaSigma(t: number): { alpha: number; sigma: number };
  /** The net's time input for time t (both span 0..~1000, like a DDPM timestep). */
  netTime(t: number): number;
  /** x0 estimate from the net's raw output at x_t, t (tensors broadcast over [B, 1, 1, 1]). */
  toX0(out: tf.Tensor4D, xt: tf.Tensor4D, t: tf.Tensor1D): tf.Tensor4D;
  /** What the net should output for (x0, eps) at t: the regression target. */
  target(x0: tf.Tensor4D, eps: tf.Tensor4D, t: tf.Tensor1D): tf.Tensor4D;
  /** Training-time draws (flow: logit-normal; VP: uniform over the discrete steps). */
  sampleTrainingTimes(rng: Rng, n: number): Float32Array;
}

// ---------------------------------------------------------------------------------------------------------------

/** Per-sample alpha and sigma as [B, 1, 1, 1] tensors, computed on the CPU from the scalar schedule. */
export function alphaSigmaTensors(
  f: Formulation,
  t: tf.Tensor1D,
): { alpha: tf.Tensor4D; sigma: tf.Tensor4D } {
  const ts = t.dataSync(); // times are tiny [B] vectors made on the CPU; reading them back is cheap
  const alpha = new Float32Array(ts.length);
  const sigma = new Float32Array(ts.length);
  ts.forEach((ti, i) => {
    const s = f.alphaSigma(ti);
    alpha[i] = s.alpha;
    sigma[i] = s.sigma;
  });
  return { alpha: tf.tensor4d(alpha, [ts.length, 1, 1, 1]), sigma: tf.tensor4d(sigma, [ts.length, 1, 1, 1]) };
}

/** Forward process: x_t = alpha_t x0 + sigma_t eps. Caller owns the result. */
export function addNoise(f: Formulation, x0: tf.Tensor4D, eps: tf.Tensor4D, t: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => {
    const { alpha, sigma } = alphaSigmaTensors(f, t);
    return x0.mul(alpha).add(eps.mul(sigma)) as tf.Tensor4D;
  });
}

export function flowFormulation(config: FlowConfig): Formulation {
  return {
    config,
    alphaSigma: (t) => ({ alpha: 1 - t, sigma: t }),
    netTime: (t) => 1000 * t,
    // x0 = x_t - t * v
    toX0: (v, xt, t) => tf.tidy(() => xt.sub(v.mul(t.reshape([-1, 1, 1, 1])))),
    target: (x0, eps) => tf.tidy(() => eps.sub(x0)),
    sampleTrainingTimes: (rng, n) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++)
        out[i] = 1 / (1 + Math.exp(-(config.logitMean + config.logitStd * rng.normal())));
      return out;
    },
  };
}

/** abar_t for the 1000 VP steps: SD's scaled-linear betas, optionally rescaled to zero terminal SNR. */
export function vpAlphaBars(config: VpConfig): Float64Array {
  const abar = new Float64Array(VP_STEPS);
  const a = Math.sqrt(config.betaStart);
  const b = Math.sqrt(config.betaEnd);
  let prod = 1;
  for (let i = 0; i < VP_STEPS; i++) {
    const beta = (a + ((b - a) * i) / (VP_STEPS - 1)) ** 2;
    prod *= 1 - beta;
    abar[i] = prod;
  }
  if (!config.zeroTerminalSnr) return abar;
  // Lin et al. 2023, Alg. 1: shift and scale sqrt(abar) so the last step is 0 and the first unchanged.
  const first = Math.sqrt(abar[0]!);
  const last = Math.sqrt(abar[VP_STEPS - 1]!);
  return abar.map((ab) => (((Math.sqrt(ab) - last) * first) / (first - last)) ** 2);
}

export function vpFormulation(config: VpConfig): Formulation {
  if (config.zeroTerminalSnr && config.prediction === 'eps') {
    throw new Error(
      'vp formulation: zeroTerminalSnr needs prediction "v" (eps-prediction cannot give x0 at pure noise)',
    );
  }
  const abar = vpAlphaBars(config);
  const alphaSigma = (t: number): { alpha: number; sigma: number } => {
    // Interpolate abar between the discrete steps so any t in [0, 1] is defined.
    const pos = Math.min(Math.max(t, 0), 1) * (VP_STEPS - 1);
    const i = Math.floor(pos);
    const frac = pos - i;
    const ab = i >= VP_STEPS - 1 ? abar[VP_STEPS - 1]! : abar[i]! * (1 - frac) + abar[i + 1]! * frac;
    return { alpha: Math.sqrt(ab), sigma: Math.sqrt(1 - ab) };
  };
  const f: Formulation = {
    config,
    alphaSigma,
    netTime: (t) => t * (VP_STEPS - 1),
    toX0: (out, xt, t) =>
      tf.tidy(() => {
        const { alpha, sigma } = alphaSigmaTensors(f, t);
        // eps-pred: x0 = (x_t - sigma eps) / alpha; v-pred: x0 = alpha x_t - sigma v
        return config.prediction === 'eps'
          ? (xt.sub(out.mul(sigma)).div(alpha) as tf.Tensor4D)
          : (xt.mul(alpha).sub(out.mul(sigma)) as tf.Tensor4D);
      }),
    target: (x0, eps, t) =>
      tf.tidy(() => {
        if (config.prediction === 'eps') return eps.clone();
        const { alpha, sigma } = alphaSigmaTensors(f, t);
        return eps.mul(alpha).sub(x0.mul(sigma)) as tf.Tensor4D;
      }),
    sampleTrainingTimes: (rng, n) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = rng.int(VP_STEPS) / (VP_STEPS - 1);
      return out;
    },
  };
  return f;
}

export function makeFormulation(config: FormulationConfig): Formulation {
  return config.kind === 'flow' ? flowFormulation(config) : vpFormulation(config);
}

/**
 * "Trailing" timesteps for an n-step sampler (Lin et al. 2023, Table 2): start at pure noise. Flow:
 * {1, .75, .5, .25} for 4 steps; VP: indices {999, 749, 499, 249} as t = index / 999. The sampler ends at t = 0.
 */
export function trailingTimes(f: Formulation, steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`steps must be a positive integer, got ${steps}`);
  if (f.config.kind === 'flow') return Array.from({ length: steps }, (_, i) => 1 - i / steps);
  return Array.from(
    { length: steps },
    (_, i) => (Math.round(VP_STEPS - (i * VP_STEPS) / steps) - 1) / (VP_STEPS - 1),
  );
}
