// Flag parsers shared by every command: each checks its value and names the flag in the error.
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  DATASET_NAMES,
  type DatasetSpec,
  FIT_MODES,
  type FitMode,
  type FolderDatasetSpec,
} from '../data/image-dataset.js';
import type { EngineProfile } from '../engine/profile.js';
import { MAX_CFG } from '../models/pipeline.js';
import { shippedModel } from '../models/shipped.js';
import { SAMPLER_KINDS, type SamplerKind } from '../samplers/sample.js';

type Parser<T> = (value: string) => T;

/**
 * A model folder: the path as given when it exists, else the shipped model of that name ("mnist/teacher"), else
 * the path as given (the command then says it is missing).
 */
export const modelFolder: Parser<string> = (value) =>
  existsSync(value) ? value : (shippedModel(value) ?? value);

/** An integer >= `min` (and <= `max` when given). */
export const int =
  (name: string, min = 0, max = Number.MAX_SAFE_INTEGER): Parser<number> =>
  (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
      throw new InvalidArgumentError(`${name} must be an integer ${range}, got "${value}"`);
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

/** A finite number >= 0 (a loss weight, where 0 turns the term off). */
export const nonNegative =
  (name: string): Parser<number> =>
  (value) => {
    const n = num(name)(value);
    if (n < 0) throw new InvalidArgumentError(`${name} must be a number >= 0, got "${value}"`);
    return n;
  };

/**
 * A finite number in [min, max]; `openMin` / `openMax` exclude an end (a time that must stay above 0, a decay
 * that must stay below 1).
 */
export const inRange =
  (name: string, min: number, max: number, { openMin = false, openMax = false } = {}): Parser<number> =>
  (value) => {
    const n = num(name)(value);
    if (n < min || n > max || (openMin && n === min) || (openMax && n === max)) {
      const range =
        openMin || openMax
          ? `in ${openMin ? '(' : '['}${min}, ${max}${openMax ? ')' : ']'}`
          : `from ${min} to ${max}`;
      throw new InvalidArgumentError(`${name} must be a number ${range}, got "${value}"`);
    }
    return n;
  };

/** A probability: a number from 0 to 1. */
export const probability = (name: string): Parser<number> => inRange(name, 0, 1);

/** An EMA decay: in [0, 1) (1 would freeze the averaged weights at their initial values). */
export const decay = (name: string): Parser<number> => inRange(name, 0, 1, { openMax: true });

/** A classifier-free guidance scale: 0 (unconditional) to MAX_CFG. */
export const cfgScale = (name: string): Parser<number> => inRange(name, 0, MAX_CFG);

/** Comma-separated list, each item parsed by `item`. */
export const list =
  <T>(item: Parser<T>): Parser<T[]> =>
  (value) =>
    value.split(',').map((v) => item(v.trim()));

/** Comma-separated probabilities of a categorical distribution: each in [0, 1], summing to 1. */
export const distribution =
  (name: string): Parser<number[]> =>
  (value) => {
    const probs = list(probability(name))(value);
    const sum = probs.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 1) > 1e-6)
      throw new InvalidArgumentError(`${name} must sum to 1, got "${value}" (sums to ${sum})`);
    return probs;
  };

/** Comma-separated layer widths, each a positive multiple of the GroupNorm `groups` that normalise them. */
export const widths =
  (name: string, groups: number): Parser<number[]> =>
  (value) => {
    const ws = list(int(name, 1))(value);
    const bad = ws.find((w) => w % groups !== 0);
    if (bad !== undefined) {
      throw new InvalidArgumentError(
        `${name} must be multiples of ${groups} (the GroupNorm groups), got ${bad} in "${value}"`,
      );
    }
    return ws;
  };

/** One of `choices`. */
export const oneOf =
  <T extends string>(what: string, choices: readonly T[]): Parser<T> =>
  (value) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`unknown ${what} "${value}"; known: ${choices.join(', ')}`);
    }
    return value as T;
  };

/** Help text of every --data flag: the datasets it takes. */
const DATASET_HELP = `dataset: ${DATASET_NAMES.join(', ')}, or a folder of PNG/JPEG/WebP images (one subfolder per class, or none)`;

