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

/**
 * Per-sample alpha and sigma as [B, 1, 1, 1] float32 tensors; caller owns them. Computed on the device from t
 * (no read back: on a GPU backend a read makes the host wait for the device queue in every training step).
 */
export function alphaSigmaTensors(
  f: Formulation,
  t: tf.Tensor1D,
): { alpha: tf.Tensor4D; sigma: tf.Tensor4D } {
  return tf.tidy(() => {
    const tf32 = tf.cast(t, 'float32');
    const b = tf32.shape[0];
    // Flow: the same bits as the host's float64 1 - t rounded to float32, which is exact for float32 t in
    // [2^-29, 1] (so both are the correctly rounded difference) and rounds to 1 below, as float32 does.
    if (f.config.kind === 'flow')
      return { alpha: tf.sub(1, tf32).reshape([b, 1, 1, 1]), sigma: tf32.reshape([b, 1, 1, 1]) };
    const { lower, upper, frac } = vpSegment(tf32);
    const table = tf.tensor2d(vpTable(f), [VP_STEPS, 2]); // an upload, queued without waiting for the device
    // [alpha^2, sigma^2] interpolated like the host's abar; sigma^2 from its own column keeps it accurate near
    // t = 0, and with zero terminal SNR t = 1 gives 0 * abar_998 + 1 * 0 = 0 exactly.
    const squares = tf
      .gather(table, lower)
      .mul(tf.sub(1, frac).expandDims(1))
      .add(tf.gather(table, upper).mul(frac.expandDims(1)));
    const [alpha, sigma] = tf.split(squares.sqrt(), 2, 1);
    return { alpha: alpha!.reshape([b, 1, 1, 1]), sigma: sigma!.reshape([b, 1, 1, 1]) };
  });
}

/** The VP step below clamp(t) * 999 (at most 998, so t = 1 is step 998 at fraction 1) and the fraction past it. */
function vpSegment(t: tf.Tensor1D): { lower: tf.Tensor1D; upper: tf.Tensor1D; frac: tf.Tensor1D } {
  const pos = tf.clipByValue(t, 0, 1).mul(VP_STEPS - 1);
  const lower = tf.minimum(tf.floor(pos), VP_STEPS - 2);
  return {
    lower: lower.toInt() as tf.Tensor1D,
    upper: lower.add(1).toInt() as tf.Tensor1D,
    frac: pos.sub(lower),
  };
}

const vpTables = new WeakMap<Formulation, Float32Array>();

/** Rows [abar_i, 1 - abar_i], each rounded from float64; built once per formulation. */
function vpTable(f: Formulation): Float32Array {
  const cached = vpTables.get(f);
  if (cached !== undefined) return cached;
  const abar = vpAlphaBars(f.config as VpConfig);
  const table = new Float32Array(2 * VP_STEPS);
  abar.forEach((ab, i) => {
    table[2 * i] = ab;
    table[2 * i + 1] = 1 - ab;
  });
  vpTables.set(f, table);
  return table;
}

/**
 * n times t ~ U[tMin, tMax] in the formulation's [0, 1] time; a VP model's times snap to its discrete steps (the
 * only times it was trained at). Draws n numbers from `rng`.
 */
export function sampleUniformTimes(
  f: Formulation,
  rng: Rng,
  n: number,
  tMin: number,
  tMax: number,
): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = tMin + (tMax - tMin) * rng.uniform();
    out[i] = f.config.kind === 'vp' ? Math.round(t * (VP_STEPS - 1)) / (VP_STEPS - 1) : t;
  }
  return out;
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
