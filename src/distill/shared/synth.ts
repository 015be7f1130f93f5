// `ladder synth`: the teacher's synthetic latents, generated once with CFG (class-balanced, seeded) and cached in
// one safetensors file, the data LADD trains on by default (METHODS.md section 3). The file records which teacher
// (and autoencoder) made it, by the hash of their weights, so a set is never reused for another teacher.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ensureWritableDir, writeFileAtomic } from '../../core/fs.js';
import { Rng } from '../../core/rng.js';
import * as tf from '../../core/tf.js';
import { loadDatasetBuckets } from '../../data/dataset.js';
import { type ArraySource, derivedSeed } from '../../data/loader.js';
import { balancedDigitStrings, type PromptBucket } from '../../data/prompts.js';
import type { Collectives } from '../../engine/torch/collectives.js';
import { decodeSafetensors, encodeSafetensors } from '../../io/safetensors.js';
import { CONFIG_FILE, readJson, WEIGHTS_FILE } from '../../models/folder.js';
import {
  balancedLabels,
  checkChunkFits,
  checkFiniteValues,
  DEFAULT_BATCH,
  type DiffusionModel,
  defaultSampler,
  type GenerateOptions,
  latentChunks,
  MAX_CFG,
  promptLatentSize,
} from '../../models/pipeline.js';
import {
  type DiffusionModelConfig,
  diffusionModelSchema,
  type PromptsConfig,
  parseConfig,
} from '../../models/schema.js';
import { downsampling } from '../../nn/autoencoder.js';
import { tokenizeAll } from '../../nn/text-encoder.js';
import type { SamplerKind } from '../../samplers/sample.js';
import {
  anyRank,
  gatherRows,
  processGroupFromEnv,
  tensorsFromRankZero,
  valueFromRankZero,
} from '../../train/data-parallel.js';
import { createProgress, silentProgress } from '../../train/progress.js';

/** How a synthetic set was made; stored in the file's metadata and checked when it is reused. */
export interface SynthSettings {
  /** Latents in total, spread evenly over the classes. */
  readonly count: number;
  /** Teacher sampling steps and CFG scale. */
  readonly steps: number;
  readonly cfg: number;
  readonly sampler: SamplerKind;
  readonly seed: number;
}

/** Which teacher made a synthetic set: its folder and its autoencoder's (resolved), and their weights' sha256. */
export interface TeacherRecord {
  readonly teacher: string;
  readonly teacherWeightsSha256: string;
  readonly autoencoder: string;
  readonly autoencoderWeightsSha256: string;
}

export interface SyntheticSet extends ArraySource {
  readonly settings: SynthSettings;
  /** The teacher folder it came from (absolute path when written). */
  readonly teacher: string;
  /** Absent in sets written before ladder recorded it. */
  readonly madeBy?: TeacherRecord;
}

/**
 * A prompt-conditional teacher's synthetic set: its latents bucket by bucket (one aspect ratio each), with the
 * tokens of the prompts they were made for.
 */
export interface PromptSyntheticSet {
  readonly buckets: readonly PromptBucket[];
  readonly maxTokens: number;
  readonly settings: SynthSettings;
  readonly teacher: string;
  readonly madeBy?: TeacherRecord;
}

/** What `ladder synth` makes: class-labelled latents of one shape, or a prompt-conditional teacher's buckets. */
export type AnySyntheticSet = SyntheticSet | PromptSyntheticSet;

export const isPromptSet = (set: AnySyntheticSet): set is PromptSyntheticSet => 'buckets' in set;

const sha256OfFile = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

/** The record of the teacher in `teacherDir` whose autoencoder is `autoencoderDir` (hashes their weights files). */
export async function teacherRecord(teacherDir: string, autoencoderDir: string): Promise<TeacherRecord> {
  return {
    teacher: resolve(teacherDir),
    teacherWeightsSha256: await sha256OfFile(join(teacherDir, WEIGHTS_FILE)),
    autoencoder: resolve(autoencoderDir),
    autoencoderWeightsSha256: await sha256OfFile(join(autoencoderDir, WEIGHTS_FILE)),
  };
}

