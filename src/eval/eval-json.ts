// The eval JSON file written by `ladder eval` and read by the report and later checks: schema, type, parser.
import { z } from 'zod';

const finite = z.number().finite();
const share = finite.min(0).max(1);

/**
 * What a feature net is used for. The selection net scores every measurement along the way (sweeps, checkpoint
 * choice); the report net, another architecture and seed, scores the shipped numbers, so that what was tuned on one
 * net is reported on another.
 */
export const FEATURE_NET_ROLES = ['selection', 'report'] as const;
export type FeatureNetRole = (typeof FEATURE_NET_ROLES)[number];

/** One (steps, cfg) setting of one model. Unknown extra keys are kept. */
export const evalResultSchema = z
  .object({
    /** Sampling steps. */
    steps: z.number().int().min(1),
    /** Classifier-free guidance scale (1 or 0 when unguided, depending on the sampler's convention). */
    cfg: finite,
    /** Network evaluations per image (2 per guided step when cond and uncond run separately). */
    nfe: z.number().int().min(1),
    /** Frechet distance on the feature net's features (FID-like). */
    fid: finite,
    /** Bootstrap percentile interval of `fid` over the generated samples (absent: bootstrap off, or older file). */
    fidInterval: z.tuple([finite, finite]).optional(),
    /**
     * FID of every bootstrap replicate in draw order (ratio intervals pair them across evals), shifted by the
     * bootstrap's estimate of FID's small-sample bias so that they centre on `fid`.
     */
    fidReplicates: z.array(finite).optional(),
    /** Kernel distance (unbiased MMD^2, may be slightly negative) and its std over subsets. */
    kid: finite,
    kidStd: finite.min(0),
    /** Improved precision and recall (k-NN balls, k = 3). */
    precision: share,
    recall: share,
    /** Share of samples the feature net classifies as the class they were asked for. */
    classAccuracy: share,
    /** Bootstrap percentile interval of `classAccuracy`, from the same block draws as `fidInterval`. */
    classAccuracyInterval: z.tuple([share, share]).optional(),
    /**
     * Wall-clock sampling time per image, in milliseconds: the median over the batches of the setting (after a
     * warm-up batch), each batch's time divided by its images; older files hold the mean over all batches.
     */
    msPerImage: finite.min(0),
    /** Batches timed for `msPerImage`. */
    timedBatches: z.number().int().min(1).optional(),
    /** Sample grid: a path relative to the eval JSON, or a data: URI. */
    grid: z.string().optional(),
    /** Sampler name, e.g. "euler" or "few-step". */
    sampler: z.string().optional(),
  })
  .passthrough();

/** A whole eval file: one model on one dataset, several settings. Unknown extra keys are kept. */
export const evalJsonSchema = z
  .object({
    model: z.string().min(1),
    dataset: z.string().min(1),
    /** Generated samples per setting. */
    samples: z.number().int().min(1),
    seed: z.number().int(),
    /** Name (or hash) of the feature network the metrics were computed with. */
    featureNet: z.string().min(1),
    /** The feature net's role (absent in files written before roles existed). */
    featureNetRole: z.enum(FEATURE_NET_ROLES).optional(),
    /** The feature net's folder as given to `ladder eval`. */
    featureNetDir: z.string().optional(),
    /** "teacher" or "student". */
    modelKind: z.enum(['teacher', 'student']).optional(),
    /** A student's distillation method (e.g. "ladd"), from its config. */
    method: z.string().optional(),
    /** The model folder as given to `ladder eval` (its card is there). */
    modelDir: z.string().optional(),
    /**
     * How the intervals were made: replicates, blocks of consecutive samples, coverage, and whether blocks were
     * drawn within each asked class (keeping the class counts).
     */
    bootstrap: z
      .object({
        replicates: z.number().int().min(1),
        blocks: z.number().int().min(1),
        level: finite.gt(0).lt(1),
        withinClasses: z.boolean().optional(),
      })
      .optional(),
    /**
     * FID of `samples` real training images against the same reference with the same net: what a perfect generator
     * would score at this sample size. `classBalanced`: as many images of each class as the generated samples.
     */
    fidFloor: z
      .object({ fid: finite, samples: z.number().int().min(2), classBalanced: z.boolean() })
      .optional(),
    results: z.array(evalResultSchema),
    /** TF.js backend the timings come from. */
    backend: z.string().optional(),
    /** ISO 8601 time the file was written. */
    createdAt: z.string().optional(),
  })
  .passthrough();

export type EvalResult = z.infer<typeof evalResultSchema>;
export type EvalJson = z.infer<typeof evalJsonSchema>;

/** `["results", 0, "fid"]` -> `results[0].fid`. */
function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out === '' ? '(root)' : out;
}

/**
 * Validates an eval file's parsed JSON. Throws one error listing every problem as `source: path: message`,
 * e.g. `run/eval/student.json: results[1].fid: Expected number, received string`.
 */
export function parseEvalJson(value: unknown, source: string): EvalJson {
  const parsed = evalJsonSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map(
    (issue) => `${source}: ${formatPath(issue.path)}: ${issue.message}`,
  );
  throw new Error(
    `invalid eval JSON (regenerate it with \`ladder eval\` or fix these keys):\n${problems.join('\n')}`,
  );
}
