// Folder datasets: a user's own PNG, JPEG and WebP images, labelled by subfolder, decoded with sharp to one
// size and cached as one file keyed by the folder's content and the decoding options.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../core/fs.js';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors.js';
import type { FolderDatasetSpec, ImageDataset, LoadDatasetOptions, Split } from './image-dataset.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);
/** A run with more unreadable files than this share of the images fails: the folder is probably not what was meant. */
const MAX_UNREADABLE_SHARE = 0.01;
/** Share of each class held out for reference statistics (at least one image of a class of two or more). */
const TEST_SHARE = 0.1;
/** Channels that differ by at most this (of 255) count as grey: JPEG can tint a grey image by a level or two. */
const GREY_TOLERANCE = 2;
const METADATA_FILE = 'metadata.jsonl';
const DECODE_CONCURRENCY = 4;
const NAMES_SHOWN = 5;
const UNREADABLE_LISTED = 50;
// Bump when decoding, the split or the file layout changes, so stale caches are rebuilt.
const CACHE_FORMAT = 'ladder-folder-1';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The decoded folder as cached: RGB bytes of both splits (grey is derived at load). */
interface FolderTable {
  readonly rgb: Uint8Array; // [N, H, W, 3]
  readonly labels: Int32Array;
  readonly isTest: Uint8Array;
  readonly classNames: string[];
  readonly texts: string[] | undefined;
  /** True when every image is grey (all three channels equal within GREY_TOLERANCE). */
  readonly grey: boolean;
}

interface ListedImage {
  /** Path relative to the folder, with forward slashes (as metadata.jsonl names it). */
  readonly name: string;
  readonly label: number;
}

interface Listing {
  readonly images: ListedImage[];
  readonly classNames: string[];
  /**
   * A bucket's listing: the names of the whole folder's test split, so every bucket holds out what the folder at
   * one size holds out (undefined: split this listing itself).
   */
  readonly testNames?: ReadonlySet<string>;
}

const isHidden = (name: string): boolean => name.startsWith('.');
const isImageFile = (name: string): boolean => IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
const slashPath = (root: string, path: string): string => relative(root, path).split(sep).join('/');
const someNames = (names: readonly string[]): string =>
  names.slice(0, NAMES_SHOWN).join(', ') +
  (names.length > NAMES_SHOWN ? `, ... (${names.length} in all)` : '');

/** Every non-hidden file under `dir`, recursively. */
async function walk(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (isHidden(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await walk(path)));
    else if (entry.isFile()) files.push(path);
  }
  return files;
}

/**
 * The folder's images and classes: one class per subfolder (images anywhere below it), or, with no subfolders,
 * one class named after the folder. Refuses what would train on the wrong thing: no images, an empty class, or
 * loose images beside class folders.
 */
async function listFolder(folder: string): Promise<Listing> {
  if (!existsSync(folder)) {
    throw new Error(
      `dataset folder ${folder} does not exist (if it moved, point "dataset.folder" in the model's config.json at ` +
        'its new place)',
    );
  }
  const entries = (await readdir(folder, { withFileTypes: true })).filter((e) => !isHidden(e.name));
  // Numeric order, so folders 0..10 are classes 0..10 (not 0, 1, 10, 2, ...).
  const classDirs = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const looseFiles = entries.filter((e) => e.isFile()).map((e) => e.name);
  const looseImages = looseFiles.filter(isImageFile).sort();

  if (classDirs.length === 0) {
    if (looseImages.length === 0) {
      const others = looseFiles.filter((n) => n !== METADATA_FILE);
      throw new Error(
        others.length === 0
          ? `dataset folder ${folder} is empty: put PNG, JPEG or WebP images in it (one subfolder per class)`
          : `dataset folder ${folder} holds no PNG, JPEG or WebP images, only ${someNames(others)}`,
      );
    }
    return { images: looseImages.map((name) => ({ name, label: 0 })), classNames: [basename(folder)] };
  }
  if (looseImages.length > 0) {
    throw new Error(
      `dataset folder ${folder} has class subfolders (${someNames(classDirs)}) and also images outside them ` +
        `(${someNames(looseImages)}): move those into a class folder, or remove the subfolders for an unlabelled set`,
    );
  }
  const images: ListedImage[] = [];
  for (const [label, dir] of classDirs.entries()) {
    const files = await walk(join(folder, dir));
    const found = files.filter((f) => isImageFile(f)).map((f) => slashPath(folder, f));
    if (found.length === 0) {
      throw new Error(
        `class folder ${join(folder, dir)} has no PNG, JPEG or WebP images` +
          (files.length > 0 ? ` (only ${someNames(files.map((f) => slashPath(folder, f)))})` : '') +
          ': add images or remove the folder',
      );
    }
    for (const name of found.sort()) images.push({ name, label });
  }
  return { images, classNames: classDirs };
}

