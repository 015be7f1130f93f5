// One self-contained HTML report over eval JSON files: a summary (each method's best 1-step and 4-step student
// against the teacher), the metrics table (FID with its bootstrap interval, the finite-sample floor and the ratio
// to the teacher at full steps), vega-lite charts as inline SVG, sample grids.
import { join, relative } from 'node:path';
import type * as vl from 'vega-lite';
import type { EvalJson, EvalResult } from './eval-json.js';
import { BOOTSTRAP_LEVEL, percentileInterval } from './metrics.js';

export interface ReportOptions {
  /** Page heading and <title>. */
  readonly title?: string;
  /**
   * PNG bytes to embed. A key equal to a result's `grid` field is shown with that result; other keys are
   * shown after the results, captioned with the key.
   */
  readonly grids?: Readonly<Record<string, Uint8Array>>;
  /** Folder the report is written to: model names link to their cards relative to it. */
  readonly reportDir?: string;
}

interface Row {
  readonly series: string;
  readonly run: EvalJson;
  readonly result: EvalResult;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// ---
// Series labels: the model name, disambiguated by dataset, then by file index; cfg/sampler when they vary.

function seriesLabels(evals: readonly EvalJson[]): string[][] {
  const count = (keys: string[], key: string): number => keys.filter((k) => k === key).length;
  const models = evals.map((e) => e.model);
  const withDataset = evals.map((e) => (count(models, e.model) > 1 ? `${e.model} (${e.dataset})` : e.model));
  return evals.map((run, i) => {
    const base = count(withDataset, withDataset[i]!) > 1 ? `${withDataset[i]} #${i + 1}` : withDataset[i]!;
    const cfgVaries = new Set(run.results.map((r) => r.cfg)).size > 1;
    const samplerVaries = new Set(run.results.map((r) => r.sampler)).size > 1;
    return run.results.map((r) => {
      const parts = [base];
      if (cfgVaries) parts.push(`cfg ${r.cfg}`);
      if (samplerVaries) parts.push(r.sampler ?? 'default sampler');
      return parts.join(', ');
    });
  });
}

/** Rows by model (teachers first, then the files' order), each model's settings by NFE. */
function collectRows(evals: readonly EvalJson[]): Row[] {
  const labels = seriesLabels(evals);
  const order = (run: EvalJson): number =>
    (run.modelKind === 'teacher' ? -1 : 0) * evals.length + evals.indexOf(run);
  const rows = evals.flatMap((run, i) =>
    run.results.map((result, j) => ({ series: labels[i]![j]!, run, result })),
  );
  return rows.sort(
    (a, b) =>
      order(a.run) - order(b.run) ||
      a.series.localeCompare(b.series) ||
      a.result.nfe - b.result.nfe ||
      a.result.steps - b.result.steps,
  );
}

// ---
// Charts: vega-lite -> vega -> SVG string, rendered headless (no canvas, no DOM).

// vega and vega-lite are optional peers of the package (only reports draw charts): loaded on first use.
async function plotting(): Promise<{ vega: typeof import('vega'); vl: typeof import('vega-lite') }> {
  try {
    const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
    return { vega, vl: vegaLite };
  } catch (err) {
    throw new Error(
      `the report's charts need the packages vega and vega-lite (${(err as Error).message}): ` +
        'run `npm install vega@6 vega-lite@6`',
    );
  }
}

async function renderChart(spec: vl.TopLevelSpec): Promise<string> {
  const { vega, vl: vegaLite } = await plotting();
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

function fidChart(rows: readonly Row[], x: 'nfe' | 'msPerImage', xTitle: string): vl.TopLevelSpec {
  const values = rows.map(({ series, result }) => ({
    series,
    x: result[x],
    fid: result.fid,
    steps: result.steps,
  }));
  const logScale = values.every((v) => v.x > 0); // a zero time cannot go on a log axis
  const logFid = values.every((v) => v.fid > 0); // FIDs span a decade from the teacher to 1-step students
  return {
    width: 520,
    height: 320,
    background: 'white',
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'x',
        type: 'quantitative',
        scale: { type: logScale ? 'log' : 'linear' },
        title: logScale ? `${xTitle} (log scale)` : xTitle,
      },
      y: {
        field: 'fid',
        type: 'quantitative',
        title: logFid ? 'FID (feature net, log scale)' : 'FID (feature net)',
        scale: logFid ? { type: 'log' } : { zero: false },
      },
      color: { field: 'series', type: 'nominal', title: 'model' }, // lines join points in x order
    },
  };
}

