// `ladder demo`: the main job on the shipped models (or, with --from-scratch, on models it first trains). Evaluates
// the teacher (at full steps with CFG and at 1, 2 and 4 steps) and every student with the same protocol, scored by
// the report feature net (not the selection net the models were chosen with), writes the eval JSONs and the HTML
// report, and prints a compact table.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type DatasetSpec, datasetFlags, datasetLabel } from '../data/image-dataset.js';
import type { EvalJson } from '../eval/eval-json.js';
import { evaluateModel, featuresDirFor } from '../eval/evaluate.js';
import { readJson } from '../models/folder.js';
import { shippedModelsDirForCommands } from '../models/shipped.js';
import { reportCommand } from './eval.js';
import {
  datasetFolderName,
  FROM_SCRATCH_ROOT,
  fromScratchPlan,
  QUICK_REFERENCE_LIMIT,
  QUICK_SAMPLES,
  runPipeline,
  showCommand,
} from './from-scratch.js';
import { type DataFlags, datasetSpecOf } from './options.js';

export interface DemoOptions {
  readonly dataset: DatasetSpec;
  /** Folder holding the model folders (`<models>/<dataset>/<name>`). */
  readonly models: string;
  readonly out: string;
  readonly samples: number;
  readonly seed: number;
  /** First train every model into `models` with the `ladder` commands (finished ones are kept). */
  readonly fromScratch?: FromScratchSettings;
}

export interface FromScratchSettings {
  /** Tiny runs for tests and smoke runs; the evaluation then compares against few test images. */
  readonly quick: boolean;
  /** Global `--backend` passed to every step. */
  readonly backend?: string;
}

/** Defaults of the demo's flags; some depend on --from-scratch and --quick. */
export const DEMO_DEFAULTS = {
  models: shippedModelsDirForCommands(),
  fromScratchModels: FROM_SCRATCH_ROOT,
  out: join('runs', 'demo'),
  samples: 1000,
  quickSamples: QUICK_SAMPLES,
} as const;

/** The demo's flags as commander parsed them: unset ones are undefined. */
export interface DemoFlags extends DataFlags {
  readonly models?: string;
  readonly out?: string;
  readonly samples?: number;
  readonly seed: number;
  readonly fromScratch: boolean;
  readonly quick: boolean;
  readonly backend?: string;
}

/** Options from flags: a --from-scratch run defaults to its own models folder and writes its report inside it. */
export function demoOptions(f: DemoFlags): DemoOptions {
  if (f.quick && !f.fromScratch) {
    throw new Error('--quick only shortens a --from-scratch run: add --from-scratch, or drop --quick');
  }
  // Quick runs get their own default folder, so a later full run never takes their tiny models as finished.
  const fromScratchModels = f.quick
    ? `${DEMO_DEFAULTS.fromScratchModels}-quick`
    : DEMO_DEFAULTS.fromScratchModels;
  const models = f.models ?? (f.fromScratch ? fromScratchModels : DEMO_DEFAULTS.models);
  return {
    dataset: datasetSpecOf(f),
    models,
    out: f.out ?? (f.fromScratch ? join(models, 'demo') : DEMO_DEFAULTS.out),
    samples: f.samples ?? (f.quick ? DEMO_DEFAULTS.quickSamples : DEMO_DEFAULTS.samples),
    seed: f.seed,
    ...(f.fromScratch
      ? { fromScratch: { quick: f.quick, ...(f.backend === undefined ? {} : { backend: f.backend }) } }
      : {}),
  };
}

interface DemoModel {
  readonly name: string;
  readonly dir: string;
  readonly kind: 'teacher' | 'student';
  readonly steps: readonly number[];
}

/** Step counts the demo shows: a teacher at 1, 2, 4 and 32; a student at the ones it supports up to 4. */
const DEMO_STUDENT_MAX_STEPS = 4;

/**
 * Teacher and student folders under `<models>/<dataset>`, teachers first. A folder without a model is looked into
 * once more, so a PADD run's stages (`padd/stage-4`) are found; students made only for more than 4 steps (PADD's
 * intermediate stage-8) are not few-step students and are left out.
 */
