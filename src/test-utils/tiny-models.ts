// Tiny MNIST-shaped model configs and folders (7x7x4 latents, an [8, 8] U-Net) shared by every test that needs a
// model on disk. Weights are untrained; `jittered` adds noise so zero-initialised layers still produce output.
import { join } from 'node:path';
import { Rng, randn } from '../core/rng.js';
import * as tf from '../core/tf.js';
import type { FormulationConfig } from '../diffusion/formulation.js';
import { saveModelFolder } from '../models/folder.js';
import type { AutoencoderModelConfig, DiffusionModelConfig } from '../models/schema.js';
import { initAutoencoder } from '../nn/autoencoder.js';
import { disposeParams, type Params } from '../nn/params.js';
import { initUNet, type UNetConfig } from '../nn/unet.js';

export const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
export const FLOW: FormulationConfig = { kind: 'flow', logitMean: 0, logitStd: 1 };

export const TINY_AE_CONFIG: AutoencoderModelConfig = {
  format: 'ladder-model',
  version: 1,
  kind: 'autoencoder',
  dataset: 'mnist',
  autoencoder: {
    imageShape: [28, 28, 1],
    latentChannels: 4,
    channels: [8, 8, 8],
    groups: 4,
    klWeight: 0,
    latentScale: 1,
    latentShift: 0,
  },
};

export const TINY_UNET: UNetConfig = {
  inChannels: 4,
  outChannels: 4,
  channels: [8, 8],
  blocksPerLevel: 1,
  attentionLevels: [],
  midAttention: false,
  numClasses: 10,
  embedDim: 8,
  groups: 4,
  heads: 1,
};

/** A tiny teacher config; `overrides` change the autoencoder path, formulation, sampling or kind. */
export function tinyTeacherConfig(overrides: Partial<DiffusionModelConfig> = {}): DiffusionModelConfig {
  return {
    format: 'ladder-model',
    version: 1,
    kind: 'teacher',
    dataset: 'mnist',
    autoencoder: '../ae',
    latentShape: [7, 7, 4],
    classNames: DIGITS,
    formulation: FLOW,
    unet: TINY_UNET,
    prediction: 'formulation',
    sampling: { steps: [2], cfg: 1 },
    ...overrides,
  };
}

/** `params` plus N(0, scale^2) noise on every entry (disposes `params`; caller owns the result). */
export function jittered(params: Params, rng: Rng, scale: number): Params {
  const out: Params = {};
  for (const [name, t] of Object.entries(params))
    out[name] = tf.tidy(() => t.add(randn(rng, t.shape).mul(scale)));
  disposeParams(params);
  return out;
}

/** Random tiny U-Net weights, jittered; caller owns them. */
export function tinyUNetParams(rng: Rng, scale = 0.1, unet: UNetConfig = TINY_UNET): Params {
  return jittered(initUNet(unet, rng), rng, scale);
}

/** Writes each `[folder name, config, params]` under `root` and disposes the params. */
export async function writeFolders(
  root: string,
  folders: readonly (readonly [string, AutoencoderModelConfig | DiffusionModelConfig, Params])[],
): Promise<void> {
  for (const [name, config, params] of folders) {
    try {
      await saveModelFolder(join(root, name), config, params, {});
    } finally {
      disposeParams(params);
    }
  }
}

/** Writes `<root>/ae` and `<root>/teacher` (the teacher names ../ae); returns the teacher's folder. */
export async function writeTinyTeacher(
  root: string,
  opts: {
    formulation?: FormulationConfig;
    jitter?: number;
    seed?: number;
    sampling?: DiffusionModelConfig['sampling'];
  } = {},
): Promise<string> {
  const rng = new Rng(opts.seed ?? 7);
  const teacher = tinyTeacherConfig({
    formulation: opts.formulation ?? FLOW,
    ...(opts.sampling === undefined ? {} : { sampling: opts.sampling }),
  });
  await writeFolders(root, [
    ['ae', TINY_AE_CONFIG, initAutoencoder(TINY_AE_CONFIG.autoencoder, rng)],
    ['teacher', teacher, tinyUNetParams(rng, opts.jitter ?? 0.1)],
  ]);
  return join(root, 'teacher');
}
