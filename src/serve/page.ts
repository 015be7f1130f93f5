// The `ladder serve` page: pickers, a continuously regenerated canvas grid, and teacher-vs-student panels.
// Generation runs in workers (worker.ts) driven by frames.ts; this module wires the DOM.
import { FrameLoop, GeneratorWorker, Stats } from './frames.js';
import {
  type GridCondition,
  isBroken,
  type ModelEntry,
  type ModelIndex,
  type ModelInfo,
  WEB_BACKENDS,
} from './protocol.js';

const TEACHER_STEPS = 32;
const TEACHER_STEP_CHOICES = [1, 2, 4, 8, 16, 32, 64];
/** What the prompt box asks of a prompt-conditional model when it is left empty. */
const DEFAULT_PROMPT = '407';

// ---
// DOM helpers.

function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`the page has no <${type.name}> #${id}`);
  return element;
}

function setOptions(
  select: HTMLSelectElement,
  options: readonly (readonly [string, string])[],
  value?: string,
) {
  select.replaceChildren(
    ...options.map(([v, text]) =>
      Object.assign(document.createElement('option'), { value: v, textContent: text }),
    ),
  );
  if (value !== undefined && options.some(([v]) => v === value)) select.value = value;
}

// ---

const methodName = (m: ModelInfo) =>
  m.method === undefined ? m.kind : `${m.method.toUpperCase()} ${m.kind}`;

function stepChoices(model: ModelInfo): number[] {
  // A student offers the step counts it was trained for (a PADD stage: one; LADD and ADD: 4, 2 and 1).
  const choices = model.kind === 'teacher' ? TEACHER_STEP_CHOICES : model.steps;
  return [...new Set(choices)].sort((a, b) => a - b);
}

function labelsFor(classValue: string, count: number, numClasses: number): Int32Array {
  if (classValue === 'all') return Int32Array.from({ length: count }, (_, i) => i % numClasses);
  return new Int32Array(count).fill(Number(classValue));
}