/**
 * Records of the teacher in `teacherDir` (config `config`) and of the teachers it was distilled from, following
 * each config's distill.teacher while those folders exist: a student that heads a new ladder (a PADD ablation)
 * trains on its root teacher's set.
 */
export async function teacherLineage(
  teacherDir: string,
  config: Pick<DiffusionModelConfig, 'autoencoder' | 'distill'>,
): Promise<TeacherRecord[]> {
  const records: TeacherRecord[] = [];
  let dir = resolve(teacherDir);
  let cfg = config;
  for (;;) {
    records.push(await teacherRecord(dir, resolve(dir, cfg.autoencoder)));
    if (cfg.distill === undefined) return records;
    const parent = resolve(dir, cfg.distill.teacher);
    const file = join(parent, CONFIG_FILE);
    if (records.some((r) => r.teacher === parent) || !existsSync(file)) return records;
    cfg = parseConfig(diffusionModelSchema, await readJson(file, 'teacher config'), file);
    dir = parent;
  }
}

/**
 * Fails unless `set` was made by a teacher of `lineage` (the teacher being distilled first, see `teacherLineage`):
 * the same teacher and autoencoder weights, wherever their folders are now. A set from an older ladder, which
 * recorded no teacher, is accepted with a warning. `fix` ends the error (default: how distillation gets a set).
 */
export function checkSyntheticTeacher(
  set: AnySyntheticSet,
  lineage: readonly TeacherRecord[],
  file: string,
  fix?: string,
): void {
  const want = lineage[0]!;
  const made = set.madeBy;
  if (made === undefined) {
    process.stderr.write(
      `warning: ${file} does not record which teacher made it (an older ladder wrote it; it names ` +
        `${set.teacher || 'no teacher'}); using it for ${want.teacher}. Regenerate it with \`ladder synth\` to have it checked\n`,
    );
    return;
  }
  const same = (r: TeacherRecord): boolean =>
    r.teacherWeightsSha256 === made.teacherWeightsSha256 &&
    r.autoencoderWeightsSha256 === made.autoencoderWeightsSha256;
  if (lineage.some(same)) return;
  const short = (r: TeacherRecord): string =>
    `${r.teacher} (weights sha256 ${r.teacherWeightsSha256.slice(0, 12)}, autoencoder ${r.autoencoder} ${r.autoencoderWeightsSha256.slice(0, 12)})`;
  const ancestors =
    lineage.length > 1
      ? ` or a teacher it was distilled from (${lineage
          .slice(1)
          .map((r) => r.teacher)
          .join(', ')})`
      : '';
  throw new Error(
    `${file} was made by teacher ${short(made)}, not by ${short(want)}${ancestors}: ` +
      (fix ??
        `make a set for this teacher (\`ladder synth --teacher ${want.teacher} --out <file>\`) or pass another --synthetic file`),
  );
}

/** The teacher's own sampling steps and CFG scale, its default sampler, and 10 000 latents. */
export function defaultSynthSettings(
  teacher: DiffusionModel,
  overrides: Partial<SynthSettings> = {},
): SynthSettings {
  return {
    count: 10_000,
    steps: teacher.config.sampling.steps[0]!,
    cfg: teacher.config.sampling.cfg,
    sampler: defaultSampler(teacher.config),
    seed: 0,
    ...overrides,
  };
}

/** Fails on settings no run should use (a CFG scale that can only overflow, a non-integer count or steps). */
export function checkSynthSettings(settings: SynthSettings): void {
  const { count, steps, cfg, seed } = settings;
  if (!(Number.isInteger(count) && count > 0))
    throw new Error(`synthetic count must be a positive integer, got ${count}`);
  if (!(Number.isInteger(steps) && steps > 0))
    throw new Error(`synthetic steps must be a positive integer, got ${steps}`);
  if (!(Number.isFinite(cfg) && cfg >= 0 && cfg <= MAX_CFG))
    throw new Error(`synthetic CFG scale must be a number from 0 to ${MAX_CFG}, got ${cfg}`);
  if (!Number.isInteger(seed)) throw new Error(`synthetic seed must be an integer, got ${seed}`);
}

