// PADD's settings (METHODS.md section 2): the ladder of stages, the phases of a stage, and PaddConfig with its
// defaults and why.
import {
  type AdversarialTraining,
  checkAdversarialTraining,
  checkInteger,
  configFailure,
} from './shared/adversarial-config.js';

// ---------------------------------------------------------------------------------------------------------------
// The ladder of stages.

/** How a stage trains: MSE against the teacher's steps, or the adversarial loss. */
export type StageLoss = 'mse' | 'adversarial';

/** One rung: a `studentSteps` student distilled from a `teacherSteps` teacher (n = teacherSteps / studentSteps). */
export interface PaddStage {
  readonly teacherSteps: number;
  readonly studentSteps: number;
  readonly loss: StageLoss;
}

/**
 * Parses a schedule such as `32:mse,8,4,2,1`: step counts from the teacher down, each stage going from one count
 * to the next. A `:mse` or `:adv` tag on a count sets the loss of the stage that starts there; untagged, the first
 * stage is MSE and the others adversarial (the paper's ladder). Each count must divide the one before it.
 */
export function parsePaddSchedule(text: string): PaddStage[] {
  const fail = (why: string): never => {
    throw new Error(`PADD schedule "${text}": ${why} (example: 32:mse,8,4,2,1)`);
  };
  const rungs = text.split(',').map((part, i) => {
    const [count, tag, extra] = part.trim().split(':');
    const steps = Number(count);
    if (!(Number.isInteger(steps) && steps >= 1)) fail(`"${part}" is not a positive step count`);
    if (extra !== undefined || (tag !== undefined && tag !== 'mse' && tag !== 'adv')) {
      fail(`"${part}": a count takes at most one tag, :mse or :adv`);
    }
    const loss: StageLoss | undefined = tag === 'mse' ? 'mse' : tag === 'adv' ? 'adversarial' : undefined;
    return { steps, loss: loss ?? (i === 0 ? 'mse' : 'adversarial'), tagged: tag !== undefined };
  });
  if (rungs.length < 2) fail('give the teacher steps and at least one student step count');
  if (rungs.at(-1)!.tagged)
    fail('the last count is the final student: it starts no stage, so it takes no tag');
  return rungs.slice(1).map((rung, i) => {
    const from = rungs[i]!;
    if (!(rung.steps < from.steps && from.steps % rung.steps === 0)) {
      fail(`${rung.steps} must be smaller than ${from.steps} and divide it`);
    }
    return { teacherSteps: from.steps, studentSteps: rung.steps, loss: from.loss };
  });
}

/** The three kinds of training a stage is made of. */
export type PaddPhase = 'mse' | 'conditional' | 'relax';

/**
 * A stage's phases and their iterations: an MSE stage is one MSE phase; an adversarial stage is the conditional
 * discriminator's phase, then the relaxed one (`relaxFraction` of the iterations). A student that changes
 * parameterisation (x0 at one step) first regresses the teacher for `x0WarmupFraction` of them: its copied
 * weights still predict velocity, which no discriminator can be expected to turn around.
 */
