// A feature net's model folder: config.json (kind 'features'), weights.safetensors, card.json.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureWritableDir, writeJsonAtomic } from '../core/fs.js';
import { Rng } from '../core/rng.js';
import { datasetId } from '../data/image-dataset.js';
import { saveTensors } from '../io/safetensors.js';
import { initFeatureNet } from '../nn/feature-net.js';
import type { Params } from '../nn/params.js';
import {
  CARD_FILE,
  CONFIG_FILE,
  loadCheckedWeights,
  moveModelAside,
  readJson,
  WEIGHTS_FILE,
} from './folder.js';
import { type FeaturesModelConfig, featuresModelSchema, parseConfig } from './schema.js';

/** A feature net loaded from its folder. `hash` identifies the weights (reference-stat caches are keyed by it). */
export interface LoadedFeatureNet {
  readonly dir: string;
  readonly config: FeaturesModelConfig;
  readonly params: Params;
  /** First 16 hex digits of the SHA-256 of weights.safetensors. */
  readonly hash: string;
  /** `<dataset>-features@<hash>`: how eval files name the net. */
  readonly name: string;
}

/**
 * Writes weights then config (and the card when given), each atomically. Does not dispose `params`. A feature net
 * already in `dir` is moved aside first (a continued run; see moveModelAside).
 */
export async function saveFeatureNet(
  dir: string,
  config: FeaturesModelConfig,
  params: Params,
  card?: Record<string, unknown>,
): Promise<void> {
  if (existsSync(join(dir, CONFIG_FILE))) await moveModelAside(dir);
  await ensureWritableDir(dir);
  await saveTensors(join(dir, WEIGHTS_FILE), params, { kind: config.kind });
  await writeJsonAtomic(join(dir, CONFIG_FILE), config);
  if (card !== undefined) await writeJsonAtomic(join(dir, CARD_FILE), card);
}

/** Loads a feature net folder; every tensor is checked against what the config builds. */
export async function loadFeatureNet(dir: string): Promise<LoadedFeatureNet> {
  if (!existsSync(dir)) {
    throw new Error(
      `feature net folder ${dir} does not exist: train one with \`ladder train-features --data <dataset> --out ${dir}\` or pass --features <dir>`,
    );
  }
  const raw = (await readJson(join(dir, CONFIG_FILE), `feature net config of ${dir}`)) as { kind?: unknown };
  if (raw.kind !== 'features') {
    throw new Error(`${dir} holds a ${String(raw.kind)} model, not a feature net (kind "features")`);
  }
  const config = parseConfig(featuresModelSchema, raw, join(dir, CONFIG_FILE));
  const weightsPath = join(dir, WEIGHTS_FILE);
  const params = await loadCheckedWeights(dir, initFeatureNet(config.featureNet, new Rng(0)), config.kind);
  const hash = createHash('sha256')
    .update(await readFile(weightsPath))
    .digest('hex')
    .slice(0, 16);
  return { dir, config, params, hash, name: `${datasetId(config.dataset)}-features@${hash}` };
}