/**
 * Generates one batch of latents (`opts` asks for at most its batchSize, so one chunk with one seed) and copies it
 * into `data` at `offset`: the CPU copy is the cache, one read back per batch, checked for NaN on the copy.
 */
function generateInto(
  teacher: DiffusionModel,
  opts: GenerateOptions,
  data: Float32Array,
  offset: number,
): void {
  for (const { tensor } of latentChunks(teacher, opts)) {
    let values: Float32Array;
    try {
      values = tensor.dataSync() as Float32Array;
    } finally {
      tensor.dispose();
    }
    checkFiniteValues(values, 'latents', opts);
    data.set(values, offset);
  }
}

/**
 * Generates `settings.count` latents from the teacher, class-balanced (every class in turn) and in batches of
 * `batchSize`, into one Float32Array; batch i's noise comes from the i-th seed drawn from Rng(settings.seed). With
 * a process group, rank r makes the batches i with i mod W = r and every rank gathers the whole set: the same
 * latents as one process makes.
 */
export function synthesizeLatents(
  teacher: DiffusionModel,
  settings: SynthSettings,
  teacherDir: string,
  batchSize = DEFAULT_BATCH,
  group?: Collectives,
): SyntheticSet {
  checkSynthSettings(settings);
  const { count } = settings;
  const shape = teacher.config.latentShape;
  checkChunkFits(teacher, {
    latentSize: [shape[0], shape[1]],
    batchSize: Math.min(batchSize, count), // no chunk holds more than the set
    cfg: settings.cfg,
    decode: false,
  });
  const numClasses = teacher.config.unet.numClasses;
  const classes = numClasses > 0 ? [...Array(numClasses).keys()] : [0];
  const labels = balancedLabels(classes, count);
  const perSample = shape[0] * shape[1] * shape[2];
  const data = new Float32Array(count * perSample);
  const seeds = new Rng(settings.seed);
  const mine = (batch: number): boolean => group === undefined || batch % group.worldSize === group.rank;
  const progress = group === undefined || group.rank === 0 ? createProgress('synth', count) : silentProgress;
  try {
    for (let start = 0; start < count; start += batchSize) {
      const chunk = labels.subarray(start, Math.min(count, start + batchSize));
      const seed = seeds.nextUint32(); // drawn for every batch, so batch i has its seed in any process
      if (!mine(start / batchSize)) continue;
      const opts: GenerateOptions = {
        labels: chunk,
        steps: settings.steps,
        cfg: settings.cfg,
        sampler: settings.sampler,
        seed,
        batchSize,
        modelName: teacherDir,
      };
      generateInto(teacher, opts, data, start * perSample);
      progress.update(start + chunk.length);
    }
  } finally {
    progress.stop();
  }
  if (group !== undefined) {
    const owner = (sample: number): number => Math.floor(sample / batchSize) % group.worldSize;
    data.set(gatherRows(group, data, perSample, owner));
  }
  return { data, labels, shape: [shape[0], shape[1], shape[2]], settings, teacher: resolve(teacherDir) };
}

/** A caption teacher's training captions of one aspect-ratio bucket, and the bucket's image size when bucketed. */
export interface CaptionBucket {
  readonly texts: readonly string[];
  /** [height, width]; absent for a teacher of one size (the model's own). */
  readonly size?: readonly [number, number];
}

/**
 * The prompts of each bucket of a prompt-conditional teacher's synthetic set, `count` in all: digit strings spread
 * evenly over the string lengths (every digit equally often in a bucket, `balancedDigitStrings`), or a caption
 * teacher's training captions bucket by bucket, in a seeded order and repeated as needed, `count` spread over the
 * buckets in proportion to their captions (at least one each).
 */
