// The layout is the pipeline: imports flow from the stages (autoencoder, teacher, distill, eval, serve) down to the
// models, networks and core, never back up, and no two modules import each other, directly or around a circle.
import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('.', import.meta.url));

/** Each top-level folder's layer: a module may import its own folder or a lower layer, never a higher one. */
const LAYERS: Readonly<Record<string, number>> = {
  core: 0,
  io: 1,
  image: 1,
  engine: 1,
  nn: 2,
  data: 2,
  diffusion: 3,
  samplers: 4,
  models: 5,
  train: 6,
  // The stages hold procedures only; none imports another.
  autoencoder: 7,
  teacher: 7,
  distill: 7,
  eval: 7,
  serve: 7,
  // The library's API over the stages, the command line over the API, and the package's entries on top.
  api: 8,
  cli: 9,
  'test-utils': 9,
  'index.ts': 10,
  'web.ts': 10,
};

type Graph = ReadonlyMap<string, readonly string[]>;

/** Production modules (tests and test fixtures left out) and the ladder modules each imports. */
function importGraph(root: string): Graph {
  const graph = new Map<string, string[]>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'fixtures') walk(path);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
        const file = relative(root, path);
        const text = readFileSync(path, 'utf8');
        const targets = [...text.matchAll(/(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/g)].map((m) =>
          normalize(join(dirname(file), m[1]!.replace(/\.js$/, '.ts'))),
        );
        graph.set(file, targets);
      }
    }
  };
  walk(root);
  return graph;
}

/** The import circles of `graph`: its strongly connected components of more than one module (Tarjan). */
export function importCircles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return circles;
}

const folderOf = (file: string): string => file.split('/')[0]!;

describe('source layout', () => {
  const graph = importGraph(SRC);

  it('finds a circle when there is one (the check itself)', () => {
    const circle = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', ['a.ts']],
    ]);
    assert.deepEqual(importCircles(circle), [['a.ts', 'b.ts', 'c.ts']]);
    assert.deepEqual(
      importCircles(
        new Map([
          ['a.ts', ['b.ts']],
          ['b.ts', []],
        ]),
      ),
      [],
    );
  });

  it('has no import circle in src/', () => {
    assert.ok(graph.size > 100, `read only ${graph.size} modules`);
    assert.deepEqual(importCircles(graph), []);
  });

  it('imports only from the same folder or a lower layer', () => {
    const upward: string[] = [];
    for (const [file, targets] of graph) {
      const from = folderOf(file);
      assert.ok(from in LAYERS, `${file}: folder ${from} has no layer in LAYERS`);
      for (const target of targets) {
        const to = folderOf(target);
        if (to !== from && !(LAYERS[to]! < LAYERS[from]!)) upward.push(`${file} -> ${target}`);
      }
    }
    assert.deepEqual(upward, []);
  });
});