/** `count` images for `model`: of the class picked (or every class in turn), or of the prompt typed. */
function conditionFor(model: ModelInfo, classValue: string, prompt: string, count: number): GridCondition {
  if (model.prompts !== undefined) return { prompt: prompt.trim() || DEFAULT_PROMPT, count };
  return { labels: labelsFor(classValue, count, model.classNames.length) };
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

/** Grid rows by class: `rowsPerClass` rows of `columns` images for each class shown, and each row's class. */
function classRows(
  classValue: string,
  rowsPerClass: number,
  columns: number,
  numClasses: number,
): { labels: Int32Array; rowClasses: number[] } {
  const classes = classValue === 'all' ? [...Array(Math.max(1, numClasses)).keys()] : [Number(classValue)];
  const rowClasses = classes.flatMap((k) => Array<number>(rowsPerClass).fill(k));
  return { labels: Int32Array.from(rowClasses.flatMap((k) => Array<number>(columns).fill(k))), rowClasses };
}

/** What the model's card says at `steps`, or why nothing is shown. */
function qualityText(model: ModelInfo, steps: number, cfg: number): string {
  const result = model.quality?.results.find((r) => r.steps === steps);
  if (model.quality === undefined || result === undefined)
    return `its card has no FID at ${plural(steps, 'step')}`;
  const atDefault = cfg === result.cfg ? '' : ` at guidance ${result.cfg}`;
  return (
    `FID ${result.fid.toFixed(2)}, class accuracy ${(100 * result.classAccuracy).toFixed(1)}%${atDefault} ` +
    `(${model.quality.role} net, ${model.quality.samples} samples, from its card)`
  );
}

/** The served student made for 1 step with the lowest 1-step FID in its card (cards of one net role only). */
function best1StepStudent(students: readonly ModelInfo[]): ModelInfo | undefined {
  const scored = students.flatMap((m) => {
    const r = m.quality?.results.find((x) => x.steps === 1);
    return r === undefined ? [] : [{ m, role: m.quality!.role, fid: r.fid }];
  });
  const role = scored.some((x) => x.role === 'report') ? 'report' : 'selection';
  return scored
    .filter((x) => x.role === role)
    .reduce<(typeof scored)[number] | undefined>(
      (b, x) => (b === undefined || x.fid < b.fid ? x : b),
      undefined,
    )?.m;
}

/** Runs the page: fetches the model index, starts the workers, and wires the controls. */
export async function startPage(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const forced = params.get('backend') ?? undefined;
  const backend = WEB_BACKENDS.find((b) => b === forced);
  const status = byId('backend', HTMLElement);
  const errors = byId('errors', HTMLUListElement);
  const showError = (message: string) => {
    errors.append(Object.assign(document.createElement('li'), { textContent: message }));
    void fetch('/api/log', { method: 'POST', body: JSON.stringify({ message }) }).catch(() => undefined);
  };
  if (forced !== undefined && backend === undefined)
    showError(`unknown backend "${forced}" in the address; use one of ${WEB_BACKENDS.join(', ')}`);

  const workers = [new GeneratorWorker(backend)];
  const second = () => (workers[1] ??= new GeneratorWorker(backend));
  let index: readonly ModelEntry[] = [];
  try {
    const [report, response] = await Promise.all([workers[0]!.ready, fetch('/api/models')]);
    status.textContent = `backend: ${report.detail}`;
    status.dataset.backend = report.backend;
    status.title = report.skipped.length > 0 ? `not used: ${report.skipped.join('; ')}` : '';
    byId('backend-note', HTMLElement).textContent =
      report.skipped.length > 0 ? `(${report.skipped.join('; ')})` : '';
    if (!response.ok) throw new Error(`GET /api/models failed: HTTP ${response.status}`);
    index = ((await response.json()) as ModelIndex).models;
  } catch (err) {
    status.textContent = 'backend: none';
    showError((err as Error).message);
    return;
  }
  for (const entry of index) if (isBroken(entry)) showError(`model ${entry.path}: ${entry.error}`);
  const models = index.filter((m): m is ModelInfo => !isBroken(m));
  const teachers = models.filter((m) => m.kind === 'teacher');
  const byPath = (path: string) => models.find((m) => m.path === path);
  const absolute = (m: ModelInfo) => new URL(m.url, location.href).href;

  // The playground: any model, class and step count.
  const modelSelect = byId('model', HTMLSelectElement);
  const classSelect = byId('class', HTMLSelectElement);
  const promptInput = byId('prompt', HTMLInputElement);
  const stepsSelect = byId('steps', HTMLSelectElement);
  const rowsSelect = byId('rows', HTMLSelectElement);
  const guidanceInput = byId('guidance', HTMLInputElement);
  const seedInput = byId('seed', HTMLInputElement);
  const runButton = byId('run', HTMLButtonElement);
  const downloadButton = byId('download', HTMLButtonElement);
  const modelInfo = byId('model-info', HTMLElement);
  const rowLabels = byId('row-labels', HTMLOListElement);
  const gridCanvas = byId('grid', HTMLCanvasElement);
  const onLoopError = (message: string) => {
    stopAll();
    showError(message);
  };
  const main = new FrameLoop(workers[0]!, gridCanvas, new Stats(byId('stats', HTMLElement)), onLoopError);
  const columns = 8;
  setOptions(
    modelSelect,
    models.map((m) => [m.path, `${m.path} (${methodName(m)})`]),
    models.find((m) => m.kind === 'student')?.path,
  );
  // Guidance and seed as typed, or the model's own guidance and seed 0 when the field is empty or out of range.
  const guidanceFor = (model: ModelInfo): number => {
    const value = guidanceInput.valueAsNumber;
    return Number.isFinite(value) && value >= 0 && value <= 100 ? value : model.cfg;
  };
  const seed = (): number => {
    const value = seedInput.valueAsNumber;
    return Number.isInteger(value) && value >= 0 ? value : 0;
  };
  const onSettings = () => {
    const model = byPath(modelSelect.value);
    if (model === undefined) return;
    const steps = Number(stepsSelect.value);
    const cfg = guidanceFor(model);
    const passes = cfg === 1 ? steps : 2 * steps;
    modelInfo.textContent =
      `${methodName(model)} · ${plural(steps, 'step')} · ${plural(passes, 'network pass', 'network passes')} ` +
      `per image · ${qualityText(model, steps, cfg)}`;
  };
  // The class picker and the prompt box show while a model on the page (the playground's or the comparison's)
  // takes them.
  const showInputs = () => {
    const paths = [
      modelSelect.value,
      byId('compare-teacher', HTMLSelectElement).value,
      byId('compare-student', HTMLSelectElement).value.replace(/^teacher:/, ''),
    ];
    const used = paths.map(byPath).filter((m): m is ModelInfo => m !== undefined);
    const prompted = used.find((m) => m.prompts !== undefined);
    byId('class-label', HTMLElement).hidden = used.length > 0 && used.every((m) => m.prompts !== undefined);
    byId('prompt-label', HTMLElement).hidden = prompted === undefined;
    const prompts = prompted?.prompts;
    if (prompts)
      promptInput.title =
        prompts.source === 'digit-strings'
          ? `digit strings; trained on lengths ${prompts.lengths.join(', ')}`
          : 'a caption like those it was trained on';
  };
  const onModel = () => {
    const model = byPath(modelSelect.value);
    if (model === undefined) return;
    const steps = model.kind === 'teacher' ? TEACHER_STEPS : model.steps[0]!;
    setOptions(
      stepsSelect,
      stepChoices(model).map((s) => [String(s), String(s)]),
      String(steps),
    );
    // A prompt-conditional model takes a prompt instead of a class (the class picker keeps its choice).
    if (model.prompts === undefined) {
      const classes = model.classNames.map((name, i): [string, string] => [String(i), name]);
      setOptions(classSelect, [['all', 'all'], ...classes], classSelect.value);
    }
    showInputs();
    guidanceInput.value = String(model.cfg);
    onSettings();
  };
  modelSelect.onchange = onModel;
  stepsSelect.onchange = onSettings;
  guidanceInput.onchange = onSettings;
  onModel();
  // One label per grid row, beside the canvas (rewritten only when the rows change).
  const showRowLabels = (names: readonly string[]) => {
    if (rowLabels.dataset.names === names.join('\n')) return;
    rowLabels.dataset.names = names.join('\n');
    rowLabels.replaceChildren(
      ...names.map((name) => Object.assign(document.createElement('li'), { textContent: name })),
    );
  };
  downloadButton.onclick = () => {
    const link = Object.assign(document.createElement('a'), {
      href: gridCanvas.toDataURL('image/png'),
      download: `ladder-${modelSelect.value.replaceAll('/', '-')}-${stepsSelect.value}steps.png`,
    });
    link.click();
  };

  // The comparison: a teacher at 32 steps beside a 1-step student, each in its own worker, both running.
  const compareButton = byId('compare-run', HTMLButtonElement);
  const teacherSelect = byId('compare-teacher', HTMLSelectElement);
  const studentSelect = byId('compare-student', HTMLSelectElement);
  const studentTitle = byId('student-title', HTMLElement);
  // Default: the teacher a served student was distilled from.
  const distilledFrom = models.find((m) => m.kind === 'student' && m.teacher !== undefined)?.teacher;
  setOptions(
    teacherSelect,
    teachers.map((m) => [m.path, m.path]),
    distilledFrom,
  );
  const onTeacher = () => {
    const teacher = byPath(teacherSelect.value);
    if (teacher !== undefined) {
      // Guidance runs the network twice per step: say how many passes the 32 steps really cost.
      const passes = teacher.cfg === 1 ? TEACHER_STEPS : 2 * TEACHER_STEPS;
      byId('teacher-title', HTMLElement).textContent =
        `${teacher.path}, ${TEACHER_STEPS} steps (${teacher.cfg === 1 ? '' : `CFG ${teacher.cfg}: `}${passes} network passes per image)`;
    }
    // The panel runs one step: students made for one step (LADD, ADD, PADD's last stage) qualify.
    const students = models.filter(
      (m) => m.kind === 'student' && m.dataset === teacher?.dataset && m.steps.includes(1),
    );
    const options = students.map((m): [string, string] => [m.path, `${m.path} (${methodName(m)})`]);
    // No distilled student yet: the teacher itself at one step, named as what it is.
    if (teacher !== undefined)
      options.push([`teacher:${teacher.path}`, `${teacher.path} at 1 step (not a student)`]);
    // Default: the best 1-step student by its card, else a LADD student.
    const preferred = best1StepStudent(students) ?? students.find((m) => m.method === 'ladd');
    setOptions(studentSelect, options, preferred?.path);
    onStudent();
  };
  const onStudent = () => {
    showInputs();
    const fallback = studentSelect.value.startsWith('teacher:');
    studentTitle.textContent = fallback
      ? 'Teacher at 1 step: no distilled student is served, so this shows what one step of the teacher gives'
      : `${studentSelect.value}, 1 step`;
  };
  teacherSelect.onchange = onTeacher;
  studentSelect.onchange = onStudent;
  onTeacher();
  const teacherLoop = new FrameLoop(
    workers[0]!,
    byId('teacher-canvas', HTMLCanvasElement),
    new Stats(byId('teacher-stats', HTMLElement)),
    onLoopError,
  );
  let studentLoop: FrameLoop | undefined;

  const stopAll = () => {
    for (const loop of [main, teacherLoop, studentLoop]) loop?.stop();
    runButton.textContent = 'Start';
    compareButton.textContent = 'Start';
  };
  runButton.onclick = () => {
    if (main.isRunning) return stopAll();
    stopAll();
    runButton.textContent = 'Stop';
    main.start(() => {
      const model = byPath(modelSelect.value)!;
      downloadButton.disabled = false;
      let condition: GridCondition;
      if (model.prompts !== undefined) {
        const rows = Number(rowsSelect.value);
        const prompt = promptInput.value.trim() || DEFAULT_PROMPT;
        condition = { prompt, count: rows * columns };
        showRowLabels(Array<string>(rows).fill(prompt));
      } else {
        const { labels, rowClasses } = classRows(
          classSelect.value,
          Number(rowsSelect.value),
          columns,
          model.classNames.length,
        );
        showRowLabels(rowClasses.map((k) => model.classNames[k] ?? String(k)));
        condition = { labels };
      }
      return {
        url: absolute(model),
        condition,
        steps: Number(stepsSelect.value),
        columns,
        seed: seed(),
        cfg: guidanceFor(model),
      };
    });
  };
  compareButton.onclick = () => {
    if (teacherLoop.isRunning) return stopAll();
    const teacher = byPath(teacherSelect.value);
    const studentPath = studentSelect.value.replace(/^teacher:/, '');
    const student = byPath(studentPath);
    if (teacher === undefined || student === undefined)
      return showError('no teacher is served: nothing to compare');
    stopAll();
    compareButton.textContent = 'Stop';
    studentLoop ??= new FrameLoop(
      second(),
      byId('student-canvas', HTMLCanvasElement),
      new Stats(byId('student-stats', HTMLElement)),
      onLoopError,
    );
    const conditionOf = (model: ModelInfo) => conditionFor(model, classSelect.value, promptInput.value, 8);
    teacherLoop.start(() => ({
      url: absolute(teacher),
      condition: conditionOf(teacher),
      steps: TEACHER_STEPS,
      columns: 4,
    }));
    studentLoop.start(() => ({
      url: absolute(student),
      condition: conditionOf(student),
      steps: 1,
      columns: 4,
    }));
  };
  if (models.length === 0) {
    runButton.disabled = true;
    compareButton.disabled = true;
    showError(
      'no usable teacher or student is served: train one, or point `ladder serve --models` at a folder',
    );
  }

  exposeBench(workers[0]!, models, absolute, stopAll);
  document.body.dataset.ready = 'true';
}

/** Options and result of the throughput benchmark the page exposes as window.ladder.bench. */
export interface BenchOptions {
  readonly path: string;
  readonly steps: number;
  readonly batch: number;
  readonly seconds: number;
}
export interface BenchResult {
  readonly path: string;
  readonly steps: number;
  readonly batch: number;
  readonly frames: number;
  readonly imagesPerSecond: number;
  readonly msPerImage: number;
}

function exposeBench(
  worker: GeneratorWorker,
  models: readonly ModelInfo[],
  absolute: (m: ModelInfo) => string,
  stopAll: () => void,
): void {
  const bench = async (o: BenchOptions): Promise<BenchResult> => {
    stopAll();
    const model = models.find((m) => m.path === o.path);
    if (model === undefined) throw new Error(`no usable model ${o.path} is served`);
    const condition = conditionFor(model, 'all', DEFAULT_PROMPT, o.batch);
    await worker.generate(absolute(model), condition, o.steps, 0, 8); // warm-up: model load, shader compilation
    let frames = 0;
    let ms = 0;
    const began = performance.now();
    while (frames < 2 || performance.now() - began < 1000 * o.seconds) {
      ms += (await worker.generate(absolute(model), condition, o.steps, ++frames, 8)).ms;
    }
    const images = frames * o.batch;
    const wall = performance.now() - began;
    return { ...o, frames, imagesPerSecond: (1000 * images) / wall, msPerImage: ms / images };
  };
  Object.assign(window, { ladder: { bench } });
}