export function synthPrompts(
  prompts: PromptsConfig,
  count: number,
  seed: number,
  captions?: readonly CaptionBucket[],
): string[][] {
  if (prompts.source === 'captions') {
    if (captions === undefined || captions.length === 0 || captions.some((b) => b.texts.length === 0))
      throw new Error("a caption-prompted teacher's synthetic set needs its training captions");
    if (count < captions.length) {
      throw new Error(
        `${count} synthetic latents cannot fill ${captions.length} aspect-ratio buckets: make at least ${captions.length}`,
      );
    }
    const total = captions.reduce((a, b) => a + b.texts.length, 0);
    // Largest remainders: the counts sum to `count` exactly.
    const exact = captions.map((b) => 1 + ((count - captions.length) * b.texts.length) / total);
    const counts = exact.map(Math.floor);
    const order = exact
      .map((x, k) => [x - Math.floor(x), k] as const)
      .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const missing = count - counts.reduce((a, n) => a + n, 0);
    for (let i = 0; i < missing; i++) counts[order[i]![1]]!++;
    return captions.map((bucket, k) => {
      const shuffled = new Rng(derivedSeed(seed, k)).permutation(bucket.texts.length);
      return Array.from({ length: counts[k]! }, (_, i) => bucket.texts[shuffled[i % bucket.texts.length]!]!);
    });
  }
  const { lengths } = prompts;
  if (count < lengths.length) {
    throw new Error(
      `${count} synthetic latents cannot fill ${lengths.length} aspect-ratio buckets (string lengths ${lengths.join(', ')}): make at least ${lengths.length}`,
    );
  }
  return lengths.map((length, k) =>
    balancedDigitStrings(
      length,
      Math.floor(count / lengths.length) + (k < count % lengths.length ? 1 : 0),
      seed,
    ),
  );
}

/**
 * A prompt-conditional teacher's latents for the prompts of `synthPrompts`, bucket by bucket, generated in batches
 * like `synthesizeLatents` (batch i's noise from the i-th seed of Rng(settings.seed), counted across buckets).
 * `captions`: a caption-prompted teacher's training captions, per bucket.
 */
export function synthesizePromptLatents(
  teacher: DiffusionModel,
  settings: SynthSettings,
  teacherDir: string,
  batchSize = DEFAULT_BATCH,
  captions?: readonly CaptionBucket[],
): PromptSyntheticSet {
  checkSynthSettings(settings);
  const { prompts, unet, latentShape } = teacher.config;
  if (prompts === undefined || unet.text === undefined)
    throw new Error(`${teacherDir} is not prompt-conditional: make its set with synthesizeLatents`);
  const { maxTokens } = unet.text;
  const promptsByBucket = synthPrompts(prompts, settings.count, settings.seed, captions);
  const factor = downsampling(teacher.autoencoder.config.autoencoder);
  // A bucketed caption teacher's latents take their bucket's size; otherwise the prompt's.
  const latentSizeOf = (k: number, prompt: string): [number, number] => {
    const size = captions?.[k]?.size;
    return size === undefined ? promptLatentSize(teacher, prompt) : [size[0] / factor, size[1] / factor];
  };
  const progress = createProgress('synth', settings.count);
  const seeds = new Rng(settings.seed);
  const buckets: PromptBucket[] = [];
  let done = 0;
  try {
    for (const [k, bucketPrompts] of promptsByBucket.entries()) {
      const count = bucketPrompts.length;
      const [h, w] = latentSizeOf(k, bucketPrompts[0]!);
      const shape = [h, w, latentShape[2]] as const;
      checkChunkFits(teacher, {
        latentSize: [h, w],
        batchSize: Math.min(batchSize, count),
        cfg: settings.cfg,
        decode: false,
      });
      const perSample = h * w * latentShape[2];
      const data = new Float32Array(count * perSample);
      for (let start = 0; start < count; start += batchSize) {
        const chunk = bucketPrompts.slice(start, Math.min(count, start + batchSize));
        const opts: GenerateOptions = {
          prompts: chunk,
          steps: settings.steps,
          cfg: settings.cfg,
          sampler: settings.sampler,
          seed: seeds.nextUint32(),
          batchSize,
          latentSize: [h, w],
          modelName: teacherDir,
        };
        generateInto(teacher, opts, data, start * perSample);
        done += chunk.length;
        progress.update(done);
      }
      buckets.push({ shape, data, tokens: tokenizeAll(bucketPrompts, maxTokens) });
    }
  } finally {
    progress.stop();
  }
  return { buckets, maxTokens, settings, teacher: resolve(teacherDir) };
}

