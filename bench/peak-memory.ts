// Peak memory of `ladder sample` against --n: runs the real CLI as child processes on the shipped teacher (1 step,
// .npy output) and prints JSON with each run's peak resident set size. Flat numbers mean the command streams.
// Usage: npx tsx bench/peak-memory.ts [--backend wasm|cpu|torch] [--n 1000,20000] [--batch 100]
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = fileURLToPath(new URL('..', import.meta.url));
const MARK = 'ladder-peak-rss-kb';
// Loaded into the child before the CLI: reports the process's own peak RSS (kB on Linux and macOS) as it exits.
const REPORT_RSS = `data:text/javascript,process.on('exit',()=>process.stderr.write('${MARK} '+process.resourceUsage().maxRSS+'\\n'))`;

const { values } = parseArgs({
  options: {
    backend: { type: 'string' },
    n: { type: 'string', default: '1000,20000' },
    batch: { type: 'string' },
    model: { type: 'string', default: join(repo, 'models/mnist/teacher') },
  },
});

interface Run {
  readonly n: number;
  readonly peakRssMB: number | null;
  readonly seconds: number;
  readonly status: number | null;
  readonly error?: string;
}

const dir = await mkdtemp(join(tmpdir(), 'ladder-peak-memory-'));
const runs: Run[] = [];
try {
  for (const n of values.n.split(',').map(Number)) {
    const args = [
      '--import',
      'tsx',
      '--import',
      REPORT_RSS,
      join(repo, 'src/cli/main.ts'),
      ...(values.backend === undefined ? [] : ['--backend', values.backend]),
      'sample',
      '--model',
      values.model,
      '--steps',
      '1',
      '--n',
      String(n),
      ...(values.batch === undefined ? [] : ['--batch', values.batch]),
      '--out',
      join(dir, `n${n}.npy`),
    ];
    const began = performance.now();
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
    const seconds = Number(((performance.now() - began) / 1000).toFixed(1));
    const kb = new RegExp(`${MARK} (\\d+)`).exec(r.stderr)?.[1];
    const error =
      r.status === 0 ? undefined : (r.stderr.split('\n').find((l) => l.includes('error')) ?? r.signal);
    runs.push({
      n,
      peakRssMB: kb === undefined ? null : Math.round(Number(kb) / 1024),
      seconds,
      status: r.status,
      ...(error ? { error } : {}),
    });
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
process.stdout.write(
  `${JSON.stringify({ command: 'sample', model: values.model, backend: values.backend ?? process.env.LADDER_BACKEND ?? 'wasm', steps: 1, runs }, null, 2)}\n`,
);
