// `ladder demo`: the main job on the shipped models. Evaluates the teacher (at full steps with CFG and at 1, 2 and
// 4 steps) and every shipped student with the same protocol, writes the eval JSONs and the HTML report, and prints
// a compact table.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatasetName } from '../data/dataset.js';
import type { EvalJson } from '../eval/eval-json.js';
import { evaluateModel } from '../eval/evaluate.js';
import { readJson } from '../models/folder.js';
import { reportCommand } from './eval.js';

export interface DemoOptions {
  readonly dataset: DatasetName;
  /** Folder holding the model folders (`<models>/<dataset>/<name>`). */
  readonly models: string;
  readonly out: string;
  readonly samples: number;
  readonly seed: number;
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
  const root = join(o.models, o.dataset);
  const subfolders = async (dir: string) =>
    (await readdir(dir, { withFileTypes: true }))
      .filter((x) => x.isDirectory())
      .map((x) => x.name)
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const names = await subfolders(root).catch(() => {
    throw new Error(`no models folder ${root}: run this from the ladder checkout, or pass --models`);
  });
  const found: DemoModel[] = [];
  const visit = async (name: string, nested: boolean): Promise<void> => {
    const dir = join(root, name);
    const config = (await readJson(join(dir, 'config.json'), 'model config').catch(() => undefined)) as
      | { kind?: string; sampling?: { steps?: number[] } }
      | undefined;
    if (config === undefined && !nested) {
      for (const sub of await subfolders(dir)) await visit(`${name}/${sub}`, true);
    }
    if (config?.kind === 'teacher') found.unshift({ name, dir, kind: 'teacher', steps: [1, 2, 4, 32] });
    const steps = (config?.sampling?.steps ?? [1]).filter((k) => k <= DEMO_STUDENT_MAX_STEPS);
    if (config?.kind === 'student' && steps.length > 0) {
      found.push({ name, dir, kind: 'student', steps: [...steps].sort((a, b) => a - b) });
    }
  };
  for (const name of names) await visit(name, false);
  if (!found.some((m) => m.kind === 'teacher')) throw new Error(`no teacher model under ${root}`);
  return found;
}

const pad = (s: string | number, n: number): string => String(s).padStart(n);

function table(evals: readonly EvalJson[]): string {
  const lines = [
    `${'model'.padEnd(16)}${pad('steps', 6)}${pad('NFE', 5)}${pad('FID', 9)}${pad('acc %', 7)}${pad('ms/img', 9)}`,
  ];
  for (const run of evals) {
    for (const r of run.results) {
      lines.push(
        `${run.model.padEnd(16)}${pad(r.steps, 6)}${pad(r.nfe, 5)}${pad(r.fid.toFixed(2), 9)}` +
          `${pad((100 * r.classAccuracy).toFixed(1), 7)}${pad(r.msPerImage.toFixed(2), 9)}`,
      );
    }
  }
  return lines.join('\n');
}

export async function demoCommand(o: DemoOptions): Promise<void> {
  const began = performance.now();
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
      }),
    );
    files.push(outJson);
  }
  const report = join(o.out, 'report.html');
  await reportCommand(files, report, `ladder demo: ${o.dataset}`);
  const seconds = (performance.now() - began) / 1000;
  process.stdout.write(`${table(evals)}\n\nreport: ${report}\ntook ${(seconds / 60).toFixed(1)} min\n`);
}
