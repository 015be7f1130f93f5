// Colour emoji from the npm emoji-datasource packages: 64x64 RGBA PNGs on white, averaged down to 32x32 RGB,
// labelled by emoji category. Two artworks of the same catalogue: Twemoji (the evaluated set) and Noto (a set
// of other drawings, for feature nets that must not see the evaluation's images).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../core/fs.js';
import { decodePng } from '../image/png.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';
import type { ImageDataset, LoadDatasetOptions, Split } from './image-dataset.js';

export const EMOJI_CREDIT =
  'Twemoji graphics by Twitter, Inc and other contributors, CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)';
export const NOTO_EMOJI_CREDIT =
  'Noto Emoji graphics by Google, Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0)';

/** One artwork of the emoji catalogue: its npm package, image folder and licence credit. */
interface EmojiSet {
  readonly name: 'emoji' | 'emoji-noto';
  readonly packageName: string;
  readonly imageFolder: string;
  readonly credit: string;
}

const EMOJI_SETS: Record<EmojiSet['name'], EmojiSet> = {
  emoji: {
    name: 'emoji',
    packageName: 'emoji-datasource-twitter',
    imageFolder: 'twitter',
    credit: EMOJI_CREDIT,
  },
  'emoji-noto': {
    name: 'emoji-noto',
    packageName: 'emoji-datasource-google',
    imageFolder: 'google',
    credit: NOTO_EMOJI_CREDIT,
  },
};

const SOURCE_PX = 64;
const TARGET_PX = 32;
const FACTOR = SOURCE_PX / TARGET_PX;
const EXCLUDED_CATEGORY = 'Component'; // skin-tone and hair swatches, not pictures
const SPLIT_SEED = 0x1add;
const TEST_BUCKETS = 10; // one bucket in ten goes to the test split
// Bump when the decoding or the split changes, so stale caches are rebuilt.
const CACHE_FORMAT = '1';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface EmojiEntry {
  readonly unified: string;
  readonly image: string;
  readonly category: string;
  readonly sortOrder: number;
}

/** All decoded emoji of both splits, as stored in the cache. */
interface EmojiTable {
  readonly images: Float32Array; // [N, 32, 32, 3] in [-1, 1]
  readonly labels: Int32Array;
  readonly isTest: Uint8Array;
  readonly classNames: string[];
}

/** FNV-1a over the code point string, mixed with a fixed seed: the split never depends on file order. */
function isTestEmoji(unified: string): boolean {
  let hash = (0x811c9dc5 ^ SPLIT_SEED) >>> 0;
  for (let i = 0; i < unified.length; i++) hash = Math.imul(hash ^ unified.charCodeAt(i), 0x01000193) >>> 0;
  return hash % TEST_BUCKETS === 0;
}

function packageRoot(set: EmojiSet): string {
  try {
    return dirname(createRequire(import.meta.url).resolve(`${set.packageName}/package.json`));
  } catch {
    throw new Error(
      `${set.name} not found: the npm package ${set.packageName} is missing; run \`npm install ${set.packageName}\``,
    );
  }
}

function parseCatalogue(raw: unknown, path: string, imageDir: string): EmojiEntry[] {
  if (!Array.isArray(raw)) throw new Error(`${path} is not a JSON array of emoji`);
  const entries: EmojiEntry[] = [];
  for (const item of raw as unknown[]) {
    const e = item as Record<string, unknown>;
    if (typeof e.unified !== 'string' || typeof e.image !== 'string' || typeof e.category !== 'string') {
      throw new Error(`${path}: entry ${JSON.stringify(item).slice(0, 80)} lacks unified, image or category`);
    }
    // Obsoleted code points reuse the artwork of their replacement; keep one copy.
    if (e.category === EXCLUDED_CATEGORY || e.obsoleted_by !== undefined) continue;
    if (!existsSync(join(imageDir, e.image))) continue;
    const sortOrder = typeof e.sort_order === 'number' ? e.sort_order : Number.MAX_SAFE_INTEGER;
    entries.push({ unified: e.unified, image: e.image, category: e.category, sortOrder });
  }
  return entries.sort((a, b) => a.sortOrder - b.sortOrder || (a.unified < b.unified ? -1 : 1));
}

/** Composites an RGBA image on white and averages FACTOR x FACTOR blocks into `out` (RGB, [-1, 1]). */
function downsampleOnWhite(rgba: Uint8Array, out: Float32Array, offset: number): void {
  const cell = FACTOR * FACTOR;
  for (let y = 0; y < TARGET_PX; y++) {
    for (let x = 0; x < TARGET_PX; x++) {
      for (let ch = 0; ch < 3; ch++) {
        let sum = 0;
        for (let dy = 0; dy < FACTOR; dy++) {
          for (let dx = 0; dx < FACTOR; dx++) {
            const p = ((y * FACTOR + dy) * SOURCE_PX + x * FACTOR + dx) * 4;
            const alpha = rgba[p + 3]! / 255;
            sum += alpha * rgba[p + ch]! + (1 - alpha) * 255;
          }
        }
        out[offset + (y * TARGET_PX + x) * 3 + ch] = sum / cell / 127.5 - 1;
      }
    }
  }
}