/** Captions from metadata.jsonl (`{"file_name": ..., "text": ...}` per line), by image name; undefined without one. */
async function readMetadata(
  folder: string,
  names: ReadonlySet<string>,
  othersListed = false,
): Promise<Map<string, string> | undefined> {
  const path = join(folder, METADATA_FILE);
  if (!existsSync(path)) return undefined;
  const texts = new Map<string, string>();
  const lines = (await readFile(path, 'utf8')).split('\n');
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new Error(`${path} line ${i + 1} is not JSON: ${line.slice(0, 80)}`);
    }
    const { file_name: fileName, text } = (row ?? {}) as Record<string, unknown>;
    if (typeof fileName !== 'string') throw new Error(`${path} line ${i + 1} has no "file_name" string`);
    if (text !== undefined && typeof text !== 'string')
      throw new Error(`${path} line ${i + 1}: "text" must be a string`);
    if (!names.has(fileName)) {
      if (othersListed) continue; // another bucket's image (the whole file was checked against the folder)
      throw new Error(`${path} line ${i + 1} names ${fileName}, which is not an image in ${folder}`);
    }
    texts.set(fileName, text ?? '');
  }
  return texts;
}

/** The cache key: a hash of every image's name and bytes, the captions, the options, the decoder and the format. */
async function contentKey(
  folder: string,
  listing: Listing,
  spec: FolderDatasetSpec,
  decoderVersion: string,
): Promise<string> {
  const hash = createHash('sha256');
  const options = [CACHE_FORMAT, decoderVersion, spec.size, spec.fit, spec.background, listing.classNames];
  hash.update(JSON.stringify(options));
  for (const image of listing.images) {
    hash.update(`\0${image.label}\0${image.name}\0`);
    hash.update(await readFile(join(folder, image.name)));
  }
  const metadata = join(folder, METADATA_FILE);
  if (existsSync(metadata)) hash.update(await readFile(metadata));
  if (listing.testNames !== undefined) hash.update(`\0test\0${[...listing.testNames].sort().join('\0')}`);
  return hash.digest('hex').slice(0, 16);
}