async function findModels(o: DemoOptions): Promise<DemoModel[]> {
  const root = join(o.models, datasetFolderName(o.dataset));
  const subfolders = async (dir: string) =>
    (await readdir(dir, { withFileTypes: true }))
      .filter((x) => x.isDirectory())
      .map((x) => x.name)
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const names = await subfolders(root).catch(() => {
    throw new Error(
      `no models folder ${root}: pass --models with a folder of <dataset>/<name> model folders`,
    );
  });
  // Teachers first, each list in name order (`teacher` before `teacher.replaced-step-20`, its earlier version).
  const teachers: DemoModel[] = [];
  const students: DemoModel[] = [];
  const visit = async (name: string, nested: boolean): Promise<void> => {
    const dir = join(root, name);
    const config = (await readJson(join(dir, 'config.json'), 'model config').catch(() => undefined)) as
      | { kind?: string; sampling?: { steps?: number[] } }
      | undefined;
    if (config === undefined && !nested) {
      for (const sub of await subfolders(dir)) await visit(`${name}/${sub}`, true);
    }
    if (config?.kind === 'teacher') teachers.push({ name, dir, kind: 'teacher', steps: [1, 2, 4, 32] });
    const steps = (config?.sampling?.steps ?? [1]).filter((k) => k <= DEMO_STUDENT_MAX_STEPS);
    if (config?.kind === 'student' && steps.length > 0) {
      students.push({ name, dir, kind: 'student', steps: [...steps].sort((a, b) => a - b) });
    }
  };
  for (const name of names) await visit(name, false);
  if (teachers.length === 0) throw new Error(`no teacher model under ${root}`);
  return [...teachers, ...students];
}

const pad = (s: string | number, n: number): string => String(s).padStart(n);

function table(evals: readonly EvalJson[]): string {
  const lines = [
    `${'model'.padEnd(16)}${pad('steps', 6)}${pad('NFE', 5)}${pad('FID', 9)}${pad('FID 95%', 18)}` +
      `${pad('acc %', 7)}${pad('ms/img', 9)}`,
  ];
  for (const run of evals) {
    for (const r of run.results) {
      const interval =
        r.fidInterval === undefined ? '' : `[${r.fidInterval.map((v) => v.toFixed(2)).join(', ')}]`;
      lines.push(
        `${run.model.padEnd(16)}${pad(r.steps, 6)}${pad(r.nfe, 5)}${pad(r.fid.toFixed(2), 9)}${pad(interval, 18)}` +
          `${pad((100 * r.classAccuracy).toFixed(1), 7)}${pad(r.msPerImage.toFixed(2), 9)}`,
      );
    }
  }
  const first = evals[0];
  if (first !== undefined) {
    const floor = first.fidFloor;
    lines.push(
      '',
      `scored by the report net ${first.featureNet}` +
        (floor === undefined
          ? ''
          : `; FID floor (${floor.samples} real training images): ${floor.fid.toFixed(2)}`),
    );
  }
  return lines.join('\n');
}

/** Trains what is missing under `o.models` (resuming unfinished runs), as the child `ladder` commands it prints. */
async function buildFromScratch(o: DemoOptions, settings: FromScratchSettings): Promise<void> {
  const steps = fromScratchPlan({ dataset: o.dataset, root: o.models, quick: settings.quick });
  const rerun = showCommand([
    'ladder',
    ...(settings.backend === undefined ? [] : ['--backend', settings.backend]),
    'demo',
    '--from-scratch',
    ...(settings.quick ? ['--quick'] : []),
    ...datasetFlags(o.dataset),
    '--models',
    o.models,
  ]);
  if (!steps.some((step) => step.name === 'add')) {
    process.stderr.write(
      `note: ADD is left out: its discriminator needs a feature net trained on other images of the same size ` +
        `(train one with \`ladder train-features --data <other folder> ...\`, then \`ladder distill --method add ` +
        `--feature-net <it>\`)\n`,
    );
  }
  await runPipeline(steps, {
    rerun: `\`${rerun}\``,
    ...(settings.backend === undefined ? {} : { backend: settings.backend }),
  });
}

export async function demoCommand(o: DemoOptions): Promise<void> {
  const began = performance.now();
  if (o.fromScratch !== undefined) await buildFromScratch(o, o.fromScratch);
  const models = await findModels(o);
  process.stderr.write(
    `demo: evaluating ${models.map((m) => m.name).join(', ')} with ${o.samples} samples each\n`,
  );
  const files: string[] = [];
  const evals: EvalJson[] = [];
  for (const m of models) {
    const outJson = join(o.out, `${m.name.replaceAll('/', '-')}.json`);
    evals.push(
      await evaluateModel({
        modelDir: m.dir,
        name: m.name,
        steps: m.steps,
        samples: o.samples,
        seed: o.seed,
        outJson,
        // The shipped report: scored by the report net of the models folder (a from-scratch run's own).
        featureNetRole: 'report',
        featuresDir: featuresDirFor(datasetFolderName(o.dataset), 'report', o.models),
        ...(o.fromScratch?.quick ? { referenceLimit: QUICK_REFERENCE_LIMIT } : {}),
      }),
    );
    files.push(outJson);
  }
  const report = join(o.out, 'report.html');
  await reportCommand(files, report, `ladder demo: ${datasetLabel(o.dataset)}`);
  const seconds = (performance.now() - began) / 1000;
  process.stdout.write(`${table(evals)}\n\nreport: ${report}\ntook ${(seconds / 60).toFixed(1)} min\n`);
}
