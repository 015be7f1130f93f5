// The models shipped in the package (models/<dataset>/<name>, beside dist/ or src/), found by name from anywhere:
// an installed package has no ./models in the user's folder.
import { existsSync, readdirSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_FILE } from './folder.js';

/** The package's models folder: `<dataset>/<name>` model folders. */
export const SHIPPED_MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url));

/**
 * The shipped models folder as a command shows and records it: relative to the working folder when inside it
 * ("models" in the checkout), else absolute (an installed package run from the user's own folder).
 */
export function shippedModelsDirForCommands(): string {
  const rel = relative(process.cwd(), SHIPPED_MODELS_DIR);
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? SHIPPED_MODELS_DIR : rel;
}

/** The shipped teacher, student and other model folders by name, e.g. "mnist/ladd-dmd-4step". */
export function shippedModels(): string[] {
  if (!existsSync(SHIPPED_MODELS_DIR)) return [];
  const names: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      if (existsSync(join(path, CONFIG_FILE)))
        names.push(relative(SHIPPED_MODELS_DIR, path).split('\\').join('/'));
      else walk(path);
    }
  };
  walk(SHIPPED_MODELS_DIR);
  return names.sort();
}

/** The shipped model folder called `name`, or undefined when there is none. */
export function shippedModel(name: string): string | undefined {
  const dir = resolve(SHIPPED_MODELS_DIR, name);
  const rel = relative(SHIPPED_MODELS_DIR, dir);
  const inside = !rel.startsWith('..') && !isAbsolute(rel);
  return inside && existsSync(join(dir, CONFIG_FILE)) ? dir : undefined;
}

/** `source` when it exists, else the shipped model of that name; fails naming the shipped models otherwise. */
export function resolveModelFolder(source: string): string {
  if (existsSync(source)) return source;
  const shipped = shippedModel(source);
  if (shipped !== undefined) return shipped;
  const names = shippedModels();
  throw new Error(
    `no model folder "${source}": give a folder path, a URL, or a shipped model` +
      (names.length > 0 ? ` (${names.join(', ')})` : ''),
  );
}
