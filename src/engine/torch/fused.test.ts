// The fused kernels (engine/fused.ts on native/src/ops_fused.cc) against the graphs they replace: values and
// gradients, on tfjs-backend-cpu (where the graphs run) and on torch with fusion turned off.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '../../core/tf.js';
import {
  adamStep,
  attention,
  emaStep,
  FUSED_KERNELS,
  type GroupNormActOptions,
  groupNormAct,
  hasFusedKernel,
  withoutFusion,
} from '../fused.js';
import { startProfile } from '../profile.js';
import { expectSameAsCpu, type Input, normal, rngFor, runOn, torchSkip } from './test-helpers.js';

const TOL = { atol: 2e-4, rtol: 2e-4 };

/** Torch with fusion on matches torch with fusion off (the unfused graph on the same backend). */
async function expectSameAsUnfused(inputs: readonly Input[], program: (...xs: tf.Tensor[]) => tf.Tensor[]) {
  const fusedOut = await runOn('torch', inputs, program);
  const graphOut = await runOn('torch', inputs, (...xs) => withoutFusion(() => program(...xs)));
  fusedOut.forEach((f, k) => {
    const g = graphOut[k]!;
    assert.deepEqual(f.shape, g.shape, `output ${k} shape`);
    f.values.forEach((a, i) => {
      const b = g.values[i]!;
      assert.ok(
        Math.abs(a - b) <= TOL.atol + TOL.rtol * Math.abs(b),
        `output ${k}[${i}]: fused ${a} vs graph ${b}`,
      );
    });
  });
}

type Variant = {
  readonly name: string;
  readonly affine: boolean;
  readonly modulated: boolean;
  readonly silu: boolean;
};
const VARIANTS: readonly Variant[] = [
  { name: 'affine + SiLU (U-Net norm1)', affine: true, modulated: false, silu: true },
  { name: 'modulated + SiLU, no affine (U-Net norm2)', affine: false, modulated: true, silu: true },
  { name: 'affine + modulated + SiLU (heads)', affine: true, modulated: true, silu: true },
  { name: 'affine only (attention, projection heads)', affine: true, modulated: false, silu: false },
];

/** y and the gradients of sum(y * w) with respect to every input the variant uses. */
function groupNormProgram(v: Variant, groups: number) {
  return (
    x: tf.Tensor,
    w: tf.Tensor,
    gamma: tf.Tensor,
    beta: tf.Tensor,
    scale: tf.Tensor,
    shift: tf.Tensor,
  ) => {
    const used = [x, ...(v.affine ? [gamma, beta] : []), ...(v.modulated ? [scale, shift] : [])];
    const f = (...ts: tf.Tensor[]): tf.Tensor => {
      let k = 1;
      const o: GroupNormActOptions = {
        groups,
        silu: v.silu,
        ...(v.affine ? { gamma: ts[k++] as tf.Tensor1D, beta: ts[k++] as tf.Tensor1D } : {}),
        ...(v.modulated ? { scale: ts[k++]!, shift: ts[k++]! } : {}),
      };
      return groupNormAct(ts[0] as tf.Tensor4D, o);
    };
    const y = f(...used);
    const grads = tf.grads((...ts: tf.Tensor[]) =>
      f(...ts)
        .mul(w)
        .sum(),
    )(used);
    return [y, ...grads];
  };
}

