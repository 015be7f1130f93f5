// The library's front door: a loaded teacher or student as a pipeline that turns a request ("eight 7s") into
// pixel arrays, with the model's own steps, guidance and sampler unless asked otherwise. Browser-safe: the Node
// entry (index.ts) and the web entry (web.ts) add loading, backends and PNG encoding around it.

import { datasetId } from '../data/image-dataset.js';
import { signedToByte } from '../image/bytes.js';
import {
  checkChunkFits,
  DEFAULT_BATCH,
  type DiffusionModel,
  defaultSampler,
  type GenerateOptions,
  imageChunks,
  MAX_CFG,
  nfe,
  promptLatentSize,
} from '../models/pipeline.js';
import type { DistillMethod, PromptsConfig } from '../models/schema.js';
import { disposeParams } from '../nn/params.js';
import { SAMPLER_KINDS, type SamplerKind } from '../samplers/sample.js';

/** What a pipeline's model is and how it samples by default (from its config and card). */
export interface PipelineInfo {
  /** Folder path or URL it was loaded from. */
  readonly source: string;
  readonly kind: 'teacher' | 'student';
  /** How a student was distilled. */
  readonly method?: DistillMethod;
  readonly dataset: string;
  /** Class names by index (empty for an unconditional or a prompt-conditional model). */
  readonly classNames: readonly string[];
  /**
   * A prompt-conditional model's prompts: digit strings of the trained lengths (its images are `height` high and
   * `width` wide per digit), or captions (images of `width` x `height`).
   */
  readonly prompts?: PromptsConfig;
  /** Default sampling steps, then the other step counts a student was trained for. */
  readonly steps: readonly number[];
  readonly guidance: number;
  readonly sampler: SamplerKind;
  readonly width: number;
  readonly height: number;
  /** 1 (grey), 3 (RGB) or 4 (RGBA). */
  readonly channels: number;
  /** The model card (command, data, metrics), when the folder has one. */
  readonly card?: Readonly<Record<string, unknown>>;
}

/** One `generate` call; every field is optional. */
export interface GenerateRequest {
  /** Classes by index or by name (default: every class of the model; an unconditional model has one, 0). */
  readonly classes?: readonly (number | string)[];
  /**
   * A prompt-conditional model's prompt (required for one, refused otherwise), e.g. "407" for a digit-strings
   * model: the image takes the prompt's size (28 x 84 px for "407").
   */
  readonly prompt?: string;
  /** Images per class, or of the prompt (default 1). */
  readonly n?: number;
  /** Sampling steps (default: the model's first, see PipelineInfo.steps). */
  readonly steps?: number;
  /** Classifier-free guidance scale, 0 to MAX_CFG (default: the model's; 1 = off). */
  readonly guidance?: number;
  readonly sampler?: SamplerKind;
  /** Random seed (default 0): the same request and seed give the same images. */
  readonly seed?: number;
  /** Images generated at a time (default DEFAULT_BATCH): bounds memory; the few-step sampler's noise depends on it. */
  readonly batchSize?: number;
}

/** Encodes 8-bit pixels (h x w x c, c = 1, 3 or 4) as a PNG file's bytes. */
export type PngEncoder = (pixels: Uint8Array, width: number, height: number, channels: number) => Uint8Array;

/** A generated image: 8-bit pixels, row-major, `channels` values per pixel. */
export class GeneratedImage {
  constructor(
    readonly pixels: Uint8Array,
    readonly width: number,
    readonly height: number,
    readonly channels: number,
    /**
     * The class index it was generated for, and its name (the index as text when the model has no names); for a
     * prompted image -1 and the prompt.
     */
    readonly label: number,
    readonly className: string,
    private readonly encodePng?: PngEncoder,
    /** The prompt it was generated for (prompt-conditional models). */
    readonly prompt?: string,
  ) {}