// ---
// HTML pieces.

const fixed = (value: number, digits: number): string => value.toFixed(digits);

function numberCell(value: number, text: string): string {
  return `<td class="num" data-value="${value}">${escapeHtml(text)}</td>`;
}

const withInterval = (value: number, interval: readonly number[] | undefined, digits: number): string =>
  interval === undefined
    ? fixed(value, digits)
    : `${fixed(value, digits)} [${interval.map((v) => fixed(v, digits)).join(', ')}]`;

/** Which net scored an eval: its name and role. */
const scorer = (run: EvalJson): string =>
  `${run.featureNet} (${run.featureNetRole === undefined ? 'role not recorded' : `${run.featureNetRole} net`})`;

/** The teacher's result at its most steps: the yardstick of the FID / teacher column. */
function teacherAtFullSteps(rows: readonly Row[]): Row | undefined {
  const teacher = rows.find((row) => row.run.modelKind === 'teacher')?.run;
  const own = rows.filter((row) => row.run === teacher);
  return own.reduce<Row | undefined>(
    (best, row) => (best === undefined || row.result.steps > best.result.steps ? row : best),
    undefined,
  );
}

/**
 * FID / teacher FID, with the percentile interval of the ratios of paired replicates (replicate i of each). Only
 * for rows scored by the teacher's net, on its dataset, at its sample count (FID's bias depends on it); the
 * interval only when both drew their samples from the same seed and resampled the same blocks (so replicate i
 * takes the same samples' noise in both) and the teacher's replicates are positive.
 */
function ratioToTeacher(row: Row, teacher: Row): { ratio: number; interval?: [number, number] } | undefined {
  if (
    row.run.dataset !== teacher.run.dataset ||
    row.run.featureNet !== teacher.run.featureNet ||
    row.run.featureNetRole !== teacher.run.featureNetRole ||
    row.run.samples !== teacher.run.samples
  ) {
    return undefined;
  }
  const ratio = row.result.fid / teacher.result.fid;
  const mine = row.result.fidReplicates;
  const theirs = teacher.result.fidReplicates;
  // Replicates are shifted to centre on the FID, so those of a teacher FID near 0 could reach 0.
  if (
    mine === undefined ||
    theirs === undefined ||
    mine.length !== theirs.length ||
    row.run.seed !== teacher.run.seed ||
    row.run.bootstrap?.blocks !== teacher.run.bootstrap?.blocks ||
    theirs.some((v) => v <= 0)
  )
    return { ratio };
  const { low, high } = percentileInterval(
    mine.map((fid, i) => fid / theirs[i]!),
    row.run.bootstrap?.level ?? BOOTSTRAP_LEVEL,
  );
  return { ratio, interval: [low, high] };
}

function tableRow(row: Row, teacher: Row | undefined): string {
  const { series, run, result } = row;
  const floor = run.fidFloor;
  const ratio = teacher === undefined ? undefined : ratioToTeacher(row, teacher);
  const cells = [
    `<td>${escapeHtml(series)}</td>`,
    `<td>${escapeHtml(run.dataset)}</td>`,
    `<td>${escapeHtml(result.sampler ?? '')}</td>`,
    numberCell(result.steps, String(result.steps)),
    numberCell(result.cfg, String(result.cfg)),
    numberCell(result.nfe, String(result.nfe)),
    numberCell(result.fid, withInterval(result.fid, result.fidInterval, 2)),
    floor === undefined ? '<td></td>' : numberCell(floor.fid, fixed(floor.fid, 2)),
    ...(teacher === undefined
      ? []
      : [
          ratio === undefined
            ? '<td></td>'
            : numberCell(ratio.ratio, withInterval(ratio.ratio, ratio.interval, 2)),
        ]),
    numberCell(result.kid, `${fixed(result.kid, 4)} ± ${fixed(result.kidStd, 4)}`),
    numberCell(result.precision, fixed(result.precision, 3)),
    numberCell(result.recall, fixed(result.recall, 3)),
    numberCell(result.classAccuracy, withInterval(result.classAccuracy, result.classAccuracyInterval, 3)),
    numberCell(result.msPerImage, fixed(result.msPerImage, 2)),
  ];
  return `<tr class="result">${cells.join('')}</tr>`;
}

