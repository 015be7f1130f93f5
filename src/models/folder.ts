// Model folders: config.json + weights.safetensors + card.json, written atomically and loaded with every
// tensor checked against what the config builds.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ensureWritableDir, writeJsonAtomic } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import { loadTensors, saveTensors } from '../io/safetensors.js';
import { initAutoencoder, latentShape } from '../nn/autoencoder.js';
import { acceptWeights } from '../nn/check-shapes.js';
import { disposeParams, type Params } from '../nn/params.js';
import { initUNet } from '../nn/unet.js';
import {
  type AutoencoderModelConfig,
  autoencoderModelSchema,
  type DiffusionModelConfig,
  diffusionModelSchema,
  parseConfig,
} from './schema.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'weights.safetensors';
export const CARD_FILE = 'card.json';

/**
 * Writes a model's files into `dir` (which may already hold the run's checkpoints and log), each atomically,
 * config after weights so a folder with a config always has its weights. An existing model there is an error,
 * unless `replace`: then it is first moved aside (see moveModelAside), never overwritten.
 */
export async function saveModelFolder(
  dir: string,
  config: AutoencoderModelConfig | DiffusionModelConfig,
  params: Params,
  card: Record<string, unknown>,
  opts: { replace?: boolean } = {},
): Promise<void> {
  if (existsSync(join(dir, CONFIG_FILE))) {
    if (!opts.replace) throw new Error(`${dir} already holds a model: choose another --out`);
    await moveModelAside(dir);
  }
  await ensureWritableDir(dir);
  await saveTensors(join(dir, WEIGHTS_FILE), params, { kind: config.kind });
  await writeJsonAtomic(join(dir, CONFIG_FILE), config);
  await writeJsonAtomic(join(dir, CARD_FILE), card);
}

/**
 * Moves the finished model in `dir` (config, weights, card) into the sibling folder `<dir>.replaced-step-<N>`
 * (N: the steps its card records), where it stays a complete model: its relative paths (`../autoencoder`) still
 * resolve at the same depth. Returns that folder.
 */
export async function moveModelAside(dir: string): Promise<string> {
  let steps: unknown;
  try {
    steps = (JSON.parse(await readFile(join(dir, CARD_FILE), 'utf8')) as { steps?: unknown }).steps;
  } catch {
    steps = undefined; // no card, or a damaged one: name the folder by the time instead
  }
  const base = `${dir.replace(/[/\\]+$/, '')}.replaced-${typeof steps === 'number' ? `step-${steps}` : new Date().toISOString().replaceAll(':', '-')}`;
  let aside = base;
  for (let i = 2; existsSync(aside); i++) aside = `${base}-${i}`;
  await mkdir(aside);
  for (const file of [CARD_FILE, WEIGHTS_FILE, CONFIG_FILE]) {
    if (existsSync(join(dir, file))) await rename(join(dir, file), join(aside, file));
  }
  process.stderr.write(`note: the model that was in ${dir} is kept in ${aside}\n`);
  return aside;
}

export async function readJson(path: string, what: string): Promise<unknown> {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path} does not exist`);
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

async function readConfig(dir: string): Promise<{ kind?: unknown }> {
  if (!existsSync(dir)) throw new Error(`model folder ${dir} does not exist`);
  return (await readJson(join(dir, CONFIG_FILE), `model config of ${dir}`)) as { kind?: unknown };
}

/**
 * Loads weights and checks every name, shape and dtype against `expected` (disposed afterwards), and the kind the
 * weights file records (since it was written by saveModelFolder) against the config's: a teacher's weights copied
 * into a student folder of the same architecture would otherwise load without a word.
 */
export async function loadCheckedWeights(dir: string, expected: Params, kind: string): Promise<Params> {
  const file = join(dir, WEIGHTS_FILE);
  let loaded: Awaited<ReturnType<typeof loadTensors>>;
  try {
    loaded = await loadTensors(file);
  } catch (err) {
    disposeParams(expected);
    throw err;
  }
  const recorded = loaded.metadata.kind;
  if (recorded !== undefined && recorded !== kind) {
    disposeParams(expected);
    disposeParams(loaded.tensors);
    throw new Error(
      `${file} holds ${recorded} weights but ${join(dir, CONFIG_FILE)} describes a ${kind}: ` +
        'the folder mixes files of two models; restore its weights.safetensors',
    );
  }
  return acceptWeights(loaded.tensors, expected, file);
}

export interface LoadedAutoencoder {
  readonly dir: string;
  readonly config: AutoencoderModelConfig;
  readonly params: Params;
}

export async function loadAutoencoder(dir: string): Promise<LoadedAutoencoder> {
  const config = parseConfig(autoencoderModelSchema, await readConfig(dir), join(dir, CONFIG_FILE));
  const params = await loadCheckedWeights(dir, initAutoencoder(config.autoencoder, new Rng(0)), config.kind);
  return { dir, config, params };
}

export interface LoadedDiffusionModel {
  readonly dir: string;
  readonly config: DiffusionModelConfig;
  readonly params: Params;
  readonly autoencoder: LoadedAutoencoder;
}

/** A teacher or student folder, with the autoencoder its config names (resolved relative to the folder). */
export async function loadDiffusionModel(dir: string): Promise<LoadedDiffusionModel> {
  const raw = await readConfig(dir);
  if (raw.kind !== 'teacher' && raw.kind !== 'student') {
    throw new Error(`${dir} holds a ${String(raw.kind)} model, not a teacher or student`);
  }
  const config = parseConfig(diffusionModelSchema, raw, join(dir, CONFIG_FILE));
  const aeDir = resolve(dir, config.autoencoder);
  if (!existsSync(join(aeDir, CONFIG_FILE))) {
    throw new Error(
      `${dir} names autoencoder "${config.autoencoder}" (${aeDir}), which is missing: restore that folder or fix "autoencoder" in ${join(dir, CONFIG_FILE)}`,
    );
  }
  const autoencoder = await loadAutoencoder(aeDir);
  const aeLatents = latentShape(autoencoder.config.autoencoder);
  if (aeLatents.join('x') !== config.latentShape.join('x')) {
    const images = autoencoder.config.autoencoder.imageShape.join('x');
    throw new Error(
      `${dir} was trained on ${config.latentShape.join('x')} latents, but its autoencoder ${aeDir} makes ` +
        `${aeLatents.join('x')} (from ${images} images): the model belongs to another image size or channel count; ` +
        `point "autoencoder" in ${join(dir, CONFIG_FILE)} at the autoencoder it was trained with`,
    );
  }
  const params = await loadCheckedWeights(dir, initUNet(config.unet, new Rng(0)), config.kind);
  return { dir, config, params, autoencoder };
}

/** The folder's card.json, or undefined when it has none (a card is optional; a broken one is an error). */
export async function readCard(dir: string): Promise<Record<string, unknown> | undefined> {
  const file = join(dir, CARD_FILE);
  if (!existsSync(file)) return undefined;
  return (await readJson(file, `card of ${dir}`)) as Record<string, unknown>;
}
