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

/** Teacher and student folders under `<models>/<dataset>`, teachers first. */
async function findModels(o: DemoOptions): Promise<DemoModel[]> {
  const root = join(o.models, o.dataset);
  const entries = await readdir(root, { withFileTypes: true }).catch(() => {
    throw new Error(`no models folder ${root}: run this from the ladder checkout, or pass --models`);
  });
  const found: DemoModel[] = [];
  for (const e of entries.filter((x) => x.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const dir = join(root, e.name);
    const config = (await readJson(join(dir, 'config.json'), 'model config').catch(() => undefined)) as
      | { kind?: string; sampling?: { steps?: number[] } }
      | undefined;
    if (config?.kind === 'teacher')
      found.unshift({ name: e.name, dir, kind: 'teacher', steps: [1, 2, 4, 32] });
    if (config?.kind === 'student') {
      found.push({
        name: e.name,
        dir,
        kind: 'student',
        steps: [...(config.sampling?.steps ?? [1])].sort((a, b) => a - b),
      });
    }
  }
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
    const outJson = join(o.out, `${m.name}.json`);
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