function metricHeaders(withRatio: boolean): string[] {
  return [
    ...['Model', 'Dataset', 'Sampler', 'Steps', 'CFG', 'NFE', 'FID [95%]', 'FID floor'],
    ...(withRatio ? ['FID / teacher [95%]'] : []),
    ...['KID ± std', 'Precision', 'Recall', 'Class acc. [95%]', 'ms / image'],
  ];
}

/** The model's name, linked to its card when the eval recorded its folder and the report's folder is known. */
function modelCell(run: EvalJson, reportDir: string | undefined): string {
  if (run.modelDir === undefined || reportDir === undefined) return `<td>${escapeHtml(run.model)}</td>`;
  const card = relative(reportDir, join(run.modelDir, 'card.json'))
    .split(/[\\/]/)
    .map(encodeURIComponent)
    .join('/');
  return `<td>${escapeHtml(run.model)} (<a href="${escapeHtml(card)}">card</a>)</td>`;
}

function runsTable(evals: readonly EvalJson[], reportDir: string | undefined): string {
  const rows = evals.map((e) => {
    const cells = [
      e.dataset,
      String(e.samples),
      String(e.seed),
      scorer(e),
      e.backend ?? '',
      e.createdAt ?? '',
    ];
    return `<tr>${modelCell(e, reportDir)}${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
  });
  const head = ['Model', 'Dataset', 'Samples', 'Seed', 'Scored by (feature net, role)', 'Backend', 'Created'];
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** Step counts the summary compares: the few-step students' usual targets. */
const SUMMARY_STEPS = [1, 4] as const;

/**
 * Each method's best student (lowest FID) at 1 and at 4 steps against the teacher at full steps, from rows scored
 * like the teacher's; undefined when there is no teacher or no student with a recorded method.
 */
function summaryTable(rows: readonly Row[], teacher: Row | undefined): string | undefined {
  if (teacher === undefined) return undefined;
  const methods = [...new Set(rows.flatMap((r) => (r.run.method === undefined ? [] : [r.run.method])))];
  if (methods.length === 0) return undefined;
  const cell = (row: Row | undefined, students: number): string => {
    // "none": no student of the method at these steps; "not comparable": none scored as the teacher was.
    if (row === undefined)
      return `<td>${students === 0 ? 'none' : 'not comparable'}</td><td></td><td></td><td></td>`;
    const ratio = ratioToTeacher(row, teacher);
    return [
      `<td>${escapeHtml(row.series)}</td>`,
      numberCell(row.result.fid, withInterval(row.result.fid, row.result.fidInterval, 2)),
      ratio === undefined
        ? '<td></td>'
        : numberCell(ratio.ratio, withInterval(ratio.ratio, ratio.interval, 2)),
      numberCell(row.result.classAccuracy, fixed(row.result.classAccuracy, 3)),
    ].join('');
  };
  const atSteps = (method: string, steps: number): Row[] =>
    rows.filter((r) => r.run.method === method && r.result.steps === steps);
  const best = (method: string, steps: number): Row | undefined =>
    atSteps(method, steps)
      .filter((r) => ratioToTeacher(r, teacher) !== undefined)
      .reduce<Row | undefined>((b, r) => (b === undefined || r.result.fid < b.result.fid ? r : b), undefined);
  const teacherRow = `<tr><td>teacher (${teacher.result.steps} steps)</td><td colspan="4">${escapeHtml(
    teacher.series,
  )}: FID ${escapeHtml(withInterval(teacher.result.fid, teacher.result.fidInterval, 2))}, class acc. ${fixed(
    teacher.result.classAccuracy,
    3,
  )}</td><td colspan="4"></td></tr>`;
  const body = methods.map(
    (method) =>
      `<tr><td>${escapeHtml(method)}</td>${SUMMARY_STEPS.map((k) => cell(best(method, k), atSteps(method, k).length)).join('')}</tr>`,
  );
  const perSteps = SUMMARY_STEPS.map(
    (k) => `<th>best ${k}-step student</th><th>FID [95%]</th><th>FID / teacher [95%]</th><th>Class acc.</th>`,
  ).join('');
  return `<table id="summary"><thead><tr><th>Method</th>${perSteps}</tr></thead><tbody>${teacherRow}${body.join('')}</tbody></table>`;
}

/** What the sample count means for comparisons with the cards and the README (2000 samples each). */
function sampleCountNote(evals: readonly EvalJson[]): string {
  const counts = [...new Set(evals.map((e) => e.samples))].sort((a, b) => a - b);
  const seeds = [...new Set(evals.map((e) => e.seed))];
  return (
    `<p class="note">Samples: ${counts.join(', ')} generated images per setting (seed ${seeds.join(', ')}). FID is ` +
    'biased upwards by roughly a constant over the sample count, so FIDs at fewer samples are higher than at ' +
    "more: the models' cards and the README use 2000, and their numbers differ from these wherever the count " +
    'does. Compare rows only at equal sample counts; the floor column is the score of real images at this count. ' +
    (evals.some((e) => e.results.some((r) => r.timedBatches !== undefined))
      ? 'ms / image: the median over the full batches of a setting, after a warm-up batch (in eval files that ' +
        'record timedBatches; older ones hold the mean over all batches).</p>'
      : 'ms / image: the mean over all batches of a setting.</p>')
  );
}

// What the numbers mean; a warning first when the evals were scored by different nets or roles.
function notes(evals: readonly EvalJson[], teacher: Row | undefined): string[] {
  const scorers = [...new Set(evals.map(scorer))];
  const out: string[] = [];
  if (scorers.length > 1) {
    out.push(
      `<p class="warning">Warning: these evals were scored by different feature nets or roles (${escapeHtml(
        scorers.join('; '),
      )}). FIDs from different nets are on different scales: compare only rows scored by the same net.</p>`,
    );
  }
  out.push(
    `<p class="note">FID, KID and precision/recall use features of ladder's own classifier (${escapeHtml(
      scorers.join('; ') || 'none',
    )}), not Inception. The features are dataset-specific: the classifier was trained on the evaluated dataset, so ` +
      'an FID here says nothing about another dataset, and a number is comparable only within this report or with ' +
      'the same feature net. The selection net ' +
      'scores every measurement along the way (sweeps, checkpoint choice); the report net, another architecture and ' +
      'seed, scores the numbers to report. [95%]: bootstrap percentile interval over the generated samples (blocks ' +
      'of consecutive samples resampled within each class, the reference held fixed; FID replicates shifted by ' +
      "the bootstrap's estimate of their small-sample bias, so the interval centres on the FID). FID floor: FID " +
      'of as many real training images as there are samples, the score of a perfect generator at this sample ' +
      'size.</p>',
  );
  if (teacher !== undefined) {
    out.push(
      `<p class="note">FID / teacher: FID divided by that of ${escapeHtml(teacher.series)} at ${
        teacher.result.steps
      } steps, for rows scored by the same net; its interval pairs bootstrap replicate i of each row with replicate ` +
        "i of the teacher's (evals with one seed and sample count draw the same blocks, so samples made from the " +
        'same noise stay paired).</p>',
    );
  }
  return out;
}

function pngDataUri(bytes: Uint8Array, key: string): string {
  if (bytes.length < 8 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new Error(`renderReport: grids["${key}"] is not a PNG (bad signature); pass the PNG file's bytes`);
  }
  return `data:image/png;base64,${Buffer.from(bytes).toString('base64')}`;
}

