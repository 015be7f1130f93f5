// What the server, the page and its generation workers say to each other (types only, browser-safe).
import type { DistillMethod, PromptsConfig } from '../models/schema.js';

/** A usable teacher or student in GET /api/models. */
export interface ModelInfo {
  /** Folder relative to the served models folder, e.g. "mnist/teacher". */
  readonly path: string;
  readonly name: string;
  readonly dataset: string;
  readonly kind: 'teacher' | 'student';
  /** The distillation method of a student. */
  readonly method?: DistillMethod;
  /** Folder path of the teacher a student was distilled from, when it is served too. */
  readonly teacher?: string;
  /** Where the page fetches the folder's files, e.g. "/models/mnist/teacher/". */
  readonly url: string;
  /** Step counts the model is meant to be sampled with, and its default guidance scale. */
  readonly steps: readonly number[];
  readonly cfg: number;
  readonly classNames: readonly string[];
  /** A prompt-conditional model's prompts (digit strings of the trained lengths, or captions); it has no classes. */
  readonly prompts?: PromptsConfig;
  /** FIDs and class accuracies from the model's card (the report net's when it has them). */
  readonly quality?: ModelQuality;
}

/** What a model card says of a model's quality, by sampling step count. */
export interface ModelQuality {
  /** The feature net's role: "report" or "selection". */
  readonly role: string;
  readonly samples: number;
  readonly results: readonly {
    readonly steps: number;
    readonly cfg: number;
    readonly fid: number;
    readonly classAccuracy: number;
  }[];
}

/** A folder that holds a model config but cannot be used; `error` says why and what to do. */
export interface BrokenModel {
  readonly path: string;
  readonly name: string;
  readonly error: string;
}

export type ModelEntry = ModelInfo | BrokenModel;

export interface ModelIndex {
  readonly models: readonly ModelEntry[];
}

export const isBroken = (entry: ModelEntry): entry is BrokenModel => 'error' in entry;

/** Backends the page can run on, in order of preference. */
export type WebBackend = 'webgpu' | 'webgl' | 'wasm';
export const WEB_BACKENDS: readonly WebBackend[] = ['webgpu', 'webgl', 'wasm'];

// ---
// Page <-> worker messages. Each request carries an id that its reply repeats.

/** Whom a grid's images are for: a class per image, or `count` images of one prompt (at the prompt's size). */
export type GridCondition =
  | { readonly labels: Int32Array }
  | { readonly prompt: string; readonly count: number };

/** Images a grid condition asks for. */
export const gridImages = (condition: GridCondition): number =>
  'labels' in condition ? condition.labels.length : condition.count;

export type WorkerRequest =
  | { readonly type: 'init'; readonly id: number; readonly backend?: WebBackend }
  | {
      readonly type: 'generate';
      readonly id: number;
      /** Absolute model folder URL. */
      readonly url: string;
      readonly condition: GridCondition;
      readonly steps: number;
      readonly seed: number;
      /** Guidance scale (default: the model's own). */
      readonly cfg?: number;
      /** Grid columns of the returned picture. */
      readonly columns: number;
    };

export interface BackendReport {
  readonly backend: WebBackend;
  /** Human-readable details, e.g. "wasm (SIMD, 4 threads)". */
  readonly detail: string;
  /** Why each preferred backend was not used. */
  readonly skipped: readonly string[];
}

/** A generated grid: RGBA pixels (width x height) and the time spent generating and reading them back. */
export interface GeneratedGrid {
  readonly rgba: Uint8ClampedArray;
  readonly width: number;
  readonly height: number;
  readonly images: number;
  readonly ms: number;
  /** Tensors alive in the worker after the frame (steady when nothing leaks). */
  readonly tensors: number;
}

export type WorkerReply =
  | ({ readonly type: 'ready'; readonly id: number } & BackendReport)
  | ({ readonly type: 'grid'; readonly id: number } & GeneratedGrid)
  | { readonly type: 'error'; readonly id: number; readonly message: string };