  /** The pixels as opaque RGBA (grey repeated into R, G and B). */
  toRGBA(): Uint8ClampedArray<ArrayBuffer> {
    const { pixels, channels: c } = this;
    const rgba = new Uint8ClampedArray(this.width * this.height * 4);
    for (let p = 0, q = 0; q < rgba.length; p += c, q += 4) {
      rgba[q] = pixels[p]!;
      rgba[q + 1] = c === 1 ? pixels[p]! : pixels[p + 1]!;
      rgba[q + 2] = c === 1 ? pixels[p]! : pixels[p + 2]!;
      rgba[q + 3] = c === 4 ? pixels[p + 3]! : 255;
    }
    return rgba;
  }

  /** The image for a canvas (`ctx.putImageData`); needs a browser or another global ImageData. */
  toImageData(): ImageData {
    if (typeof ImageData === 'undefined') {
      throw new Error('toImageData() needs a browser (no ImageData here): in Node use toPNG() or pixels');
    }
    return new ImageData(this.toRGBA(), this.width, this.height);
  }

  /** The image as PNG file bytes (Node entry only). */
  toPNG(): Uint8Array {
    if (this.encodePng === undefined) {
      throw new Error('toPNG() is part of the Node entry: in the browser use toImageData() on a canvas');
    }
    return this.encodePng(this.pixels, this.width, this.height, this.channels);
  }
}

/** The defaults a model's config and card give; `source` names it in errors. */
export function pipelineInfo(
  model: DiffusionModel,
  source: string,
  card?: Readonly<Record<string, unknown>>,
): PipelineInfo {
  const { config } = model;
  const [height, width, channels] = model.autoencoder.config.autoencoder.imageShape;
  return {
    source,
    kind: config.kind,
    ...(config.distill === undefined ? {} : { method: config.distill.method }),
    dataset: datasetId(config.dataset),
    classNames: config.classNames,
    ...(config.prompts === undefined ? {} : { prompts: config.prompts }),
    steps: config.sampling.steps,
    guidance: config.sampling.cfg,
    sampler: defaultSampler(config),
    width,
    height,
    channels,
    ...(card === undefined ? {} : { card }),
  };
}

function checkInteger(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min)
    throw new Error(`${name} must be an integer >= ${min}, got ${value}`);
  return value;
}

/** The class indices a request names, checked against the model's classes. */
export function resolveRequestClasses(
  classes: GenerateRequest['classes'],
  classNames: readonly string[],
  numClasses: number,
): number[] {
  // An unconditional model samples with label 0, as its training did.
  if (classes === undefined) return numClasses > 0 ? [...Array(numClasses).keys()] : [0];
  if (classes.length === 0)
    throw new Error('classes is empty: name at least one class, or leave it out for all');
  return classes.map((cls) => {
    if (typeof cls === 'string') {
      const index = classNames.indexOf(cls);
      if (index < 0) {
        throw new Error(
          `no class named "${cls}": the model's classes are ${classNames.join(', ') || 'unnamed'}`,
        );
      }
      return index;
    }
    if (!Number.isInteger(cls) || cls < 0 || cls >= Math.max(1, numClasses)) {
      throw new Error(
        `class ${cls} does not exist: the model has ${numClasses === 0 ? 'no classes (use 0)' : `classes 0 to ${numClasses - 1}`}`,
      );
    }
    return cls;
  });
}

/** A loaded model that generates images; call `dispose()` to free its weights. */
export class Pipeline {
  private disposed = false;

  constructor(
    private readonly model: DiffusionModel,
    readonly info: PipelineInfo,
    private readonly encodePng?: PngEncoder,
  ) {}

  /** The options `generate` passes to the sampler for `request` (defaults filled in, everything checked). */
  resolve(request: GenerateRequest = {}): GenerateOptions & {
    classes: number[];
    batchSize: number;
    latentSize: readonly [number, number];
  } {
    const { config } = this.model;
    const n = checkInteger('n', request.n ?? 1, 1);
    const conditions = this.conditions(request, n);
    const steps = checkInteger('steps', request.steps ?? this.info.steps[0]!, 1);
    const cfg = request.guidance ?? this.info.guidance;
    if (!(cfg >= 0 && cfg <= MAX_CFG))
      throw new Error(`guidance must be between 0 and ${MAX_CFG}, got ${cfg}`);
    const sampler = request.sampler ?? this.info.sampler;
    if (!SAMPLER_KINDS.includes(sampler)) {
      throw new Error(`unknown sampler "${sampler}": use one of ${SAMPLER_KINDS.join(', ')}`);
    }
    const seed = checkInteger('seed', request.seed ?? 0, 0);
    const batchSize = checkInteger('batchSize', request.batchSize ?? DEFAULT_BATCH, 1);
    return {
      ...conditions,
      latentSize: conditions.prompts
        ? promptLatentSize(this.model, conditions.prompts[0]!)
        : [config.latentShape[0], config.latentShape[1]],
      steps,
      cfg,
      sampler,
      seed,
      batchSize,
      modelName: this.info.source,
      checkFinite: true,
    };
  }

