// Test helper: the lines of a training run's log.jsonl (see src/train/loop.ts), parsed.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export async function readRunLog(dir: string): Promise<Record<string, unknown>[]> {
  return (await readFile(join(dir, 'log.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
