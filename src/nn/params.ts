// Named parameters: a flat `name -> tensor` map (1:1 with safetensors) and the scope that layers read it through.

import { type Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';

/** A network's parameters by dotted name, e.g. `down.0.res.1.conv1.w`. */
export type Params = Record<string, tf.Tensor>;

/** Makes a fresh parameter of `shape`; caller owns the result. */
export type Initializer = (shape: readonly number[], rng: Rng) => tf.Tensor;

export const zeros: Initializer = (shape) => tf.zeros([...shape]);
export const ones: Initializer = (shape) => tf.ones([...shape]);

/** He-normal scaled by `gain`, fan-in = product of all but the last dimension (HWIO conv, [in, out] dense). */
export function heNormal(gain = 1): Initializer {
  return (shape, rng) => {
    const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const std = gain * Math.sqrt(2 / Math.max(1, fanIn));
    return tf.tidy(() => randn(rng, shape).mul(std));
  };
}

export function normal(std: number): Initializer {
  return (shape, rng) => tf.tidy(() => randn(rng, shape).mul(std));
}

/**
 * How a layer gets its weights. In `init` mode a missing parameter is created (and kept past any tidy); in
 * `apply` mode every parameter must exist with the requested shape, so a checkpoint that does not match the
 * network's config fails here with the parameter's name.
 */
export class ParamScope {
  private constructor(
    private readonly store: Params,
    private readonly prefix: string,
    private readonly rng: Rng | undefined,
  ) {}

  /** Reads parameters from `params` (for forward passes and gradients). */
  static apply(params: Params): ParamScope {
    return new ParamScope(params, '', undefined);
  }

  /** Creates parameters into `params` as layers ask for them. */
  static init(params: Params, rng: Rng): ParamScope {
    return new ParamScope(params, '', rng);
  }

  child(name: string | number): ParamScope {
    return new ParamScope(this.store, `${this.prefix}${name}.`, this.rng);
  }

  param(name: string, shape: readonly number[], init: Initializer): tf.Tensor {
    const key = this.prefix + name;
    const existing = this.store[key];
    if (existing) {
      if (!sameShape(existing.shape, shape)) {
        throw new Error(
          `parameter ${key} has shape [${existing.shape}] but the network config needs [${shape}]: ` +
            'the weights were made for a different config',
        );
      }
      return existing;
    }
    if (!this.rng)
      throw new Error(`parameter ${key} is missing: the weights do not match the network config`);
    const created = tf.keep(init(shape, this.rng));
    this.store[key] = created;
    return created;
  }
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * Builds a network's parameters by running `forward` once in init mode on example inputs it makes itself.
 * Outputs are disposed; the returned parameters are owned by the caller.
 */
export function initParams(rng: Rng, forward: (scope: ParamScope) => unknown): Params {
  const params: Params = {};
  tf.tidy(() => {
    forward(ParamScope.init(params, rng));
  });
  return params;
}

export function countParams(params: Params): number {
  return Object.values(params).reduce((n, t) => n + t.size, 0);
}

export function disposeParams(params: Params): void {
  for (const t of Object.values(params)) t.dispose();
}

/** Deep copy (new tensors); caller owns the result. */
export function cloneParams(params: Params): Params {
  const out: Params = {};
  for (const [k, t] of Object.entries(params)) out[k] = tf.keep(t.clone());
  return out;
}

/** The parameters whose names start with one of `prefixes` (shared tensors, not copies). */
export function selectParams(params: Params, prefixes: readonly string[]): Params {
  const out: Params = {};
  for (const [k, t] of Object.entries(params)) if (prefixes.some((p) => k.startsWith(p))) out[k] = t;
  return out;
}

/**
 * The parameters named `<prefix><name>`, renamed `<name>` (shared tensors): one part of a combined set, such as
 * a discriminator's encoder, or a player's weights in a checkpoint.
 */
export function paramsUnder<T extends tf.Tensor>(
  params: Readonly<Record<string, T>>,
  prefix: string,
): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, t] of Object.entries(params)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = t;
  return out;
}

/** `params` renamed `<prefix><name>` (shared tensors): the inverse of `paramsUnder`. */
export function prefixParams<T extends tf.Tensor>(
  params: Readonly<Record<string, T>>,
  prefix: string,
): Record<string, T> {
  return Object.fromEntries(Object.entries(params).map(([k, t]) => [prefix + k, t]));
}

/** Shapes by name, the form a config's expected weights are checked in. */
export function paramShapes(params: Params): Record<string, number[]> {
  return Object.fromEntries(Object.entries(params).map(([k, t]) => [k, [...t.shape]]));
}
