// The same tiny training run on wasm and on torch follows the same loss curve (float tolerance).
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { availableBackends } from '../engine/backend.js';

const fixture = fileURLToPath(new URL('./fixtures/tiny-run.ts', import.meta.url));

async function lossCurve(backend: string): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), `ladder-curve-${backend}-`));
  const run = spawnSync(process.execPath, ['--import', 'tsx', fixture, dir, '15'], {
    encoding: 'utf8',
    env: { ...process.env, LADDER_BACKEND: backend, LADDER_TORCH_THREADS: '1' },
  });
  assert.equal(run.status, 0, run.stderr);
  const lines = (await readFile(join(dir, 'log.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  return lines.map((l: { netLoss: number }) => l.netLoss);
}

describe('backends agree on training', async () => {
  const torch = (await availableBackends()).includes('torch');
  it('a tiny U-Net run gives the same loss curve on torch as on wasm', {
    skip: !torch && 'torch addon not built',
  }, async () => {
    const [wasm, native] = [await lossCurve('wasm'), await lossCurve('torch')];
    assert.equal(wasm.length, 15);
    assert.equal(native.length, 15);
    for (const [i, l] of wasm.entries()) {
      assert.ok(
        Math.abs(l - native[i]!) <= 1e-3 * Math.max(1, Math.abs(l)),
        `step ${i + 1}: wasm ${l} vs torch ${native[i]}`,
      );
    }
    assert.ok(wasm[14]! < wasm[0]!, 'the run should learn');
  });
});
