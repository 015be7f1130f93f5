// Model folder configs (config.json): typed plain data, validated with zod at every IO boundary.
import { z } from 'zod';
import { DATASET_NAMES, type DatasetName, FIT_MODES } from '../data/image-dataset.js';
import type { FormulationConfig } from '../diffusion/formulation.js';
import type { AutoencoderConfig } from '../nn/autoencoder.js';
import type { FeatureNetConfig } from '../nn/feature-net.js';
import type { UNetConfig } from '../nn/unet.js';

const positiveInt = z.number().int().positive();
const shape3 = z.tuple([positiveInt, positiveInt, positiveInt]);
const byte = z.number().int().min(0).max(255);
/** A built-in dataset's name, or a folder of images with the options it was decoded with. */
const datasetSpec = z.union([
  z.enum(DATASET_NAMES as [DatasetName, ...DatasetName[]]),
  z
    .object({
      folder: z.string().min(1),
      size: z.tuple([positiveInt, positiveInt]).readonly(),
      fit: z.enum(FIT_MODES as ['cover', 'contain']),
      background: z.tuple([byte, byte, byte]).readonly(),
      channels: z.union([z.literal(1), z.literal(3)]),
    })
    .strict(),
]);

/** The distillation methods a student folder can name (`distill.method`). */
export const DISTILL_METHODS = ['ladd', 'padd', 'add', 'ladd-dmd'] as const;
export type DistillMethod = (typeof DISTILL_METHODS)[number];

export const unetConfigSchema = z
  .object({
    inChannels: positiveInt,
    outChannels: positiveInt,
    channels: z.array(positiveInt).min(1),
    blocksPerLevel: positiveInt,
    attentionLevels: z.array(z.number().int().nonnegative()),
    midAttention: z.boolean(),
    numClasses: z.number().int().nonnegative(),
    embedDim: positiveInt,
    groups: positiveInt,
    heads: positiveInt,
    text: z
      .object({ maxTokens: positiveInt, width: positiveInt, layers: positiveInt, heads: positiveInt })
      .strict()
      .optional(),
  })
  .strict() satisfies z.ZodType<UNetConfig>;

export const formulationConfigSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('flow'), logitMean: z.number(), logitStd: z.number().positive() }).strict(),
  z
    .object({
      kind: z.literal('vp'),
      prediction: z.enum(['eps', 'v']),
      zeroTerminalSnr: z.boolean(),
      betaStart: z.number().positive(),
      betaEnd: z.number().positive(),
    })
    .strict(),
]) satisfies z.ZodType<FormulationConfig>;

export const autoencoderConfigSchema = z
  .object({
    imageShape: shape3,
    latentChannels: positiveInt,
    channels: z.array(positiveInt).min(1),
    groups: positiveInt,
    klWeight: z.number().nonnegative(),
    latentScale: z.number().positive(),
    latentShift: z.number(),
  })
  .strict() satisfies z.ZodType<AutoencoderConfig>;

const header = { format: z.literal('ladder-model'), version: z.literal(1), dataset: datasetSpec };

export const autoencoderModelSchema = z
  .object({
    ...header,
    kind: z.literal('autoencoder'),
    autoencoder: autoencoderConfigSchema,
    /**
     * A folder autoencoder trained in aspect-ratio buckets: the image sizes [height, width], the first being
     * `autoencoder.imageShape` and the dataset's size; a caption teacher on it trains on the same buckets.
     */
    buckets: z
      .array(z.tuple([positiveInt, positiveInt]))
      .min(1)
      .optional(),
  })
  .strict();

/** A latent diffusion model: a teacher, or a student distilled from one (`distill` says how). */
export const diffusionModelSchema = z
  .object({
    ...header,
    kind: z.enum(['teacher', 'student']),
    /** Path of the autoencoder folder, relative to this model's folder. */
    autoencoder: z.string().min(1),
    latentShape: shape3,
    classNames: z.array(z.string()),
    /**
     * A prompt-conditional model's prompts: digit strings of these lengths, one aspect-ratio bucket each (the
     * image size follows from the prompt; `dataset` is where the digits come from). latentShape is one digit's.
     */
    prompts: z
      .union([
        z.object({ source: z.literal('digit-strings'), lengths: z.array(positiveInt).min(1) }).strict(),
        // Captions of a folder dataset (metadata.jsonl): one bucket, the folder's image size, or the image sizes
        // [height, width] of the autoencoder's aspect-ratio buckets (the first is latentShape's).
        z
          .object({
            source: z.literal('captions'),
            sizes: z
              .array(z.tuple([positiveInt, positiveInt]))
              .min(1)
              .optional(),
          })
          .strict(),
      ])
      .optional(),
    formulation: formulationConfigSchema,
    unet: unetConfigSchema,
    /** What the net predicts when it differs from the formulation's default (PADD's 1-step student: x0). */
    prediction: z.enum(['formulation', 'x0']).default('formulation'),
    /** Step counts this model is meant to be sampled with (students), and its default CFG (teachers). */
    sampling: z
      .object({
        steps: z.array(positiveInt).min(1),
        cfg: z.number().nonnegative(),
        /** The sampler the model was trained for (PADD students follow the ODE: euler); default by kind. */
        sampler: z.enum(['euler', 'heun', 'dpmpp-2m', 'few-step']).optional(),
      })
      .strict(),
    distill: z
      .object({ method: z.enum(DISTILL_METHODS), teacher: z.string().min(1) })
      .passthrough()
      .optional(),
  })
  .strict()
  .refine((c) => (c.prompts === undefined) === (c.unet.text === undefined), {
    message: 'a prompt-conditional model has both `prompts` and `unet.text`; a class model has neither',
  });

export const featureNetConfigSchema = z
  .object({
    imageShape: shape3,
    numClasses: positiveInt,
    channels: z.array(positiveInt).min(1),
    kernel: positiveInt,
    featureDim: positiveInt,
  })
  .strict() satisfies z.ZodType<FeatureNetConfig>;

/** The classifier whose penultimate layer gives the FID/KID features and whose softmax gives class accuracy. */
export const featuresModelSchema = z
  .object({
    ...header,
    kind: z.literal('features'),
    classNames: z.array(z.string()),
    featureNet: featureNetConfigSchema,
  })
  .strict();

// The component configs keep their own (readonly) interfaces; zod checks that the schemas produce them.
export type AutoencoderModelConfig = Omit<z.infer<typeof autoencoderModelSchema>, 'autoencoder'> & {
  readonly autoencoder: AutoencoderConfig;
};
export type DiffusionModelConfig = Omit<
  z.infer<typeof diffusionModelSchema>,
  'unet' | 'formulation' | 'latentShape'
> & {
  readonly unet: UNetConfig;
  readonly formulation: FormulationConfig;
  readonly latentShape: readonly [number, number, number];
};
/** What a prompt-conditional model's prompts are: digit strings of some lengths, or a folder's captions. */
export type PromptsConfig = NonNullable<DiffusionModelConfig['prompts']>;

export type FeaturesModelConfig = Omit<z.infer<typeof featuresModelSchema>, 'featureNet'> & {
  readonly featureNet: FeatureNetConfig;
};

/** Validates `raw` with `schema`, failing with every bad key path and value listed. */
export function parseConfig<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, raw: unknown, source: string): T {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  throw new Error(`${source} is not a valid config: ${problems}`);
}