const FORMAT = 'ladder-synthetic';

/**
 * Writes `set` atomically: `latents` [N, H, W, C] and `labels` [N], or a prompt set's `latents.<k>` and
 * `tokens.<k>` per bucket; settings and teacher in the metadata.
 */
export async function saveSynthetic(file: string, set: AnySyntheticSet): Promise<void> {
  // Encoded straight from the arrays: no tensor copies of a set that may be large.
  const tensors: Parameters<typeof encodeSafetensors>[0] = {};
  if (isPromptSet(set)) {
    set.buckets.forEach((bucket, k) => {
      const n = bucket.tokens.length / set.maxTokens;
      tensors[`latents.${k}`] = { dtype: 'F32', shape: [n, ...bucket.shape], data: bucket.data };
      tensors[`tokens.${k}`] = { dtype: 'I32', shape: [n, set.maxTokens], data: bucket.tokens };
    });
  } else {
    const n = set.labels.length;
    tensors.latents = { dtype: 'F32', shape: [n, ...set.shape], data: set.data };
    tensors.labels = { dtype: 'I32', shape: [n], data: set.labels };
  }
  const bytes = encodeSafetensors(tensors, {
    format: FORMAT,
    teacher: set.teacher,
    settings: JSON.stringify(set.settings),
    ...(isPromptSet(set) ? { buckets: String(set.buckets.length) } : {}),
    ...(set.madeBy === undefined ? {} : { madeBy: JSON.stringify(set.madeBy) }),
  });
  await writeFileAtomic(file, bytes);
}

export async function loadSynthetic(file: string): Promise<AnySyntheticSet> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new Error(`cannot read synthetic latents ${file} (${(err as NodeJS.ErrnoException).code ?? err})`);
  }
  let decoded: ReturnType<typeof decodeSafetensors>;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  const { tensors, metadata } = decoded;
  const notASet = new Error(`${file} is not a synthetic latent set: make one with \`ladder synth\``);
  if (metadata.format !== FORMAT) throw notASet;
  const record = {
    settings: JSON.parse(metadata.settings ?? '{}') as SynthSettings,
    teacher: metadata.teacher ?? '',
    ...(metadata.madeBy === undefined ? {} : { madeBy: JSON.parse(metadata.madeBy) as TeacherRecord }),
  };
  if (metadata.buckets !== undefined) {
    const buckets: PromptBucket[] = [];
    let maxTokens = 0;
    for (let k = 0; k < Number(metadata.buckets); k++) {
      const latents = tensors[`latents.${k}`];
      const tokens = tensors[`tokens.${k}`];
      if (
        !(latents?.data instanceof Float32Array) ||
        latents.shape.length !== 4 ||
        tokens?.shape.length !== 2
      )
        throw notASet;
      const [n, h, w, c] = latents.shape as [number, number, number, number];
      if (tokens.shape[0] !== n)
        throw new Error(`${file} bucket ${k} holds ${n} latents but ${tokens.shape[0]} prompts`);
      if (k > 0 && tokens.shape[1] !== maxTokens)
        throw new Error(`${file}: its buckets hold prompts of different lengths`);
      if (!(tokens.data instanceof Int32Array)) throw notASet;
      maxTokens = tokens.shape[1]!;
      buckets.push({ shape: [h, w, c], data: latents.data, tokens: Int32Array.from(tokens.data) });
    }
    if (buckets.length === 0) throw notASet;
    return { buckets, maxTokens, ...record };
  }
  const { latents, labels } = tensors;
  if (
    !(latents?.data instanceof Float32Array) ||
    labels === undefined ||
    latents.shape.length !== 4 ||
    labels.shape.length !== 1
  ) {
    throw notASet;
  }
  const [n, h, w, c] = latents.shape as [number, number, number, number];
  if (labels.shape[0] !== n) throw new Error(`${file} holds ${n} latents but ${labels.shape[0]} labels`);
  return {
    data: latents.data as Float32Array,
    labels: Int32Array.from(labels.data),
    shape: [h, w, c],
    ...record,
  };
}