export function stagePhases(
  stage: PaddStage,
  config: Pick<PaddConfig, 'iterations' | 'relaxFraction' | 'x0WarmupFraction'>,
  reparameterised: boolean,
): { phase: PaddPhase; iterations: number }[] {
  const total = config.iterations;
  if (stage.loss === 'mse') return [{ phase: 'mse', iterations: total }];
  const warmup = reparameterised ? Math.round(total * config.x0WarmupFraction) : 0;
  const relax = Math.round(total * config.relaxFraction);
  const phases = [
    { phase: 'mse' as const, iterations: warmup },
    { phase: 'conditional' as const, iterations: total - warmup - relax },
    { phase: 'relax' as const, iterations: relax },
  ];
  return phases.filter((p) => p.iterations > 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration.

export interface PaddConfig extends AdversarialTraining {
  /** The ladder, as `parsePaddSchedule` reads it. */
  readonly schedule: string;
  /** Trainer steps per stage; each is one student update (and `discriminatorUpdates` D updates). */
  readonly iterations: number;
  /** Share of an adversarial stage's iterations in the relax phase (unconditional discriminator). */
  readonly relaxFraction: number;
  /** Share of the x0 (1-step) student's stage spent regressing the teacher before the adversarial phases. */
  readonly x0WarmupFraction: number;
  /** Student learning rate of MSE phases (adversarial phases use `generatorLr`; both use `generatorBetas`). */
  readonly mseLr: number;
  /** EMA decay of each stage's student (0 = raw weights); the EMA weights teach the next stage. */
  readonly emaDecay: number;
  /** Width and GroupNorm groups of the discriminator's head. */
  readonly headChannels: number;
  readonly headGroups: number;
  /**
   * What the 1-step student's network predicts: 'x0' (the paper's choice: eps-prediction is ill-conditioned at pure
   * noise), or 'teacher' (keep the teacher's parameterisation, well-conditioned for flow: x0 = x_1 - v).
   */
  readonly oneStepPrediction: 'x0' | 'teacher';
  /** CFG scale of the first stage's teacher (default: the teacher's own); later teachers are students (cfg 1). */
  readonly teacherCfg?: number;
  /** x_t is the forward-noised synthetic (teacher CFG samples) or real latent at a student time. */
  readonly data: 'synthetic' | 'real';
}

/**
 * Defaults and why.
 * - schedule 32:mse,8,4,2,1: METHODS.md's short ladder (the paper's 128 -> 32 MSE rung is skipped: our teacher
 *   is already at its best at 32 steps).
 * - 600 iterations per stage: each stage starts from a student one rung away from its target, so a few hundred
 *   updates move it; four stages then fit in about an hour of CPU.
 * - relax 30%: the conditional objective does most of the trajectory following; the relax phase only has to
 *   remove what the student cannot follow (the paper gives no split).
 * - x0 warm-up 20% for the 1-step student (see `stagePhases`).
 * - lr: 1e-4 for MSE (plain regression from a close start), 2e-5 for the adversarial student (METHODS.md: small,
 *   1e-5..1e-4), 1e-4 for D with betas (0, 0.99) like the other methods' discriminators.
 * - head 64 wide, 8 groups: small next to the encoder it reads.
 * - EMA 0.99: a horizon of ~100 updates against adversarial noise.
 * - data synthetic: the states the student meets at sampling time come from the (guided) teacher's distribution.
 * - oneStepPrediction x0: METHODS.md's choice. On the MNIST flow teacher an x0 student started from velocity weights
 *   stayed far from its teacher within a CPU budget (see the PADD card); 'teacher' is the measured alternative.
 */
export const PADD_DEFAULTS: PaddConfig = {
  schedule: '32:mse,8,4,2,1',
  iterations: 600,
  relaxFraction: 0.3,
  x0WarmupFraction: 0.2,
  batchSize: 32,
  mseLr: 1e-4,
  generatorLr: 2e-5,
  generatorBetas: [0.9, 0.999],
  discriminatorLr: 1e-4,
  discriminatorBetas: [0, 0.99],
  discriminatorUpdates: 1,
  emaDecay: 0.99,
  headChannels: 64,
  headGroups: 8,
  oneStepPrediction: 'x0',
  data: 'synthetic',
};

/** Defaults overlaid with `overrides`, checked; the error names the key and the bad value. */
export function resolvePaddConfig(overrides: Partial<PaddConfig> = {}): PaddConfig {
  const c: PaddConfig = { ...PADD_DEFAULTS, ...overrides };
  const fail = configFailure('PADD');
  parsePaddSchedule(c.schedule);
  checkAdversarialTraining(c, fail);
  for (const key of ['headChannels', 'headGroups'] as const) checkInteger(fail, key, c[key]);
  if (!(c.mseLr > 0)) fail('mseLr', c.mseLr, 'use a positive number');
  for (const key of ['relaxFraction', 'x0WarmupFraction'] as const) {
    if (!(c[key] >= 0 && c[key] < 1)) fail(key, c[key], 'use a fraction in [0, 1)');
  }
  if (c.relaxFraction + c.x0WarmupFraction >= 1) {
    fail('relaxFraction', c.relaxFraction, 'relax and x0 warm-up together must leave conditional iterations');
  }
  if (c.headChannels % c.headGroups !== 0) fail('headGroups', c.headGroups, 'must divide headChannels');
  if (c.teacherCfg !== undefined && !(c.teacherCfg >= 0))
    fail('teacherCfg', c.teacherCfg, 'use a scale >= 0');
  if (c.data !== 'synthetic' && c.data !== 'real') fail('data', c.data, 'use "synthetic" or "real"');
  if (c.oneStepPrediction !== 'x0' && c.oneStepPrediction !== 'teacher') {
    fail('oneStepPrediction', c.oneStepPrediction, 'use "x0" or "teacher"');
  }
  return c;
}