/** FNV-1a of the image's name: the split and the stored order follow names, not the order files are listed in. */
function nameHash(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

/** Marks TEST_SHARE of each class (the images with the smallest name hashes) as test. */
function splitByClass(images: readonly ListedImage[], numClasses: number): Uint8Array {
  const isTest = new Uint8Array(images.length);
  for (let label = 0; label < numClasses; label++) {
    const members = images.flatMap((img, i) => (img.label === label ? [i] : []));
    const testCount = members.length < 2 ? 0 : Math.max(1, Math.round(members.length * TEST_SHARE));
    members.sort((a, b) => nameHash(images[a]!.name) - nameHash(images[b]!.name) || a - b);
    for (const i of members.slice(0, testCount)) isTest[i] = 1;
  }
  return isTest;
}

type Sharp = typeof import('sharp');

async function loadSharp(): Promise<Sharp> {
  try {
    const module = (await import('sharp')) as unknown as { default?: Sharp };
    return module.default ?? (module as unknown as Sharp);
  } catch (err) {
    throw new Error(
      `folder datasets need the npm package sharp to decode images (${(err as Error).message}); run \`npm install sharp\``,
    );
  }
}

/** Decodes one file to RGB bytes of the spec's size: alpha flattened onto the background, then fitted. */
async function decodeImage(sharp: Sharp, bytes: Buffer, spec: FolderDatasetSpec): Promise<Uint8Array> {
  const [r, g, b] = spec.background;
  const [height, width] = spec.size;
  const { data, info } = await sharp(bytes)
    .rotate() // EXIF orientation, as photo viewers show it
    .flatten({ background: { r, g, b } })
    .resize({ width, height, fit: spec.fit, position: 'centre', background: { r, g, b, alpha: 1 } })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== width || info.height !== height || info.channels !== 3) {
    throw new Error(
      `decoded to ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x3`,
    );
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function isGrey(rgb: Uint8Array): boolean {
  for (let p = 0; p < rgb.length; p += 3) {
    const r = rgb[p]!;
    if (Math.abs(r - rgb[p + 1]!) > GREY_TOLERANCE || Math.abs(r - rgb[p + 2]!) > GREY_TOLERANCE)
      return false;
  }
  return true;
}

async function buildTable(
  sharp: Sharp,
  folder: string,
  listing: Listing,
  spec: FolderDatasetSpec,
  progress: boolean,
): Promise<FolderTable> {
  const partial = listing.testNames !== undefined; // one bucket's images
  const [height, width] = spec.size;
  const pixels = height * width * 3;
  const decoded: (Uint8Array | undefined)[] = new Array(listing.images.length);
  const unreadable: string[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < listing.images.length) {
      const i = next++;
      const { name } = listing.images[i]!;
      try {
        decoded[i] = await decodeImage(sharp, await readFile(join(folder, name)), spec);
      } catch (err) {
        unreadable.push(`${name} (${(err as Error).message.split('\n')[0]})`);
      }
      done++;
      if (progress && (done % 1000 === 0 || done === listing.images.length))
        process.stderr.write(`decoding ${folder}: ${done}/${listing.images.length} images\n`);
    }
  };
  await Promise.all(Array.from({ length: DECODE_CONCURRENCY }, worker));
  unreadable.sort();
  const total = listing.images.length;
  if (unreadable.length > MAX_UNREADABLE_SHARE * total) {
    const listed = unreadable.slice(0, UNREADABLE_LISTED);
    const more = unreadable.length > listed.length ? `; and ${unreadable.length - listed.length} more` : '';
    throw new Error(
      `${unreadable.length} of ${total} files in ${folder} could not be read as images (more than ` +
        `${MAX_UNREADABLE_SHARE * 100}%): ${listed.join('; ')}${more}. Delete or fix them, then run again`,
    );
  }
  if (unreadable.length > 0) {
    process.stderr.write(
      `note: skipped ${unreadable.length} unreadable file(s) of ${total} in ${folder}: ${someNames(unreadable)}\n`,
    );
  }
  // Stored in name-hash order, not class by class, so the first N images (--limit) hold every class.
  const kept = listing.images
    .flatMap((img, i) => (decoded[i] === undefined ? [] : [{ img, rgb: decoded[i]! }]))
    .sort((a, b) => nameHash(a.img.name) - nameHash(b.img.name) || (a.img.name < b.img.name ? -1 : 1));
  // A bucket holds only the images of its aspect ratio: a class may have none there.
  const emptied = listing.classNames.filter((_, label) => !kept.some((k) => k.img.label === label));
  if (!partial && emptied.length > 0) {
    throw new Error(`class folder(s) ${someNames(emptied)} in ${folder} hold no readable image`);
  }
  const rgb = new Uint8Array(kept.length * pixels);
  for (const [i, k] of kept.entries()) rgb.set(k.rgb, i * pixels);
  const images = kept.map((k) => k.img);
  const captions = await readMetadata(folder, new Set(listing.images.map((img) => img.name)), partial);
  return {
    rgb,
    labels: Int32Array.from(images, (img) => img.label),
    isTest:
      listing.testNames === undefined
        ? splitByClass(images, listing.classNames.length)
        : Uint8Array.from(images, (img) => (listing.testNames!.has(img.name) ? 1 : 0)),
    classNames: listing.classNames,
    texts: captions === undefined ? undefined : images.map((img) => captions.get(img.name) ?? ''),
    grey: kept.every((k) => isGrey(k.rgb)),
  };
}

async function readCache(path: string, key: string, pixels: number): Promise<FolderTable | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const { tensors, metadata } = decodeSafetensors(await readFile(path));
    if (metadata.format !== CACHE_FORMAT || metadata.key !== key) return undefined;
    const { rgb, labels, isTest } = tensors;
    if (!(rgb?.data instanceof Uint8Array && labels?.data instanceof Int32Array)) return undefined;
    if (!(isTest?.data instanceof Uint8Array)) return undefined;
    const n = labels.data.length;
    if (rgb.data.length !== n * pixels || isTest.data.length !== n) return undefined;
    const texts: unknown = JSON.parse(metadata.texts ?? 'null');
    return {
      rgb: rgb.data,
      labels: labels.data,
      isTest: isTest.data,
      classNames: (JSON.parse(metadata.classNames ?? '[]') as unknown[]).map(String),
      texts: Array.isArray(texts) ? texts.map(String) : undefined,
      grey: metadata.grey === 'true',
    };
  } catch {
    return undefined; // an unreadable cache is rebuilt
  }
}

