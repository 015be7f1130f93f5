// Model folders over HTTP (the browser, or Node's fetch): config.json + weights.safetensors, checked like folder.ts.

import { Rng } from '../core/rng.js';
import { decodeSafetensors, recordsToTensors } from '../io/safetensors-format.js';
import { initAutoencoder } from '../nn/autoencoder.js';
import { acceptWeights } from '../nn/check-shapes.js';
import { disposeParams, type Params } from '../nn/params.js';
import { initUNet } from '../nn/unet.js';
import type { DiffusionModel } from './pipeline.js';
import {
  type AutoencoderModelConfig,
  autoencoderModelSchema,
  type DiffusionModelConfig,
  diffusionModelSchema,
  parseConfig,
} from './schema.js';

/** A teacher or student fetched from `url`, with the autoencoder its config names. */
export interface FetchedModel extends DiffusionModel {
  readonly url: string;
  readonly config: DiffusionModelConfig;
  readonly autoencoder: {
    readonly url: string;
    readonly config: AutoencoderModelConfig;
    readonly params: Params;
  };
}

export type Fetch = (url: string) => Promise<Response>;

/** `url` as a folder URL (ending in '/'), so relative names resolve inside it. */
function folderUrl(url: string | URL): URL {
  const text = String(url);
  return new URL(text.endsWith('/') ? text : `${text}/`);
}

async function fetchOk(fetchFn: Fetch, url: URL, what: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetchFn(url.href);
  } catch (err) {
    throw new Error(
      `cannot fetch ${what} from ${url.href} (${(err as Error).message}): is the server running?`,
    );
  }
  if (response.ok) return response;
  const detail = response.status === 404 ? 'not found' : `HTTP ${response.status}`;
  throw new Error(`${what} ${url.href}: ${detail}; check that the model folder has its files`);
}

async function fetchConfig(fetchFn: Fetch, folder: URL, what: string): Promise<unknown> {
  const url = new URL('config.json', folder);
  return parseJsonAt(url, await (await fetchOk(fetchFn, url, `${what} config`)).text());
}

function parseJsonAt(url: URL, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${url.href} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Fetches and decodes weights, checked against `expected` (which is disposed). Caller owns the result. */
async function fetchCheckedWeights(fetchFn: Fetch, folder: URL, expected: Params): Promise<Params> {
  const url = new URL('weights.safetensors', folder);
  let records: ReturnType<typeof decodeSafetensors>['tensors'];
  try {
    const bytes = new Uint8Array(await (await fetchOk(fetchFn, url, 'weights')).arrayBuffer());
    try {
      records = decodeSafetensors(bytes).tensors;
    } catch (err) {
      throw new Error(`${url.href}: ${(err as Error).message}`);
    }
  } catch (err) {
    disposeParams(expected);
    throw err;
  }
  return acceptWeights(recordsToTensors(records), expected, url.href);
}

/**
 * Fetches a teacher or student folder (absolute `url`) and the autoencoder folder its config names, resolved
 * relative to it; every weight is checked against the configs. Caller owns the result (see disposeModel).
 */
export async function fetchDiffusionModel(url: string | URL, fetchFn: Fetch = fetch): Promise<FetchedModel> {
  const folder = folderUrl(url);
  const raw = (await fetchConfig(fetchFn, folder, 'model')) as { kind?: unknown };
  if (raw.kind !== 'teacher' && raw.kind !== 'student') {
    throw new Error(`${folder.href} holds a ${String(raw.kind)} model, not a teacher or student`);
  }
  const config = parseConfig(diffusionModelSchema, raw, new URL('config.json', folder).href);
  const aeFolder = folderUrl(new URL(config.autoencoder, folder));
  const aeConfig = parseConfig(
    autoencoderModelSchema,
    await fetchConfig(fetchFn, aeFolder, `autoencoder "${config.autoencoder}" named by ${folder.href}:`),
    new URL('config.json', aeFolder).href,
  );
  const aeParams = await fetchCheckedWeights(
    fetchFn,
    aeFolder,
    initAutoencoder(aeConfig.autoencoder, new Rng(0)),
  );
  try {
    const params = await fetchCheckedWeights(fetchFn, folder, initUNet(config.unet, new Rng(0)));
    return {
      url: folder.href,
      config,
      params,
      autoencoder: { url: aeFolder.href, config: aeConfig, params: aeParams },
    };
  } catch (err) {
    disposeParams(aeParams);
    throw err;
  }
}

/** Frees a fetched model's tensors. */
export function disposeModel(model: FetchedModel): void {
  disposeParams(model.params);
  disposeParams(model.autoencoder.params);
}

/** The folder's card.json, or undefined when it has none (a card is optional; a broken one is an error). */
export async function fetchCard(
  url: string | URL,
  fetchFn: Fetch = fetch,
): Promise<Record<string, unknown> | undefined> {
  const cardUrl = new URL('card.json', folderUrl(url));
  let response: Response;
  try {
    response = await fetchFn(cardUrl.href);
  } catch {
    return undefined;
  }
  if (response.status === 404) return undefined;
  if (!response.ok) throw new Error(`card ${cardUrl.href}: HTTP ${response.status}`);
  return parseJsonAt(cardUrl, await response.text()) as Record<string, unknown>;
}
