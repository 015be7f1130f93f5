// Tests for the eval JSON schema and its error messages.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type EvalJson, parseEvalJson } from './eval-json.js';

const result = {
  steps: 4,
  cfg: 2,
  nfe: 8,
  fid: 12.5,
  kid: 0.01,
  kidStd: 0.002,
  precision: 0.7,
  recall: 0.6,
  classAccuracy: 0.95,
  msPerImage: 3.2,
};
const valid = {
  model: 'ladd-student',
  dataset: 'mnist',
  samples: 2000,
  seed: 0,
  featureNet: 'mnist-cnn@1a2b',
  results: [result, { ...result, steps: 1, nfe: 2, grid: 'grids/ladd-1.png', sampler: 'few-step' }],
};

describe('parseEvalJson', () => {
  it('accepts a valid file and keeps optional and unknown extra fields', () => {
    const input = { ...valid, backend: 'wasm', createdAt: '2025-01-01T00:00:00Z', notes: 'x' };
    const parsed: EvalJson = parseEvalJson(JSON.parse(JSON.stringify(input)), 'a.json');
    assert.equal(parsed.results[1]?.grid, 'grids/ladd-1.png');
    assert.equal(parsed.backend, 'wasm');
    assert.deepEqual(parsed, input);
  });

  it('reads the role, bootstrap and floor fields, and files written before them', () => {
    const withIntervals = {
      ...valid,
      featureNetRole: 'report',
      featureNetDir: 'models/mnist/features-report',
      bootstrap: { replicates: 3, blocks: 100, level: 0.95 },
      fidFloor: { fid: 9.7, samples: 2000, classBalanced: true },
      results: [
        {
          ...result,
          fidInterval: [11.8, 12.9],
          fidReplicates: [12, 12.4, 11.9],
          classAccuracyInterval: [0.94, 0.96],
        },
      ],
    };
    const parsed = parseEvalJson(withIntervals, 'new.json');
    assert.equal(parsed.featureNetRole, 'report');
    assert.deepEqual(parsed.results[0]?.fidInterval, [11.8, 12.9]);
    assert.equal(parseEvalJson(valid, 'old.json').featureNetRole, undefined);
    assert.throws(
      () => parseEvalJson({ ...valid, featureNetRole: 'final' }, 'r.json'),
      /r\.json: featureNetRole: Invalid enum value\. Expected 'selection' \| 'report'/,
    );
    assert.throws(
      () => parseEvalJson({ ...valid, results: [{ ...result, fidInterval: [1] }] }, 'r.json'),
      /r\.json: results\[0\]\.fidInterval/,
    );
  });

  it('names the file and the path of a missing or mistyped key', () => {
    const { fid: _fid, ...noFid } = result;
    assert.throws(
      () => parseEvalJson({ ...valid, results: [result, noFid] }, 'run/eval/x.json'),
      /run\/eval\/x\.json: results\[1\]\.fid: Required/,
    );
    assert.throws(
      () => parseEvalJson({ ...valid, results: [{ ...result, nfe: '8' }] }, 's.json'),
      /s\.json: results\[0\]\.nfe: Expected number, received string/,
    );
    assert.throws(() => parseEvalJson({ ...valid, model: 3 }, 's.json'), /s\.json: model: Expected string/);
  });

  it('rejects out-of-range values and lists every problem', () => {
    const bad = { ...valid, samples: 1.5, results: [{ ...result, precision: 1.2, steps: 0 }] };
    assert.throws(
      () => parseEvalJson(bad, 'b.json'),
      (error: Error) =>
        /b\.json: samples: Expected integer/.test(error.message) &&
        /b\.json: results\[0\]\.precision: Number must be less than or equal to 1/.test(error.message) &&
        /b\.json: results\[0\]\.steps:/.test(error.message),
    );
    assert.throws(() => parseEvalJson([], 'c.json'), /c\.json: \(root\): Expected object, received array/);
  });
});
