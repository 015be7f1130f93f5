// The fused kernels of engine/fused.ts on libtorch (native/src/ops_fused.cc): one native call each.
import type * as tf from '../../../core/tf.js';
import { type AdamStepSettings, FUSED_KERNELS } from '../../fused.js';
import { attrsOf, defineKernel, input, type TorchKernel } from './util.js';

interface GroupNormActAttrs {
  readonly groups: number;
  readonly eps: number;
  readonly silu: boolean;
}

const groupNormAct = defineKernel(FUSED_KERNELS.groupNormAct, ({ inputs, backend, attrs }) => {
  const a = attrsOf<GroupNormActAttrs>(attrs);
  backend
    .args(input(inputs, 'x'), inputs.gamma, inputs.beta, inputs.scale, inputs.shift)
    .int(a.groups)
    .flag(a.silu)
    .num(a.eps);
  return backend.run('group_norm_act'); // y, and the mean and rstd [N, G] the gradient reuses
});

const groupNormActGrad = defineKernel(FUSED_KERNELS.groupNormActGrad, ({ inputs, backend, attrs }) => {
  const a = attrsOf<GroupNormActAttrs>(attrs);
  backend
    .args(
      input(inputs, 'dy'),
      input(inputs, 'mean'),
      input(inputs, 'rstd'),
      input(inputs, 'x'),
      inputs.gamma,
      inputs.beta,
      inputs.scale,
      inputs.shift,
    )
    .int(a.groups)
    .flag(a.silu)
    .num(a.eps);
  return backend.run('group_norm_act_grad');
});

const attention = defineKernel(FUSED_KERNELS.attention, ({ inputs, backend, attrs }) => {
  backend
    .args(input(inputs, 'q'), input(inputs, 'k'), input(inputs, 'v'))
    .num(attrsOf<{ scale: number }>(attrs).scale);
  return backend.run1('attention');
});

const attentionGrad = defineKernel(FUSED_KERNELS.attentionGrad, ({ inputs, backend, attrs }) => {
  backend
    .args(input(inputs, 'dy'), input(inputs, 'q'), input(inputs, 'k'), input(inputs, 'v'))
    .num(attrsOf<{ scale: number }>(attrs).scale);
  return backend.run('attention_grad');
});

/** Inputs `<prefix>0 .. <prefix>n-1`, in order. */
const listed = (inputs: tf.NamedTensorInfoMap, prefix: string, n: number): tf.TensorInfo[] =>
  Array.from({ length: n }, (_, i) => input(inputs, `${prefix}${i}`));

type AdamStepAttrs = AdamStepSettings & { readonly n: number };

const adamStep = defineKernel(FUSED_KERNELS.adamStep, ({ inputs, backend, attrs }) => {
  const a = attrsOf<AdamStepAttrs>(attrs);
  const tensors = ['p', 'g', 'm', 'v'].flatMap((prefix) => listed(inputs, prefix, a.n));
  backend
    .argsList(tensors)
    .num(a.lr)
    .num(a.beta1)
    .num(a.beta2)
    .num(a.eps)
    .num(a.weightDecay)
    .num(a.clipNorm)
    .num(a.c1)
    .num(a.c2);
  return backend.run('adam_step');
});

const emaStep = defineKernel(FUSED_KERNELS.emaStep, ({ inputs, backend, attrs }) => {
  const a = attrsOf<{ n: number; beta: number }>(attrs);
  backend.argsList([...listed(inputs, 'a', a.n), ...listed(inputs, 's', a.n)]).num(a.beta);
  return backend.run('ema_step');
});

export function fusedKernels(): TorchKernel[] {
  return [groupNormAct, groupNormActGrad, attention, attentionGrad, adamStep, emaStep];
}