  // Whom the images are for: n of each class, or n of the prompt.
  private conditions(
    request: GenerateRequest,
    n: number,
  ):
    | { classes: number[]; labels: Int32Array; prompts?: undefined }
    | { classes: number[]; prompts: string[]; labels?: undefined } {
    const { config } = this.model;
    if (config.unet.text) {
      if (request.classes !== undefined)
        throw new Error(`${this.info.source} is prompt-conditional: give a prompt, not classes`);
      if (typeof request.prompt !== 'string')
        throw new Error(`${this.info.source} is prompt-conditional: give a prompt, e.g. { prompt: "407" }`);
      promptLatentSize(this.model, request.prompt); // checks it is a prompt this model can draw
      return { classes: [], prompts: Array<string>(n).fill(request.prompt) };
    }
    if (request.prompt !== undefined)
      throw new Error(`${this.info.source} is not prompt-conditional: choose classes, not a prompt`);
    const classes = resolveRequestClasses(request.classes, config.classNames, config.unet.numClasses);
    return { classes, labels: Int32Array.from(classes.flatMap((k) => Array<number>(n).fill(k))) };
  }

  /** Network evaluations per image for `request` (steps, doubled by guidance). */
  nfe(request: Pick<GenerateRequest, 'steps' | 'guidance'> = {}): number {
    return nfe(request.steps ?? this.info.steps[0]!, request.guidance ?? this.info.guidance);
  }

  /**
   * `n` images of each requested class, in class order (or `n` of the prompt). Backend memory is freed before it returns; NaN or
   * infinite latents or images are an error, not an image (one small read back per chunk checks them).
   */
  async generate(request: GenerateRequest = {}): Promise<GeneratedImage[]> {
    this.checkNotDisposed();
    const opts = this.resolve(request);
    const { channels, classNames } = this.info;
    const count = opts.prompts ? opts.prompts.length : opts.labels.length;
    checkChunkFits(
      this.model,
      {
        latentSize: opts.latentSize,
        batchSize: Math.min(opts.batchSize, count),
        cfg: opts.cfg,
        decode: true,
      },
      { batch: 'batchSize', latentSize: 'the latent size' },
    );
    const images: GeneratedImage[] = [];
    for (const { start, tensor } of imageChunks(this.model, opts)) {
      const [, height, width] = tensor.shape; // a prompt's images take its size
      let values: ArrayLike<number>;
      try {
        values = await tensor.data();
      } finally {
        tensor.dispose();
      }
      this.checkNotDisposed(); // dispose() may have run while the chunk was read back
      const size = width * height * channels;
      for (let i = 0; i * size < values.length; i++) {
        const pixels = new Uint8Array(size);
        for (let j = 0; j < size; j++) pixels[j] = signedToByte(values[i * size + j]!);
        const prompt = opts.prompts?.[start + i];
        const label = opts.labels?.[start + i] ?? -1;
        images.push(
          prompt === undefined
            ? new GeneratedImage(
                pixels,
                width,
                height,
                channels,
                label,
                classNames[label] ?? String(label),
                this.encodePng,
              )
            : new GeneratedImage(pixels, width, height, channels, -1, prompt, this.encodePng, prompt),
        );
      }
    }
    return images;
  }

  private checkNotDisposed(): void {
    if (this.disposed) throw new Error(`the pipeline of ${this.info.source} was disposed: load it again`);
  }

  /** Frees the model's weights; the pipeline cannot generate afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeParams(this.model.params);
    disposeParams(this.model.autoencoder.params);
  }
}