async function writeCache(
  path: string,
  key: string,
  table: FolderTable,
  spec: FolderDatasetSpec,
): Promise<void> {
  const n = table.labels.length;
  const [height, width] = spec.size;
  const bytes = encodeSafetensors(
    {
      rgb: { dtype: 'U8', shape: [n, height, width, 3], data: table.rgb },
      labels: { dtype: 'I32', shape: [n], data: table.labels },
      isTest: { dtype: 'U8', shape: [n], data: table.isTest },
    },
    {
      format: CACHE_FORMAT,
      key,
      folder: spec.folder,
      classNames: JSON.stringify(table.classNames),
      grey: String(table.grey),
      ...(table.texts === undefined ? {} : { texts: JSON.stringify(table.texts) }),
    },
  );
  await writeFileAtomic(path, bytes);
}

/** The folder's (or a bucket's) decoded table at `spec.size`: from the cache, or decoded once and cached. */
async function folderTable(
  spec: FolderDatasetSpec,
  listing: Listing,
  sharp: Sharp,
  opts: LoadDatasetOptions,
): Promise<FolderTable> {
  const [height, width] = spec.size;
  const decoder = `sharp ${sharp.versions.sharp} libvips ${sharp.versions.vips}`;
  const key = await contentKey(spec.folder, listing, spec, decoder);
  const cachePath = join(opts.cacheDir ?? join(REPO_ROOT, '.cache'), 'folders', `${key}.safetensors`);
  let table = await readCache(cachePath, key, height * width * 3);
  if (table === undefined) {
    table = await buildTable(sharp, spec.folder, listing, spec, opts.progress ?? true);
    await writeCache(cachePath, key, table, spec);
  }
  return table;
}

/** One split of a decoded table with `channels` channels; undefined when the split holds no image. */
function splitOf(
  spec: FolderDatasetSpec,
  table: FolderTable,
  split: Split,
  channels: 1 | 3,
  limit = Number.POSITIVE_INFINITY,
): ImageDataset | undefined {
  const [height, width] = spec.size;
  const wanted = split === 'test' ? 1 : 0;
  const picked: number[] = [];
  for (let i = 0; i < table.isTest.length && picked.length < limit; i++) {
    if (table.isTest[i] === wanted) picked.push(i);
  }
  if (picked.length === 0) return undefined;
  const pixels = height * width;
  const images = new Float32Array(picked.length * pixels * channels);
  for (const [j, i] of picked.entries()) {
    const src = i * pixels * 3;
    const dst = j * pixels * channels;
    for (let p = 0; p < pixels; p++) {
      const r = table.rgb[src + 3 * p]!;
      const g = table.rgb[src + 3 * p + 1]!;
      const b = table.rgb[src + 3 * p + 2]!;
      if (channels === 1) {
        images[dst + p] = (0.299 * r + 0.587 * g + 0.114 * b) / 127.5 - 1; // Rec. 601 luma
      } else {
        images[dst + 3 * p] = r / 127.5 - 1;
        images[dst + 3 * p + 1] = g / 127.5 - 1;
        images[dst + 3 * p + 2] = b / 127.5 - 1;
      }
    }
  }
  const texts = table.texts;
  return {
    spec: { ...spec, channels },
    name: spec.folder,
    split,
    images,
    labels: Int32Array.from(picked, (i) => table.labels[i]!),
    count: picked.length,
    height,
    width,
    channels,
    numClasses: table.classNames.length,
    classNames: table.classNames,
    ...(texts === undefined ? {} : { texts: picked.map((i) => texts[i]!) }),
  };
}

const emptySplitError = (folder: string, split: Split, images: number): Error =>
  new Error(
    `the ${split} split of ${folder} is empty: it holds ${images} image(s); a class needs at least ` +
      'two images to give one to the test split',
  );