/**
 * Fails unless `set` fits `teacher`: a class set of the teacher's latent shape and labels within its classes, or a
 * prompt set (for a prompt-conditional teacher) of its channels and prompt length.
 */
export function checkSyntheticFits(set: AnySyntheticSet, teacher: DiffusionModel, file: string): void {
  const want = teacher.config.latentShape;
  const text = teacher.config.unet.text;
  const regenerate = 'regenerate it with `ladder synth`';
  if (isPromptSet(set) !== (text !== undefined)) {
    throw new Error(
      `${file} holds ${isPromptSet(set) ? 'prompted' : 'class-labelled'} latents but the teacher is ` +
        `${text ? 'prompt' : 'class'}-conditional: ${regenerate}`,
    );
  }
  if (isPromptSet(set)) {
    const { prompts } = teacher.config;
    const sizes = prompts?.source === 'captions' ? prompts.sizes : undefined;
    if (sizes !== undefined) {
      // A bucketed caption teacher: every latent at one of its buckets' sizes.
      const factor = downsampling(teacher.autoencoder.config.autoencoder);
      const allowed = sizes.map(([h, w]) => `${h / factor}x${w / factor}x${want[2]}`);
      const wrong = set.buckets.find((b) => !allowed.includes(b.shape.join('x')));
      if (wrong !== undefined)
        throw new Error(
          `${file} holds ${wrong.shape.join('x')} latents but the teacher's buckets are ${allowed.join(', ')}: ${regenerate}`,
        );
    } else {
      const wrong = set.buckets.find((b) => b.shape[0] !== want[0] || b.shape[2] !== want[2]);
      if (wrong !== undefined)
        throw new Error(
          `${file} holds ${wrong.shape.join('x')} latents but the teacher's are ${want[0]} high with ${want[2]} channels: ${regenerate}`,
        );
    }
    if (set.maxTokens !== text!.maxTokens)
      throw new Error(
        `${file} holds prompts of ${set.maxTokens} tokens, the teacher reads ${text!.maxTokens}: ${regenerate}`,
      );
    return;
  }
  if (set.shape.join() !== want.join()) {
    throw new Error(
      `${file} holds ${set.shape.join('x')} latents but the teacher makes ${want.join('x')}: ${regenerate}`,
    );
  }
  const numClasses = Math.max(1, teacher.config.unet.numClasses);
  const bad = set.labels.find((l) => l < 0 || l >= numClasses);
  if (bad !== undefined)
    throw new Error(`${file} has label ${bad}, but the teacher has ${numClasses} classes`);
}

const sameSettings = (a: SynthSettings, b: SynthSettings): boolean =>
  (['count', 'steps', 'cfg', 'sampler', 'seed'] as const).every((k) => a[k] === b[k]);

export interface SynthOptions {
  readonly teacher: DiffusionModel;
  readonly teacherDir: string;
  readonly outFile: string;
  readonly settings: SynthSettings;
  readonly batchSize?: number;
  /** Replace an existing `outFile` made with other settings or by another teacher (`ladder synth --force`). */
  readonly force?: boolean;
  /**
   * Also reuse a set made by a teacher this one was distilled from (see `teacherLineage`): distillation wants it,
   * `ladder synth` does not, since it would hand out the root teacher's set as this one's.
   */
  readonly acceptAncestors?: boolean;
}

/**
 * The cached set in `outFile` when it exists and was made by this teacher (or, with `acceptAncestors`, one it was
 * distilled from) with the same settings; otherwise it is generated and written. A file made otherwise is an
 * error unless `force`, not silently overwritten or reused.
 */