async function buildTable(root: string, set: EmojiSet): Promise<EmojiTable> {
  const imageDir = join(root, 'img', set.imageFolder, String(SOURCE_PX));
  const cataloguePath = join(root, 'emoji.json');
  const entries = parseCatalogue(JSON.parse(await readFile(cataloguePath, 'utf8')), cataloguePath, imageDir);
  const classNames = [...new Set(entries.map((e) => e.category))].sort();
  const pixels = TARGET_PX * TARGET_PX * 3;
  const images = new Float32Array(entries.length * pixels);
  const labels = new Int32Array(entries.length);
  const isTest = new Uint8Array(entries.length);
  for (const [i, entry] of entries.entries()) {
    const path = join(imageDir, entry.image);
    let png: ReturnType<typeof decodePng>;
    try {
      png = decodePng(await readFile(path));
    } catch (err) {
      throw new Error(`${path}: ${(err as Error).message}; reinstall ${set.packageName}`);
    }
    if (png.width !== SOURCE_PX || png.height !== SOURCE_PX) {
      throw new Error(`${path} is ${png.width}x${png.height}, expected ${SOURCE_PX}x${SOURCE_PX}`);
    }
    downsampleOnWhite(png.data, images, i * pixels);
    labels[i] = classNames.indexOf(entry.category);
    isTest[i] = isTestEmoji(entry.unified) ? 1 : 0;
  }
  return { images, labels, isTest, classNames };
}

/** Reads the cache if it exists and matches this package version and format; otherwise undefined. */
async function readCache(path: string, source: string): Promise<EmojiTable | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const { tensors, metadata } = decodeSafetensors(await readFile(path));
    if (metadata.source !== source || metadata.format !== CACHE_FORMAT) return undefined;
    const { images, labels, isTest } = tensors;
    const classNames: unknown = JSON.parse(metadata.classNames ?? 'null');
    if (!(images?.data instanceof Float32Array && labels?.data instanceof Int32Array)) return undefined;
    if (!(isTest?.data instanceof Uint8Array && Array.isArray(classNames))) return undefined;
    const n = labels.data.length;
    if (images.data.length !== n * TARGET_PX * TARGET_PX * 3 || isTest.data.length !== n) return undefined;
    return {
      images: images.data,
      labels: labels.data,
      isTest: isTest.data,
      classNames: classNames.map(String),
    };
  } catch {
    return undefined; // an unreadable cache is simply rebuilt
  }
}

async function buildAndCache(
  root: string,
  set: EmojiSet,
  cachePath: string,
  source: string,
): Promise<EmojiTable> {
  const table = await buildTable(root, set);
  const n = table.labels.length;
  const bytes = encodeSafetensors(
    {
      images: { dtype: 'F32', shape: [n, TARGET_PX, TARGET_PX, 3], data: table.images },
      labels: { dtype: 'I32', shape: [n], data: table.labels },
      isTest: { dtype: 'U8', shape: [n], data: table.isTest },
    },
    { source, format: CACHE_FORMAT, classNames: JSON.stringify(table.classNames), credit: set.credit },
  );
  await writeFileAtomic(cachePath, bytes);
  return table;
}

/**
 * Emoji by category (9 classes), 32x32 RGB: Twemoji (`emoji`) or Noto (`emoji-noto`), with a fixed ~90/10
 * train/test split by a hash of the code points (the same emoji fall in the same split in both sets). Cached
 * under `.cache/`.
 */
export async function loadEmoji(
  name: EmojiSet['name'],
  split: Split,
  opts: LoadDatasetOptions = {},
): Promise<ImageDataset> {
  const set = EMOJI_SETS[name];
  const root = packageRoot(set);
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version?: string };
  const version = manifest.version ?? 'unknown';
  const source = `${set.packageName}@${version}`;
  const cachePath = join(
    opts.cacheDir ?? join(REPO_ROOT, '.cache'),
    `${set.name}-${version}-${TARGET_PX}px.safetensors`,
  );
  const table = (await readCache(cachePath, source)) ?? (await buildAndCache(root, set, cachePath, source));
  const wanted = split === 'test' ? 1 : 0;
  const picked: number[] = [];
  for (let i = 0; i < table.isTest.length && picked.length < (opts.limit ?? Number.POSITIVE_INFINITY); i++) {
    if (table.isTest[i] === wanted) picked.push(i);
  }
  const pixels = TARGET_PX * TARGET_PX * 3;
  const images = new Float32Array(picked.length * pixels);
  for (const [j, i] of picked.entries())
    images.set(table.images.subarray(i * pixels, (i + 1) * pixels), j * pixels);
  return {
    spec: set.name,
    name: set.name,
    split,
    images,
    labels: Int32Array.from(picked, (i) => table.labels[i]!),
    count: picked.length,
    height: TARGET_PX,
    width: TARGET_PX,
    channels: 3,
    numClasses: table.classNames.length,
    classNames: table.classNames,
    credit: set.credit,
  };
}
