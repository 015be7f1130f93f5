// The served models folder as an index for the page: every teacher and student folder, checked (config, weights
// file, its autoencoder) so a missing or corrupt file is reported once instead of failing in the browser.
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { decodeSafetensors } from '../io/safetensors-format.js';
import { CONFIG_FILE, WEIGHTS_FILE } from '../models/folder.js';
import { autoencoderModelSchema, diffusionModelSchema, parseConfig } from '../models/schema.js';
import type { ModelEntry, ModelInfo } from './protocol.js';

const SKIPPED_DIRS = new Set(['checkpoints', 'node_modules']);

/** Folders under `root`, up to three levels down (`mnist/padd/stage-4`), that hold a config.json, as posix paths. */
async function modelFolders(root: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    if (existsSync(join(dir, CONFIG_FILE))) {
      found.push(relative(root, dir).split(sep).join('/'));
      return;
    }
    if (depth === 3) return;
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.isDirectory() && !e.name.startsWith('.') && !SKIPPED_DIRS.has(e.name)) {
        await visit(join(dir, e.name), depth + 1);
      }
    }
  };
  await visit(root, 0);
  return found;
}

/** Checks model folders and caches each weights file's verdict by size and modification time. */
export class ModelIndexer {
  private readonly weightsVerdicts = new Map<string, { key: string; error: string | undefined }>();
  private readonly reported = new Map<string, string>();

  /** `log` receives each problem once, and again only when it changes. */
  constructor(
    readonly root: string,
    private readonly log: (line: string) => void,
  ) {}

  /** Every teacher and student under the root; autoencoders and other kinds are checked only when named. */
  async list(): Promise<ModelEntry[]> {
    const entries: ModelEntry[] = [];
    for (const path of await modelFolders(this.root)) {
      const entry = await this.entry(path);
      if (entry !== undefined) entries.push(entry);
    }
    return entries;
  }

  private async entry(path: string): Promise<ModelEntry | undefined> {
    const name = path.split('/').pop() || path;
    const dir = join(this.root, path);
    let info: ModelInfo | undefined;
    let error: string | undefined;
    try {
      info = await this.check(path, dir);
    } catch (err) {
      error = (err as Error).message;
    }
    const previous = this.reported.get(path);
    if (error !== undefined && previous !== error) this.log(`model ${path}: ${error}`);
    if (error === undefined && previous !== undefined) this.log(`model ${path}: fixed`);
    if (error === undefined) this.reported.delete(path);
    else this.reported.set(path, error);
    if (error !== undefined) return { path, name, error };
    return info;
  }

  /** The folder's index entry, undefined for kinds the page does not list; throws what is wrong. */
  private async check(path: string, dir: string): Promise<ModelInfo | undefined> {
    const raw = await readJson(join(dir, CONFIG_FILE));
    const kind = (raw as { kind?: unknown }).kind;
    if (kind === 'autoencoder' || kind === 'features') return undefined;
    if (kind !== 'teacher' && kind !== 'student') {
      throw new Error(
        `${CONFIG_FILE} has kind ${JSON.stringify(kind)}; the page shows teachers and students`,
      );
    }
    const config = parseConfig(diffusionModelSchema, raw, `${path}/${CONFIG_FILE}`);
    await this.checkWeights(join(dir, WEIGHTS_FILE));
    const aeDir = resolve(dir, config.autoencoder);
    const aePath = this.servedPath(aeDir);
    if (aePath === undefined) {
      throw new Error(
        `its autoencoder "${config.autoencoder}" lies outside the served folder ${this.root}: serve a folder that holds both`,
      );
    }
    if (!existsSync(join(aeDir, CONFIG_FILE))) {
      throw new Error(`its autoencoder "${config.autoencoder}" (${aePath}) is missing: restore that folder`);
    }
    parseConfig(autoencoderModelSchema, await readJson(join(aeDir, CONFIG_FILE)), `${aePath}/${CONFIG_FILE}`);
    await this.checkWeights(join(aeDir, WEIGHTS_FILE), `autoencoder ${aePath}: `);
    const teacherPath = config.distill && this.servedPath(resolve(dir, config.distill.teacher));
    return {
      path,
      name: path.split('/').pop() || path,
      dataset: config.dataset,
      kind: config.kind,
      ...(config.distill === undefined ? {} : { method: config.distill.method }),
      ...(teacherPath === undefined ? {} : { teacher: teacherPath }),
      url: `/models/${path === '' ? '' : `${path}/`}`,
      steps: config.sampling.steps,
      cfg: config.sampling.cfg,
      classNames: config.classNames,
    };
  }

  /** `dir` as a posix path under the root, or undefined when it lies outside. */
  private servedPath(dir: string): string | undefined {
    const rel = relative(this.root, dir);
    if (rel.startsWith('..') || resolve(this.root, rel) !== dir) return undefined;
    return rel.split(sep).join('/');
  }

  private async checkWeights(file: string, prefix = ''): Promise<void> {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(file);
    } catch {
      throw new Error(
        `${prefix}${WEIGHTS_FILE} is missing: the model folder is incomplete (train or copy it again)`,
      );
    }
    const key = `${info.size}:${info.mtimeMs}`;
    let verdict = this.weightsVerdicts.get(file);
    if (verdict?.key !== key) {
      let error: string | undefined;
      try {
        decodeSafetensors(await readFile(file));
      } catch (err) {
        error = `${prefix}${WEIGHTS_FILE}: ${(err as Error).message}; replace the file`;
      }
      verdict = { key, error };
      this.weightsVerdicts.set(file, verdict);
    }
    if (verdict.error !== undefined) throw new Error(verdict.error);
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${CONFIG_FILE} (${(err as NodeJS.ErrnoException).code ?? 'unknown error'})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${CONFIG_FILE} is not valid JSON (${(err as Error).message}); fix or replace it`);
  }
}
