// Model cards: how a model was made (exact command, seed, data, steps, wall time, backend) and what it measures.
import { currentBackend } from '../engine/backend.js';

export interface RunRecord {
  readonly command: string;
  readonly seed: number;
  readonly dataset: string;
  readonly steps: number;
  readonly batchSize: number;
  readonly wallSeconds: number;
  readonly msPerStep: number;
}

/**
 * The command line as typed (program name shortened to `ladder`), for the card. `--resume` is left out: a
 * resumed run ends where the uninterrupted command would have.
 */
export function commandLine(argv: readonly string[] = process.argv): string {
  return ['ladder', ...argv.slice(2).filter((a) => a !== '--resume')]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)))
    .join(' ');
}

export function makeCard(
  run: RunRecord,
  metrics: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  return {
    ...run,
    backend: currentBackend(),
    node: process.version,
    createdAt: new Date().toISOString(),
    metrics,
    ...extra,
  };
}