/** Image size of a folder dataset when --size is not given. */
const DEFAULT_FOLDER_SIZE = 32;

/** `32` (square) or `48x32` (width x height, as image tools write it), as [height, width]. */
const imageSize: Parser<[number, number]> = (value) => {
  const match = /^(\d+)(?:x(\d+))?$/.exec(value.trim());
  const width = Number(match?.[1]);
  const height = Number(match?.[2] ?? match?.[1]);
  if (!match || !(width >= 1 && height >= 1 && width <= 4096 && height <= 4096)) {
    throw new InvalidArgumentError(`--size must be N or WxH in pixels (e.g. 32 or 48x32), got "${value}"`);
  }
  return [height, width];
};

/** `--buckets 48x32,32x48,40x40`: image sizes (width x height each), as [height, width]; no size twice. */
export const bucketSizes: Parser<[number, number][]> = (value) => {
  const sizes = value.split(',').map((part) => {
    try {
      return imageSize(part);
    } catch {
      throw new InvalidArgumentError(
        `--buckets must be sizes WxH separated by commas (e.g. 48x32,32x48,40x40), got "${value}"`,
      );
    }
  });
  const labels = sizes.map(([h, w]) => `${w}x${h}`);
  const twice = labels.find((label, i) => labels.indexOf(label) !== i);
  if (twice !== undefined) throw new InvalidArgumentError(`--buckets lists ${twice} twice`);
  return sizes;
};

const NAMED_COLOURS: Record<string, [number, number, number]> = {
  white: [255, 255, 255],
  black: [0, 0, 0],
  grey: [128, 128, 128],
  gray: [128, 128, 128],
};

/** A colour: white, black, grey, #rgb or #rrggbb. */
const colour: Parser<[number, number, number]> = (value) => {
  const named = NAMED_COLOURS[value.toLowerCase()];
  if (named !== undefined) return named;
  const hex = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(value)?.[1];
  if (hex === undefined) {
    throw new InvalidArgumentError(
      `--background must be white, black, grey, #rgb or #rrggbb, got "${value}"`,
    );
  }
  const full = hex.length === 3 ? [...hex].map((c) => c + c).join('') : hex;
  return [0, 2, 4].map((i) => Number.parseInt(full.slice(i, i + 2), 16)) as [number, number, number];
};

/** The --data flag and the folder-decoding flags; read them back with `datasetSpecOf`. */
export function addDataFlags(command: Command, defaultName = 'mnist'): Command {
  return command
    .option('--data <name|folder>', DATASET_HELP, defaultName)
    .option(
      '--size <n|WxH>',
      `folder data: resize every image to N x N or W x H pixels (default ${DEFAULT_FOLDER_SIZE})`,
      imageSize,
    )
    .addOption(
      new Option(
        '--fit <mode>',
        'folder data: cover crops the centre, contain pads with the background (default: cover)',
      ).choices(FIT_MODES),
    )
    .option(
      '--background <colour>',
      'folder data: colour that transparency is flattened onto and contain pads with (white, black, grey, #rrggbb)',
      colour,
    )
    .addOption(
      new Option(
        '--image-channels <n>',
        'folder data: 1 (grey) or 3 (RGB) (default: 1 only if every image is grey)',
      ).argParser((v) => Number(oneOf('--image-channels value', ['1', '3'])(v)) as 1 | 3),
    );
}

export interface DataFlags {
  readonly data: string;
  readonly size?: [number, number];
  readonly fit?: FitMode;
  readonly background?: [number, number, number];
  readonly imageChannels?: 1 | 3;
}

/** Refuses the folder-decoding flags for data that is no folder (`why` says what the data is instead). */
export function refuseFolderFlags(o: DataFlags, why: string): void {
  const folderOnly = [
    o.size && '--size',
    o.fit && '--fit',
    o.background && '--background',
    o.imageChannels && '--image-channels',
  ].filter(Boolean);
  if (folderOnly.length > 0) {
    throw new InvalidArgumentError(`${folderOnly.join(', ')} apply to folder datasets only; ${why}`);
  }
}

/**
 * The dataset the flags select: a built-in name, or an existing folder (a path that is not a built-in name, or
 * any path written with a slash). Folder-only flags with a built-in name are refused rather than ignored.
 */
