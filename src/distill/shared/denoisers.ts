// The two denoisers every method distils between: the frozen teacher (with its guidance) and the student over the
// weights being trained. One builder, so every method's student honours the model's `prediction` setting.
import type { Denoiser } from '../../diffusion/denoiser.js';
import { guidedDenoiser } from '../../diffusion/denoiser.js';
import { makeFormulation } from '../../diffusion/formulation.js';
import { configDenoiser, type DiffusionModel } from '../../models/pipeline.js';
import type { DiffusionModelConfig } from '../../models/schema.js';
import type { Params } from '../../nn/params.js';
import { nullCondition } from '../../nn/unet.js';

export interface MethodDenoisers {
  /** The guidance scale the teacher runs at: the one asked for, or 1 for an unconditional teacher. */
  readonly teacherCfg: number;
  /** D_psi with classifier-free guidance: frozen, its weights constants that no optimiser sees. */
  readonly teacher: Denoiser;
  /** D_theta over `params`: the teacher's network and formulation, guidance-free. */
  student(params: Params): Denoiser;
}

/**
 * The teacher's denoiser at guidance `cfg` (1 for an unconditional teacher, which has no null class to guide
 * with) and the student's, predicting what the teacher's network predicts unless `studentPrediction` says
 * otherwise (PADD's 1-step student predicts x0).
 */
export function methodDenoisers(
  teacher: Pick<DiffusionModel, 'config' | 'params'>,
  opts: {
    readonly cfg: number;
    readonly studentPrediction?: DiffusionModelConfig['prediction'];
  },
): MethodDenoisers {
  const { config } = teacher;
  const f = makeFormulation(config.formulation);
  const studentConfig = { ...config, prediction: opts.studentPrediction ?? config.prediction };
  const cfg = config.unet.numClasses > 0 || config.unet.text ? opts.cfg : 1;
  return {
    teacherCfg: cfg,
    teacher: guidedDenoiser(configDenoiser(config, teacher.params, f), cfg, (b) =>
      nullCondition(config.unet, b),
    ),
    student: (params) => configDenoiser(studentConfig, params, f),
  };
}