function figure(src: string | undefined, caption: string, missing: string): string {
  const body =
    src === undefined
      ? `<p class="missing">${escapeHtml(missing)}</p>`
      : `<img src="${escapeHtml(src)}" alt="${escapeHtml(caption)}">`;
  return `<figure>${body}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

function gridFigures(rows: readonly Row[], grids: Readonly<Record<string, Uint8Array>>): string[] {
  const used = new Set<string>();
  const figures: string[] = [];
  for (const { series, result } of rows) {
    const grid = result.grid;
    if (grid === undefined) continue;
    const caption = `${series}: ${result.steps} steps, NFE ${result.nfe}`;
    const bytes = grids[grid];
    if (bytes !== undefined) used.add(grid);
    const src = grid.startsWith('data:image/')
      ? grid
      : bytes !== undefined
        ? pngDataUri(bytes, grid)
        : undefined;
    const isRemote = /^[a-z][a-z0-9+.-]*:\/\//i.test(grid); // never echo a URL: the page stays offline
    figures.push(
      figure(src, caption, isRemote ? 'grid not embedded (remote)' : `grid not embedded: ${grid}`),
    );
  }
  for (const [key, bytes] of Object.entries(grids)) {
    if (!used.has(key)) figures.push(figure(pngDataUri(bytes, key), key, ''));
  }
  return figures;
}

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}td.num{text-align:right}
#metrics th{cursor:pointer;user-select:none;background:#f4f4f4}#metrics th[data-dir=asc]::after{content:" ▲"}
#metrics th[data-dir=desc]::after{content:" ▼"}.charts{display:flex;flex-wrap:wrap;gap:2rem}
.grids{display:flex;flex-wrap:wrap;gap:1.5rem}figure{margin:0}figure img{image-rendering:pixelated;max-width:360px}
figcaption{font-size:12px;color:#555}.note,.missing{color:#666}
.warning{color:#8a1c00;background:#fff1eb;border:1px solid #e5a48c;padding:.5rem .8rem;font-weight:600}`;

// Click a header to sort by that column; numeric cells sort by data-value.
const SORT_SCRIPT = `document.querySelectorAll('#metrics th').forEach((th, col) => th.addEventListener('click', () => {
  const body = document.querySelector('#metrics tbody');
  const dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
  document.querySelectorAll('#metrics th').forEach((h) => delete h.dataset.dir);
  th.dataset.dir = dir;
  const key = (tr) => tr.cells[col].dataset.value ?? tr.cells[col].textContent;
  const rows = [...body.rows].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    const order = isNaN(x) || isNaN(y) ? String(x).localeCompare(String(y)) : Number(x) - Number(y);
    return dir === 'asc' ? order : -order;
  });
  body.append(...rows);
}));`;

/**
 * Renders eval files as one self-contained HTML page (inline CSS/SVG, images as data: URIs, no network):
 * a sortable table of every model x setting, FID against NFE and against ms per image, and sample grids.
 */
export async function renderReport(evals: readonly EvalJson[], opts: ReportOptions = {}): Promise<string> {
  const title = opts.title ?? 'ladder evaluation';
  const rows = collectRows(evals);
  const teacher = teacherAtFullSteps(rows);
  const sections: string[] = [];
  const summary = summaryTable(rows, teacher);
  if (summary !== undefined) sections.push(`<h2>Summary</h2>${summary}`);
  sections.push(`<h2>Runs</h2>${runsTable(evals, opts.reportDir)}`);
  sections.push(sampleCountNote(evals), ...notes(evals, teacher));
  const head = metricHeaders(teacher !== undefined)
    .map((h) => `<th>${h}</th>`)
    .join('');
  const body = rows.map((row) => tableRow(row, teacher)).join('');
  sections.push(
    `<h2>Metrics</h2><table id="metrics"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`,
  );
  if (rows.length > 0) {
    const [byNfe, byTime] = await Promise.all([
      renderChart(fidChart(rows, 'nfe', 'network evaluations per image')),
      renderChart(fidChart(rows, 'msPerImage', 'ms per image')),
    ]);
    sections.push(
      `<h2>Quality against cost</h2><div class="charts"><figure class="chart">${byNfe}<figcaption>FID against NFE</figcaption></figure>` +
        `<figure class="chart">${byTime}<figcaption>FID against ms per image</figcaption></figure></div>`,
    );
  } else {
    sections.push('<p class="missing">No results to plot.</p>');
  }
  const figures = gridFigures(rows, opts.grids ?? {});
  if (figures.length > 0) sections.push(`<h2>Samples</h2><div class="grids">${figures.join('')}</div>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(title)}</h1>
${sections.join('\n')}
<script>${SORT_SCRIPT}</script>
</body></html>
`;
}