describe('fused kernels on torch', { skip: torchSkip }, () => {
  const rng = rngFor(19);
  const x = normal(rng, [3, 5, 4, 16], 2);
  const w = normal(rng, [3, 5, 4, 16]);
  const gamma = normal(rng, [16]);
  const beta = normal(rng, [16]);
  const scale = normal(rng, [3, 1, 1, 16], 0.5);
  const shift = normal(rng, [3, 1, 1, 16]);

  for (const v of VARIANTS) {
    it(`GroupNorm ${v.name}: values and gradients as the graph (cpu, and torch unfused)`, async () => {
      const inputs = [x, w, gamma, beta, scale, shift];
      await expectSameAsCpu(inputs, groupNormProgram(v, 4), TOL);
      await expectSameAsUnfused(inputs, groupNormProgram(v, 4));
    });
  }

  it('GroupNorm and attention: gradients of gradients (exact R1) as the graph', async () => {
    const program = (
      xt: tf.Tensor,
      wt: tf.Tensor,
      g: tf.Tensor,
      b: tf.Tensor,
      sc: tf.Tensor,
      sh: tf.Tensor,
    ) => {
      const f = (a: tf.Tensor, gamma: tf.Tensor) =>
        groupNormAct(a as tf.Tensor4D, {
          groups: 4,
          gamma: gamma as tf.Tensor1D,
          beta: b as tf.Tensor1D,
          scale: sc,
          shift: sh,
          silu: true,
        })
          .mul(wt)
          .sum();
      // R1-like: the squared norm of the input gradient, differentiated again.
      const penalty = (a: tf.Tensor, gamma: tf.Tensor) =>
        tf
          .grad((t: tf.Tensor) => f(t, gamma))(a)
          .square()
          .sum();
      const q = xt.reshape([3, 20, 16]) as tf.Tensor3D;
      const att = (t: tf.Tensor) =>
        tf
          .grad((u: tf.Tensor) =>
            attention(u as tf.Tensor3D, q, q, 0.25)
              .mul(u)
              .sum(),
          )(t)
          .square()
          .sum();
      return [...tf.grads(penalty)([xt, g]), tf.grad(att)(q)];
    };
    await expectSameAsCpu([x, w, gamma, beta, scale, shift], program, { atol: 1e-3, rtol: 1e-3 });
  });

  it('GroupNorm with one group and with one channel per group', async () => {
    const v = VARIANTS[2]!;
    await expectSameAsCpu([x, w, gamma, beta, scale, shift], groupNormProgram(v, 1), TOL);
    await expectSameAsCpu([x, w, gamma, beta, scale, shift], groupNormProgram(v, 16), TOL);
  });

  it('attention: values and gradients as the graph', async () => {
    const q = normal(rng, [4, 9, 8]);
    const k = normal(rng, [4, 9, 8]);
    const vv = normal(rng, [4, 9, 8]);
    const dy = normal(rng, [4, 9, 8]);
    const program = (qt: tf.Tensor, kt: tf.Tensor, vt: tf.Tensor, d: tf.Tensor) => {
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        attention(a as tf.Tensor3D, b as tf.Tensor3D, c as tf.Tensor3D, 0.35);
      return [f(qt, kt, vt), ...tf.grads((a, b, c) => f(a!, b!, c!).mul(d).sum())([qt, kt, vt])];
    };
    await expectSameAsCpu([q, k, vv, dy], program, TOL);
    await expectSameAsUnfused([q, k, vv, dy], program);
  });

  for (const clipNorm of [0, 0.5, 100]) {
    it(`Adam step of a whole network (clip norm ${clipNorm}, weight decay): as the per-tensor graph`, async () => {
      const shapes = [[3, 4], [7], [2, 2, 2, 3]];
      const inputs = shapes.flatMap((s) => [
        normal(rng, s),
        normal(rng, s),
        normal(rng, s, 0.1),
        normal(rng, s, 0.1),
      ]);
      const program = (...ts: tf.Tensor[]) => {
        const pick = (k: number) => shapes.map((_, i) => ts[4 * i + k]!);
        const v2 = pick(3).map((t) => t.square()); // second moments are non-negative
        const s = {
          lr: 0.01,
          beta1: 0.9,
          beta2: 0.99,
          eps: 1e-8,
          weightDecay: 0.1,
          clipNorm,
          c1: 0.19,
          c2: 0.0199,
        };
        const out = adamStep(pick(0), pick(1), pick(2), v2, s);
        return [...out.params, ...out.m, ...out.v, out.gradNorm];
      };
      await expectSameAsCpu(inputs, program, TOL);
      await expectSameAsUnfused(inputs, program);
    });
  }

  it('EMA step of a whole network: as the per-tensor graph', async () => {
    const inputs = [normal(rng, [3, 4]), normal(rng, [5]), normal(rng, [3, 4]), normal(rng, [5])];
    const program = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor) => emaStep([a, b], [c, d], 0.95);
    await expectSameAsCpu(inputs, program, TOL);
    await expectSameAsUnfused(inputs, program);
  });

  it('each fused op is one native call, forward and backward', async () => {
    await tf.setBackend('torch');
    for (const kernel of Object.values(FUSED_KERNELS)) assert.ok(hasFusedKernel(kernel), kernel);
    const xt = tf.tensor4d(x.values as Float32Array, x.shape as [number, number, number, number]);
    const g = tf.tensor1d(gamma.values as Float32Array);
    const b = tf.tensor1d(beta.values as Float32Array);
    const forward = startProfile();
    const y = groupNormAct(xt, { groups: 4, gamma: g, beta: b, silu: true });
    assert.equal(forward.stop(1).nativeCalls, 1);
    y.dispose();
    const backward = startProfile();
    const dx = tf.grad((t: tf.Tensor) =>
      groupNormAct(t as tf.Tensor4D, { groups: 4, gamma: g, beta: b, silu: true }),
    )(xt);
    const profile = backward.stop(1);
    // forward, backward (dx; the affine's gradients come from the same call but are not asked for here) and the
    // ones-like seed of the gradient
    assert.ok((profile.nativeCalls ?? 0) <= 3, `${profile.nativeCalls} native calls`);
    tf.dispose([xt, g, b, dx]);
  });
});
