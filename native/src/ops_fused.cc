// Fused ops for the hot paths of training, each replacing a graph of small tfjs kernels (and their gradients)
// with one native call: GroupNorm with its affine, an optional per-sample modulation (1 + scale, shift) and
// SiLU; scaled dot-product attention; a whole player's Adam update; an EMA of a whole network. Every op stays
// on the device (no reads), so none of them makes the host wait for a GPU.
// Images arrive NHWC; GroupNorm reduces over a [N, HW, C] view, which is contiguous in that layout.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "common.h"

namespace ladder {
namespace {

// Per-channel [N, C] form of a per-sample-and-channel tensor given as [N, C] or [N, 1, 1, C].
at::Tensor per_channel(const at::Tensor& t, int64_t n, int64_t c) { return t.reshape({n, c}); }

struct GroupNormArgs {
  at::Tensor x, gamma, beta, scale, shift;
  int64_t groups;
  double eps;
  bool silu;
  int64_t n, h, w, c;
};

// x, gamma?, beta?, scale?, shift?; groups, silu flag; eps.
GroupNormArgs read_group_norm(Args& in) {
  GroupNormArgs a;
  a.x = in.tensor();
  a.gamma = in.opt_tensor();
  a.beta = in.opt_tensor();
  a.scale = in.opt_tensor();
  a.shift = in.opt_tensor();
  a.groups = in.i64();
  a.silu = in.flag();
  a.eps = in.f64();
  if (a.x.dim() != 4) throw std::runtime_error("group_norm_act: x must be NHWC");
  a.n = a.x.size(0);
  a.h = a.x.size(1);
  a.w = a.x.size(2);
  a.c = a.x.size(3);
  if (a.c % a.groups != 0) throw std::runtime_error("group_norm_act: channels do not split into groups");
  if (a.scale.defined() != a.shift.defined()) throw std::runtime_error("group_norm_act: scale and shift go together");
  return a;
}

// The normalisation in per-sample, per-channel coefficients over [N, HW, C] (contiguous in NHWC): every pass is
// a reduction over positions or one elementwise pass, with no layout copies. (libtorch 1.13's own kernel is slow
// on channels-last inputs with few channels per group, and its backward assumes contiguous NCHW.)
struct GroupNormTerms {
  at::Tensor centered;        // x - mean of its group, [N, HW, C]
  at::Tensor mean;            // [N, G]
  at::Tensor rstd;            // 1 / sqrt(var + eps), [N, G]
  at::Tensor rstd_c;          // the same per channel, [N, C]
  at::Tensor scale_a;         // a = xhat * gamma + beta = centered * scale_a + beta, [N, C]
  at::Tensor one_plus;        // 1 + scale of the modulation, [N, C] (undefined without one)
};

// The terms from x, or from the mean and rstd [N, G] the forward pass computed.
GroupNormTerms group_norm_terms(const GroupNormArgs& a, at::Tensor mean = {}, at::Tensor rstd = {}) {
  const int64_t n = a.n, c = a.c, g = a.groups, cg = c / g;
  const double count = static_cast<double>(a.h * a.w * cg);
  at::Tensor x3 = a.x.reshape({n, a.h * a.w, c});
  GroupNormTerms t;
  // Two passes, as tfjs' moments: the mean, then the mean squared deviation (no E[x^2] - E[x]^2 cancellation).
  if (!mean.defined()) mean = x3.sum(1).view({n, g, cg}).sum(2).div_(count);
  t.mean = mean;
  t.centered = x3 - mean.repeat_interleave(cg, 1).view({n, 1, c});
  if (!rstd.defined()) {
    rstd = (t.centered * t.centered).sum(1).view({n, g, cg}).sum(2).div_(count).add_(a.eps).rsqrt_();
  }
  t.rstd = rstd;
  t.rstd_c = t.rstd.repeat_interleave(cg, 1);
  t.scale_a = a.gamma.defined() ? t.rstd_c * a.gamma : t.rstd_c;
  if (a.scale.defined()) t.one_plus = per_channel(a.scale, n, c).add(1.0);
  return t;
}

// m = a * (1 + scale) + shift, the input of the activation, as [N, HW, C], in one pass.
at::Tensor pre_activation(const GroupNormArgs& a, const GroupNormTerms& t) {
  at::Tensor mul = t.scale_a;
  at::Tensor add = a.beta.defined() ? a.beta.expand({a.n, a.c}) : at::zeros({a.n, a.c}, a.x.options());
  if (a.scale.defined()) {
    mul = mul * t.one_plus;
    add = add * t.one_plus + per_channel(a.shift, a.n, a.c);
  }
  return at::addcmul(add.view({a.n, 1, a.c}), t.centered, mul.view({a.n, 1, a.c}));
}

// group_norm_act(x, gamma?, beta?, scale?, shift?; groups, silu; eps) -> y, mean, rstd (the last two [N, G],
// for the gradient)
void op_group_norm_act(Args& in, Out& out) {
  GroupNormArgs a = read_group_norm(in);
  const GroupNormTerms t = group_norm_terms(a);
  at::Tensor m = pre_activation(a, t);
  out.push((a.silu ? at::silu_(m) : m).view(a.x.sizes()));
  out.push(t.mean);
  out.push(t.rstd);
}

// group_norm_act_grad(dy, mean, rstd, x, gamma?, beta?, scale?, shift?; groups, silu; eps) -> dx, then dgamma, dbeta,
// dscale, dshift for the ones given. Every sum over positions is one of sum(dm) and sum(dm * centered) per
// channel, and dx = rstd * (da * gamma - mean_g(da * gamma) - xhat * mean_g(da * gamma * xhat)) is one pass with
// per-channel coefficients (da = dm * (1 + scale), dm the gradient at the activation's input).
void op_group_norm_act_grad(Args& in, Out& out) {
  const at::Tensor& dy = in.tensor();
  const at::Tensor& mean = in.tensor();
  const at::Tensor& rstd = in.tensor();
  GroupNormArgs a = read_group_norm(in);
  const int64_t n = a.n, c = a.c, g = a.groups, cg = c / g, hw = a.h * a.w;
  const GroupNormTerms t = group_norm_terms(a, mean, rstd);
  at::Tensor dy3 = dy.reshape({n, hw, c});
  const at::Tensor dm = a.silu ? at::silu_backward(dy3, pre_activation(a, t)) : dy3;
  at::Tensor sum_dm = dm.sum(1);                         // [N, C]
  at::Tensor sum_dm_centered = (dm * t.centered).sum(1);  // [N, C]
  at::Tensor sum_da = a.scale.defined() ? sum_dm * t.one_plus : sum_dm;
  at::Tensor sum_da_xhat = t.rstd_c * (a.scale.defined() ? sum_dm_centered * t.one_plus : sum_dm_centered);
  at::Tensor gamma = a.gamma.defined() ? a.gamma : at::ones({c}, a.x.options());
  const double count = static_cast<double>(hw * cg);
  at::Tensor mean_dn = (gamma * sum_da).view({n, g, cg}).sum(2).div_(count);            // [N, G]
  at::Tensor mean_dn_xhat = (gamma * sum_da_xhat).view({n, g, cg}).sum(2).div_(count);  // [N, G]
  at::Tensor coef_dm = t.rstd_c * gamma;                                                  // [N, C]
  if (a.scale.defined()) coef_dm = coef_dm * t.one_plus;
  at::Tensor coef_centered = (-t.rstd * t.rstd * mean_dn_xhat).repeat_interleave(cg, 1);
  at::Tensor offset = (-t.rstd * mean_dn).repeat_interleave(cg, 1);
  at::Tensor dx = at::addcmul(at::addcmul(offset.view({n, 1, c}), t.centered, coef_centered.view({n, 1, c})), dm,
                              coef_dm.view({n, 1, c}));
  out.push(dx.view(a.x.sizes()));
  if (a.gamma.defined()) out.push(sum_da_xhat.sum(0));
  if (a.beta.defined()) out.push(sum_da.sum(0));
  if (a.scale.defined()) {
    // a = centered * scale_a + beta: d/dscale sum(dm * a), d/dshift sum(dm).
    at::Tensor dscale = t.scale_a * sum_dm_centered;
    if (a.beta.defined()) dscale = dscale + a.beta * sum_dm;
    out.push(dscale.view(a.scale.sizes()));
    out.push(sum_dm.view(a.shift.sizes()));
  }
}

// ---------------------------------------------------------------------------
// Attention: q, k, v [B, L, D]; weights softmax(q k^T * scale) over the keys.

// attention(q, k, v; scale) -> softmax(q k^T * scale) v
void op_attention(Args& in, Out& out) {
  const at::Tensor& q = in.tensor();
  const at::Tensor& k = in.tensor();
  const at::Tensor& v = in.tensor();
  double scale = in.f64();
  at::Tensor weights = at::softmax(at::bmm(q, k.transpose(1, 2)).mul_(scale), -1);
  out.push(at::bmm(weights, v));
}

// attention_grad(dy, q, k, v; scale) -> dq, dk, dv (the weights are recomputed, not stored)
void op_attention_grad(Args& in, Out& out) {
  const at::Tensor& dy = in.tensor();
  const at::Tensor& q = in.tensor();
  const at::Tensor& k = in.tensor();
  const at::Tensor& v = in.tensor();
  double scale = in.f64();
  at::Tensor weights = at::softmax(at::bmm(q, k.transpose(1, 2)).mul_(scale), -1);
  at::Tensor dweights = at::bmm(dy, v.transpose(1, 2));
  at::Tensor dlogits = at::_softmax_backward_data(dweights, weights, -1, weights.scalar_type()).mul_(scale);
  out.push(at::bmm(dlogits, k));
  out.push(at::bmm(dlogits.transpose(1, 2), q));
  out.push(at::bmm(weights.transpose(1, 2), dy));
}

// ---------------------------------------------------------------------------
// Optimiser and EMA over whole networks.

// adam_step([params, grads, m, v]: one length-prefixed list of 4n tensors; lr, beta1, beta2, eps, weight decay,
//           clip norm, c1, c2) -> params'[n], m'[n], v'[n], the gradient norm before clipping.
// AdamW with bias corrections c1 = 1 - beta1^t, c2 = 1 - beta2^t and the global norm clipped to `clip norm`
// (0: off), by a factor computed on the device.
void op_adam_step(Args& in, Out& out) {
  std::vector<at::Tensor> all = in.tensor_list();
  if (all.empty() || all.size() % 4 != 0) throw std::runtime_error("adam_step: expected 4n tensors");
  const size_t count = all.size() / 4;
  auto part = [&](size_t k) {
    return std::vector<at::Tensor>(all.begin() + static_cast<std::ptrdiff_t>(k * count),
                                   all.begin() + static_cast<std::ptrdiff_t>((k + 1) * count));
  };
  std::vector<at::Tensor> params = part(0), grads = part(1), ms = part(2), vs = part(3);
  const double lr = in.f64(), beta1 = in.f64(), beta2 = in.f64(), eps = in.f64(), decay = in.f64();
  const double clip_norm = in.f64(), c1 = in.f64(), c2 = in.f64();
  at::Tensor norm = at::stack(at::_foreach_norm(grads)).norm();
  std::vector<at::Tensor> next_p(count), next_m(count), next_v(count);
  if (device().is_cpu()) {
    // On the CPU the norm is in host memory (reading it waits for nothing) and one loop per tensor does the
    // update, instead of eight library calls each with its own temporary.
    const float n = norm.item<float>();
    const float clip = clip_norm > 0 ? std::min(1.0f, static_cast<float>(clip_norm) / n) : 1.0f;
    const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2);
    const float keep = decay > 0 ? static_cast<float>(1 - lr * decay) : 1.0f;
    const float flr = static_cast<float>(lr), fc1 = static_cast<float>(c1), fc2 = static_cast<float>(c2);
    const float feps = static_cast<float>(eps);
    for (size_t k = 0; k < count; ++k) {
      at::Tensor p = params[k].contiguous(), g = grads[k].contiguous();
      at::Tensor m = ms[k].contiguous(), v = vs[k].contiguous();
      next_p[k] = at::empty_like(p);
      next_m[k] = at::empty_like(m);
      next_v[k] = at::empty_like(v);
      const float *pp = p.data_ptr<float>(), *gp = g.data_ptr<float>();
      const float *mp = m.data_ptr<float>(), *vp = v.data_ptr<float>();
      float *po = next_p[k].data_ptr<float>(), *mo = next_m[k].data_ptr<float>(), *vo = next_v[k].data_ptr<float>();
      at::parallel_for(0, p.numel(), 16384, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const float gc = gp[i] * clip;
          const float mi = mp[i] * b1 + gc * (1 - b1);
          const float vi = vp[i] * b2 + gc * gc * (1 - b2);
          mo[i] = mi;
          vo[i] = vi;
          po[i] = pp[i] * keep - (mi / fc1) / (std::sqrt(vi / fc2) + feps) * flr;
        }
      });
    }
  } else {
    at::Tensor clip;
    if (clip_norm > 0) clip = at::clamp_max(at::reciprocal(norm).mul_(clip_norm), 1.0);
    for (size_t k = 0; k < count; ++k) {
      at::Tensor gc = clip.defined() ? grads[k] * clip : grads[k];
      next_m[k] = at::add(ms[k] * beta1, gc * (1 - beta1));
      next_v[k] = at::add(vs[k] * beta2, gc.square() * (1 - beta2));
      at::Tensor step = (next_m[k] / c1).div_((next_v[k] / c2).sqrt_().add_(eps));
      at::Tensor p = decay > 0 ? params[k] * (1 - lr * decay) : params[k];
      next_p[k] = p - step.mul_(lr);
    }
  }
  for (auto& t : next_p) out.push(t);
  for (auto& t : next_m) out.push(t);
  for (auto& t : next_v) out.push(t);
  out.push(norm);
}

// ema_step([average, source]: one length-prefixed list of 2n tensors; beta)
//   -> average * beta + source * (1 - beta), for each pair
void op_ema_step(Args& in, Out& out) {
  std::vector<at::Tensor> all = in.tensor_list();
  if (all.size() % 2 != 0) throw std::runtime_error("ema_step: expected 2n tensors");
  const size_t count = all.size() / 2;
  const double beta = in.f64();
  for (size_t k = 0; k < count; ++k) out.push(at::add(all[k] * beta, all[count + k] * (1 - beta)));
}

}  // namespace

void register_fused_ops() {
  register_op("group_norm_act", op_group_norm_act);
  register_op("group_norm_act_grad", op_group_norm_act_grad);
  register_op("attention", op_attention);
  register_op("attention_grad", op_attention_grad);
  register_op("adam_step", op_adam_step);
  register_op("ema_step", op_ema_step);
}

}  // namespace ladder
