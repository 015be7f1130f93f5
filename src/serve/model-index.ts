// The served models folder as an index for the page: every teacher and student folder, checked (config, weights
// file, its autoencoder) so a missing or corrupt file is reported once instead of failing in the browser.
// It also decides what GET /models/... may serve: the model files of the folders it lists, nothing else.
import { existsSync } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { datasetId } from '../data/image-dataset.js';
import { decodeSafetensors } from '../io/safetensors-format.js';
import { CARD_FILE, CONFIG_FILE, WEIGHTS_FILE } from '../models/folder.js';
import { autoencoderModelSchema, diffusionModelSchema, parseConfig } from '../models/schema.js';
import type { ModelEntry, ModelInfo, ModelQuality } from './protocol.js';

const SKIPPED_DIRS = new Set(['checkpoints', 'node_modules']);
// Only a model folder's own files are served, never its checkpoints or logs.
const MODEL_FILES = new Set([CONFIG_FILE, WEIGHTS_FILE, CARD_FILE]);
// Requests for unknown folders list again at most this often: any web page can send them (an <img> needs no CORS).
export const RESCAN_INTERVAL_MS = 1000;

/** Whether real path `real` lies below real path `realRoot` and in no dot-folder (or dot-file) there. */
function insideReal(realRoot: string, real: string): boolean {
  const rel = relative(realRoot, real);
  return rel !== '' && !isAbsolute(rel) && !rel.split(sep).some((s) => s.startsWith('.'));
}

/** `file`'s real path when it exists and, links resolved, lies below `realRoot` outside dot-folders. */
export async function realPathInside(realRoot: string, file: string): Promise<string | undefined> {
  const real = await realpath(file).catch(() => undefined);
  return real !== undefined && insideReal(realRoot, real) ? real : undefined;
}

/** A model folder's problem: `shown` for the page (no absolute paths or file contents), the message for the log. */
class Problem extends Error {
  constructor(
    readonly shown: string,
    detail = shown,
  ) {
    super(detail);
  }
}

