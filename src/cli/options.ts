// Flag parsers shared by every command: each checks its value and names the flag in the error.
import { type Command, InvalidArgumentError } from 'commander';
import { DATASET_NAMES, type DatasetName } from '../data/dataset.js';
import { SAMPLER_KINDS, type SamplerKind } from '../samplers/sample.js';

type Parser<T> = (value: string) => T;

/** An integer >= `min`. */
export const int =
  (name: string, min = 0): Parser<number> =>
  (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got "${value}"`);
    }
    return n;
  };

/** Any finite number. */
export const num =
  (name: string): Parser<number> =>
  (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n))
      throw new InvalidArgumentError(`${name} must be a number, got "${value}"`);
    return n;
  };

/** A finite number > 0. */
export const positive =
  (name: string): Parser<number> =>
  (value) => {
    const n = num(name)(value);
    if (n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got "${value}"`);
    return n;
  };

/** Comma-separated list, each item parsed by `item`. */
export const list =
  <T>(item: Parser<T>): Parser<T[]> =>
  (value) =>
    value.split(',').map((v) => item(v.trim()));

/** One of `choices`. */
export const oneOf =
  <T extends string>(what: string, choices: readonly T[]): Parser<T> =>
  (value) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`unknown ${what} "${value}"; known: ${choices.join(', ')}`);
    }
    return value as T;
  };

export const dataset: Parser<DatasetName> = oneOf('dataset', DATASET_NAMES);
export const sampler: Parser<SamplerKind> = oneOf('sampler', SAMPLER_KINDS);

/** Defaults of the flags every training command shares. */
export interface TrainingFlagDefaults {
  readonly steps: number;
  readonly batch: number;
  readonly lr: number;
  /** Help text of --resume when the command does more than continue the run. */
  readonly resumeHelp?: string;
}

/** Adds --steps, --batch, --lr, --seed, --limit, --checkpoint-every and --resume, checked the same everywhere. */
export function addTrainingFlags(command: Command, d: TrainingFlagDefaults): Command {
  return command
    .option('--steps <n>', 'training steps', int('--steps', 1), d.steps)
    .option('--batch <n>', 'batch size', int('--batch', 1), d.batch)
    .option('--lr <x>', 'learning rate', positive('--lr'), d.lr)
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--limit <n>', 'use only the first N training images', int('--limit', 1))
    .option('--checkpoint-every <n>', 'steps between checkpoints', int('--checkpoint-every', 1), 250)
    .option('--resume', d.resumeHelp ?? 'continue the run in --out from its newest checkpoint', false);
}