export async function synthesize(opts: SynthOptions): Promise<AnySyntheticSet> {
  const { teacher, teacherDir, outFile, settings } = opts;
  checkSynthSettings(settings);
  // Ancestors' weights are hashed only when they may be used.
  const lineage = opts.acceptAncestors
    ? await teacherLineage(teacherDir, teacher.config)
    : [await teacherRecord(teacherDir, resolve(teacherDir, teacher.config.autoencoder))];
  // Data-parallel (a distillation under `ladder launch`, or `ladder synth` itself): rank 0 alone reads and writes
  // the file; the ranks split the generating and all return the whole set.
  const group = processGroupFromEnv();
  const lead = group === undefined || group.rank === 0;
  const reuse = lead && existsSync(outFile) && !opts.force;
  if (group !== undefined && teacher.config.prompts) {
    throw new Error(
      "a prompt-conditional teacher's synthetic set is made in one process: run `ladder synth` first",
    );
  }
  if (group !== undefined && anyRank(group, reuse)) {
    const cached = reuse ? await cachedSet(opts, lineage) : undefined;
    return syntheticSetFromRankZero(group, cached);
  }
  if (reuse) return cachedSet(opts, lineage);
  await ensureWritableDir(dirname(outFile)); // before the slow part: an unwritable --out fails now
  const made = teacher.config.prompts
    ? synthesizePromptLatents(teacher, settings, teacherDir, opts.batchSize, await trainingCaptions(teacher))
    : synthesizeLatents(teacher, settings, teacherDir, opts.batchSize, group);
  const set = { ...made, madeBy: lineage[0]! };
  if (!lead) return set;
  await saveSynthetic(outFile, set);
  process.stderr.write(`${settings.count} synthetic latents -> ${outFile}\n`);
  return set;
}

// A caption-prompted teacher's training captions (its folder dataset), bucket by bucket when it trained in buckets;
// undefined for other teachers.
async function trainingCaptions(teacher: DiffusionModel): Promise<CaptionBucket[] | undefined> {
  const { prompts, dataset } = teacher.config;
  if (prompts?.source !== 'captions') return undefined;
  const sets = await loadDatasetBuckets(dataset, prompts.sizes, 'train');
  return sets.map((set) => ({
    texts: set.texts ?? [],
    ...(prompts.sizes === undefined ? {} : { size: [set.height, set.width] as const }),
  }));
}

/** The set in `opts.outFile`, checked against the teacher, its lineage and the settings. */
async function cachedSet(opts: SynthOptions, lineage: readonly TeacherRecord[]): Promise<AnySyntheticSet> {
  const { teacher, outFile, settings } = opts;
  const cached = await loadSynthetic(outFile);
  const replace = 'choose another file, or replace it with `ladder synth --force`';
  checkSyntheticFits(cached, teacher, outFile);
  if (!sameSettings(cached.settings, settings)) {
    throw new Error(
      `${outFile} was made with ${JSON.stringify(cached.settings)}, not ${JSON.stringify(settings)}: ${replace}`,
    );
  }
  checkSyntheticTeacher(cached, lineage, outFile, replace);
  return cached;
}

/** Rank 0's set on every rank (the others pass undefined): its record as JSON, its latents and labels. */
export function syntheticSetFromRankZero(group: Collectives, set: AnySyntheticSet | undefined): SyntheticSet {
  if (set !== undefined && isPromptSet(set))
    throw new Error('prompted synthetic sets are not shared across processes');
  const lead = group.rank === 0;
  const info = valueFromRankZero(
    group,
    set && {
      shape: set.shape,
      settings: set.settings,
      teacher: set.teacher,
      ...(set.madeBy === undefined ? {} : { madeBy: set.madeBy }),
    },
  );
  // Labels travel as floats (class indices are exact in float32).
  const tensors = tensorsFromRankZero(
    group,
    set && { data: tf.tensor1d(set.data), labels: tf.tensor1d(Float32Array.from(set.labels)) },
  );
  const received = lead
    ? set!
    : {
        ...info,
        data: tensors.data!.dataSync() as Float32Array,
        labels: Int32Array.from(tensors.labels!.dataSync()),
      };
  tf.dispose(Object.values(tensors));
  return received;
}