/** `parse()`'s result; its error (which may quote the file) is logged, the page gets `shown`. */
function parsed<T>(shown: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new Problem(shown, (err as Error).message);
  }
}

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
  private readonly weightsVerdicts = new Map<string, { key: string; error: Problem | undefined }>();
  private readonly reported = new Map<string, string>();
  /** The folders whose files GET /models/ serves, and the root's real path, as of the last listing. */
  private folders: ReadonlySet<string> = new Set();
  private realRoot = '';
  private lastScan = Number.NEGATIVE_INFINITY;
  private scanCount = 0;
  /** The listing under way, which a request for a folder not yet known waits for. */
  private listing: Promise<ModelEntry[]> | undefined;

  /** `log` receives each problem once, and again only when it changes; `now` (ms) times the re-scans. */
  constructor(
    readonly root: string,
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** How many times the models folder has been listed. */
  get scans(): number {
    return this.scanCount;
  }

  /** Every teacher and student under the root; autoencoders and other kinds are checked only when named. */
  async list(): Promise<ModelEntry[]> {
    const listing = this.scan();
    this.listing = listing;
    try {
      return await listing;
    } finally {
      if (this.listing === listing) this.listing = undefined;
    }
  }

  private async scan(): Promise<ModelEntry[]> {
    // Timed from its start, so the other requests of a burst see it and do not start their own.
    this.lastScan = this.now();
    this.scanCount++;
    this.realRoot = await realpath(this.root).catch(() => this.root);
    const entries: ModelEntry[] = [];
    const folders = new Set<string>();
    for (const path of await modelFolders(this.root)) {
      const entry = await this.entry(path, folders);
      if (entry !== undefined) entries.push(entry);
    }
    this.folders = folders;
    return entries;
  }

  /**
   * The real path of model file `name` in `folder` (posix, relative to the root) when GET /models/ may serve
   * it: the folder holds a teacher or student config or is the autoencoder of one, no segment starts with
   * '.', and links lead nowhere outside the root. For an unknown folder it waits for a listing under way (the
   * page's first requests come while the first listing runs), else lists again, so new models are served,
   * unless it listed less than RESCAN_INTERVAL_MS ago.
   */
  async servedFile(folder: string, name: string): Promise<string | undefined> {
    const segments = folder === '' ? [] : folder.split('/');
    if (!MODEL_FILES.has(name) || segments.some((s) => s === '' || s.startsWith('.'))) return undefined;
    if (!this.folders.has(folder)) {
      if (this.listing !== undefined) await this.listing;
      else if (this.now() - this.lastScan >= RESCAN_INTERVAL_MS) await this.list();
    }
    if (!this.folders.has(folder)) return undefined;
    return realPathInside(this.realRoot, join(this.root, ...segments, name));
  }

  /** The folder's entry; adds the folders whose files may be served to `folders`. */
  private async entry(path: string, folders: Set<string>): Promise<ModelEntry | undefined> {
    const name = path.split('/').pop() || path;
    const dir = join(this.root, path);
    let info: ModelInfo | undefined;
    let error: Problem | undefined;
    try {
      info = await this.check(path, dir, folders);
    } catch (err) {
      error =
        err instanceof Problem
          ? err
          : new Problem('cannot be checked: the server log says why', (err as Error).message);
    }
    const previous = this.reported.get(path);
    if (error !== undefined && previous !== error.message) this.log(`model ${path}: ${error.message}`);
    if (error === undefined && previous !== undefined) this.log(`model ${path}: fixed`);
    if (error === undefined) this.reported.delete(path);
    else this.reported.set(path, error.message);
    if (error !== undefined) return { path, name, error: error.shown };
    return info;
  }

  /** The folder's index entry, undefined for kinds the page does not list; throws a Problem (what is wrong). */
  private async check(path: string, dir: string, folders: Set<string>): Promise<ModelInfo | undefined> {
    const raw = await readJson(await this.realFile(join(dir, CONFIG_FILE)));
    const kind = (raw as { kind?: unknown }).kind;
    if (kind === 'autoencoder' || kind === 'features') return undefined;
    if (kind !== 'teacher' && kind !== 'student') {
      throw new Problem(
        `${CONFIG_FILE} is neither a teacher's nor a student's; the page shows teachers and students`,
        `${CONFIG_FILE} has kind ${JSON.stringify(kind)}; the page shows teachers and students`,
      );
    }
    const config = parsed(`${path}/${CONFIG_FILE} is not a valid model config: fix or replace it`, () =>
      parseConfig(diffusionModelSchema, raw, `${path}/${CONFIG_FILE}`),
    );
    folders.add(path);
    await this.checkWeights(join(dir, WEIGHTS_FILE));
    const aeDir = resolve(dir, config.autoencoder);
    const aePath = this.servedPath(aeDir);
    if (aePath === undefined) {
      throw new Problem(
        'its autoencoder lies outside the served models folder: serve a folder that holds both',
        `its autoencoder "${config.autoencoder}" lies outside the served folder ${this.root}: serve a folder that holds both`,
      );
    }
    if (!existsSync(join(aeDir, CONFIG_FILE))) {
      throw new Problem(`its autoencoder ${aePath} is missing: restore that folder`);
    }
    const aeRaw = await readJson(await this.realFile(join(aeDir, CONFIG_FILE)));
    parsed(`autoencoder ${aePath}: ${CONFIG_FILE} is not a valid autoencoder config: fix or replace it`, () =>
      parseConfig(autoencoderModelSchema, aeRaw, `${aePath}/${CONFIG_FILE}`),
    );
    folders.add(aePath);
    await this.checkWeights(join(aeDir, WEIGHTS_FILE), `autoencoder ${aePath}: `);
    const teacherPath = config.distill && this.servedPath(resolve(dir, config.distill.teacher));
    const quality = await this.cardQuality(join(dir, CARD_FILE));
    return {
      path,
      name: path.split('/').pop() || path,
      dataset: datasetId(config.dataset),
      kind: config.kind,
      ...(config.distill === undefined ? {} : { method: config.distill.method }),
      ...(teacherPath === undefined ? {} : { teacher: teacherPath }),
      url: `/models/${path === '' ? '' : `${path}/`}`,
      steps: config.sampling.steps,
      cfg: config.sampling.cfg,
      classNames: config.classNames,
      ...(config.prompts === undefined ? {} : { prompts: config.prompts }),
      ...(quality === undefined ? {} : { quality }),
    };
  }

  /**
   * The card's FIDs on the report net, else on the selection net; undefined without a card or metrics. A card
   * that cannot be read does not hide the model: it is only logged.
   */
  private async cardQuality(file: string): Promise<ModelQuality | undefined> {
    if (!existsSync(file)) return undefined;
    let card: unknown;
    try {
      card = JSON.parse(await readFile(await this.realFile(file), 'utf8'));
    } catch (err) {
      this.log(`${relative(this.root, file)}: not shown on the page (${(err as Error).message})`);
      return undefined;
    }
    const parsed = cardMetricsSchema.safeParse(card).data;
    const legacy = parsed?.eval?.at(-1); // cards before roles: the newest eval copied in, on the selection net
    return (
      parsed?.metrics?.reportNet ??
      parsed?.metrics?.selectionNet ??
      (legacy === undefined ? undefined : { role: 'selection', ...legacy })
    );
  }

  /** `file`'s real path, or `file` when missing (its reader says so); a Problem when a link leads out. */
  private async realFile(file: string): Promise<string> {
    const real = await realpath(file).catch(() => undefined);
    if (real === undefined || insideReal(this.realRoot, real)) return real ?? file;
    const shown = relative(this.root, file).split(sep).join('/');
    throw new Problem(
      `${shown} is a link to outside the served models folder or into a dot-folder: copy the file in instead`,
      `${shown} is a link to ${real}, outside ${this.realRoot} or in a dot-folder: copy the file in instead`,
    );
  }

  /** `dir` as a posix path under the root, or undefined when it lies outside. */
  private servedPath(dir: string): string | undefined {
    const rel = relative(this.root, dir);
    if (rel.startsWith('..') || resolve(this.root, rel) !== dir) return undefined;
    return rel.split(sep).join('/');
  }

  private async checkWeights(path: string, prefix = ''): Promise<void> {
    const file = await this.realFile(path);
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(file);
    } catch {
      throw new Problem(
        `${prefix}${WEIGHTS_FILE} is missing: the model folder is incomplete (train or copy it again)`,
      );
    }
    const key = `${info.size}:${info.mtimeMs}`;
    let verdict = this.weightsVerdicts.get(file);
    if (verdict?.key !== key) {
      let error: Problem | undefined;
      try {
        decodeSafetensors(await readFile(file));
      } catch (err) {
        // The decoder's message may quote the file's header; the page gets only its gist.
        const code = (err as NodeJS.ErrnoException).code;
        const gist =
          code === undefined
            ? 'corrupt safetensors file (the server log says how)'
            : `cannot be read (${code})`;
        error = new Problem(
          `${prefix}${WEIGHTS_FILE}: ${gist}; replace the file`,
          `${prefix}${WEIGHTS_FILE}: ${(err as Error).message}; replace the file`,
        );
      }
      verdict = { key, error };
      this.weightsVerdicts.set(file, verdict);
    }
    if (verdict.error !== undefined) throw verdict.error;
  }
}

const qualityResults = z.array(
  z.object({ steps: z.number(), cfg: z.number(), fid: z.number(), classAccuracy: z.number() }),
);
const cardQualitySchema = z.object({ role: z.string(), samples: z.number(), results: qualityResults });
/** The part of a card the page shows: `ladder card --eval`'s metrics, or the eval files older cards copied. */
const cardMetricsSchema = z.object({
  metrics: z
    .object({ reportNet: cardQualitySchema.optional(), selectionNet: cardQualitySchema.optional() })
    .optional(),
  eval: z.array(z.object({ samples: z.number(), results: qualityResults })).optional(),
});

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Problem(
      `cannot read ${CONFIG_FILE} (${(err as NodeJS.ErrnoException).code ?? 'unknown error'})`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    // JSON.parse's message quotes the text.
    throw new Problem(
      `${CONFIG_FILE} is not valid JSON: fix or replace it`,
      `${CONFIG_FILE} is not valid JSON (${(err as Error).message}); fix or replace it`,
    );
  }
}