export function datasetSpecOf(o: DataFlags): DatasetSpec {
  const isPath = o.data.includes('/') || o.data.includes('\\');
  if (!isPath && (DATASET_NAMES as readonly string[]).includes(o.data)) {
    refuseFolderFlags(o, `${o.data} has a fixed size and colour`);
    return o.data as DatasetSpec;
  }
  if (!existsSync(o.data)) {
    throw new InvalidArgumentError(
      `--data ${o.data}: no such folder, and not a built-in dataset (${DATASET_NAMES.join(', ')})`,
    );
  }
  if (!statSync(o.data).isDirectory())
    throw new InvalidArgumentError(`--data ${o.data} is a file: give the folder that holds the images`);
  const spec: FolderDatasetSpec = {
    folder: resolve(o.data),
    size: o.size ?? [DEFAULT_FOLDER_SIZE, DEFAULT_FOLDER_SIZE],
    fit: o.fit ?? 'cover',
    background: o.background ?? NAMED_COLOURS.white!,
    ...(o.imageChannels === undefined ? {} : { channels: o.imageChannels }),
  };
  return spec;
}
export const sampler: Parser<SamplerKind> = oneOf('sampler', SAMPLER_KINDS);

/** Defaults of the flags every training command shares. */
export interface TrainingFlagDefaults {
  readonly iterations: number;
  readonly batch: number;
  readonly lr: number;
  /** Help text of --resume when the command does more than continue the run. */
  readonly resumeHelp?: string;
}

/**
 * Adds --iterations: training length is --iterations in every command (--steps counts sampling steps). The old
 * --steps of training commands, recorded in older cards and scripts, is still read, with a note.
 */
export function addIterationsFlag(command: Command, defaultValue: number, help: string): Command {
  return command
    .option('--iterations <n>', help, int('--iterations', 1), defaultValue)
    .addOption(new Option('--steps <n>', 'old name of --iterations').argParser(int('--steps', 1)).hideHelp())
    .hook('preAction', (cmd) => {
      const old = cmd.opts<{ steps?: number }>().steps;
      if (old === undefined) return;
      if (cmd.getOptionValueSource('iterations') === 'cli')
        throw new InvalidArgumentError('--steps is the old name of --iterations: give only --iterations');
      process.stderr.write(`ladder: note: --steps of ladder ${cmd.name()} is now --iterations\n`);
      cmd.setOptionValue('iterations', old);
    });
}

/** Adds --iterations, --batch, --lr, --seed, --limit, --checkpoint-every and --resume, checked the same everywhere. */
export function addTrainingFlags(command: Command, d: TrainingFlagDefaults): Command {
  return addIterationsFlag(command, d.iterations, 'training iterations (optimizer steps)')
    .option('--batch <n>', 'batch size', int('--batch', 1), d.batch)
    .option('--lr <x>', 'learning rate', positive('--lr'), d.lr)
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--limit <n>', 'use only the first N training images', int('--limit', 1))
    .option('--checkpoint-every <n>', 'iterations between checkpoints', int('--checkpoint-every', 1), 250)
    .option('--resume', d.resumeHelp ?? 'continue the run in --out from its newest checkpoint', false)
    .option('--profile <n>', PROFILE_HELP, int('--profile', 1));
}

export const PROFILE_HELP =
  'profile N iterations after a warm-up one and print JSON per iteration: native calls, reads back to the host ' +
  '(syncs), ms inside and outside native calls; runs in a temporary folder, nothing is written to --out';

/**
 * Runs a training command: into `outDir`, or, with `profile`, into a temporary folder that is removed afterwards,
 * printing the run's profile as one JSON line on stdout.
 */
export async function runOrProfile(
  outDir: string,
  profile: number | undefined,
  run: (outDir: string) => Promise<{ readonly profile?: EngineProfile } | undefined>,
): Promise<void> {
  if (profile === undefined) {
    await run(outDir);
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'ladder-profile-'));
  try {
    const result = await run(join(dir, 'run'));
    if (result?.profile === undefined)
      throw new Error('--profile: the run ended before the profiled iterations');
    process.stdout.write(`${JSON.stringify({ profile: result.profile })}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