/**
 * One split of a folder dataset, decoded to `spec.size` with `spec.channels` channels (when unset: 1 if every image
 * is grey, else 3; the returned `spec` says which). Decoding happens once per folder content and options; later
 * loads read the cache under `opts.cacheDir` (default `.cache/` in the repository).
 */
export async function loadFolderDataset(
  spec: FolderDatasetSpec,
  split: Split,
  opts: LoadDatasetOptions = {},
): Promise<ImageDataset> {
  const listing = await listFolder(spec.folder);
  const table = await folderTable(spec, listing, await loadSharp(), opts);
  const channels = spec.channels ?? (table.grey ? 1 : 3);
  const data = splitOf(spec, table, split, channels, opts.limit);
  if (data === undefined) throw emptySplitError(spec.folder, split, table.labels.length);
  return data;
}

/** The bucket of each listed image: the size whose aspect ratio is nearest the image's as shown (EXIF-rotated). */
async function assignBuckets(
  sharp: Sharp,
  folder: string,
  listing: Listing,
  sizes: readonly (readonly [number, number])[],
): Promise<Int32Array> {
  const ratios = sizes.map(([h, w]) => Math.log(w / h));
  const bucketOf = new Int32Array(listing.images.length);
  for (const [i, { name }] of listing.images.entries()) {
    try {
      const meta = await sharp(await readFile(join(folder, name))).metadata();
      const turned = (meta.orientation ?? 1) >= 5; // EXIF orientations 5-8 swap width and height
      const [w, h] = turned ? [meta.height, meta.width] : [meta.width, meta.height];
      if (!(w && h)) continue; // decoding reports it; bucket 0
      const ratio = Math.log(w / h);
      let best = 0;
      for (let k = 1; k < ratios.length; k++) {
        if (Math.abs(ratio - ratios[k]!) < Math.abs(ratio - ratios[best]!)) best = k;
      }
      bucketOf[i] = best;
    } catch {
      // An unreadable file goes to bucket 0, whose decoding skips or reports it like any other.
    }
  }
  return bucketOf;
}

/**
 * One split of a folder in aspect-ratio buckets: each image goes to the size of `sizes` ([height, width]) whose
 * aspect ratio is nearest its own and is fitted there (spec.fit). One dataset per bucket that holds images of the
 * split, in `sizes` order, each with its bucket's size as `spec.size`. The test split is the whole folder's (a
 * tenth of each class, as `loadFolderDataset` holds out), wherever its images fall; `opts.limit` keeps the first N
 * of each bucket. The channel count is the whole folder's (grey only if every bucket is). Each bucket is decoded
 * and cached once.
 */
export async function loadFolderBuckets(
  spec: FolderDatasetSpec,
  sizes: readonly (readonly [number, number])[],
  split: Split,
  opts: LoadDatasetOptions = {},
): Promise<ImageDataset[]> {
  if (sizes.length === 0) throw new Error('no bucket sizes given');
  const listing = await listFolder(spec.folder);
  const sharp = await loadSharp();
  await readMetadata(spec.folder, new Set(listing.images.map((img) => img.name))); // names every image it lists
  const bucketOf = await assignBuckets(sharp, spec.folder, listing, sizes);
  // The whole folder's split (as the folder at one size splits it when every file reads), so the commands that
  // load it at one size (train-features, eval) hold out the same images.
  const split0 = splitByClass(listing.images, listing.classNames.length);
  const testNames = new Set(listing.images.flatMap((img, i) => (split0[i] ? [img.name] : [])));
  const buckets: { spec: FolderDatasetSpec; table: FolderTable }[] = [];
  for (const [k, size] of sizes.entries()) {
    const images = listing.images.filter((_, i) => bucketOf[i] === k);
    if (images.length === 0) continue;
    const bucketSpec = { ...spec, size };
    const bucketListing = { images, classNames: listing.classNames, testNames };
    buckets.push({ spec: bucketSpec, table: await folderTable(bucketSpec, bucketListing, sharp, opts) });
  }
  const channels = spec.channels ?? (buckets.every((b) => b.table.grey) ? 1 : 3);
  const datasets = buckets.flatMap((b) => splitOf(b.spec, b.table, split, channels, opts.limit) ?? []);
  if (datasets.length === 0) throw emptySplitError(spec.folder, split, listing.images.length);
  return datasets;
}
