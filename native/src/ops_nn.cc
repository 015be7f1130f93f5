// Network ops: matmul (+fused), conv2d / depthwise (+fused) and their input/filter gradients,
// max/avg pooling and gradients, resize (bilinear/nearest) and gradients, batch norm, einsum.
// Images arrive NHWC; convs and pools see them through NCHW permute views, which libtorch treats
// as channels_last, so no layout copies are made.
#include <cmath>
#include <limits>

#include "common.h"

namespace ladder {
namespace {

at::Tensor nchw(const at::Tensor& x) { return x.permute({0, 3, 1, 2}); }
at::Tensor nhwc(const at::Tensor& x) { return x.permute({0, 2, 3, 1}); }

// Fused activations, codes as in the JS side: linear, relu, relu6, prelu, leakyrelu, sigmoid, elu.
at::Tensor activate(const at::Tensor& y, int32_t act, const at::Tensor& prelu, double alpha) {
  switch (act) {
    case 0: return y;
    case 1: return at::relu(y);
    case 2: return at::clamp(y, 0.0, 6.0);
    case 3: return at::where(y < 0, y * prelu, y);
    case 4: return at::where(y < 0, y * alpha, y);
    case 5: return at::sigmoid(y);
    case 6: return at::elu(y);
    default: throw std::runtime_error("unknown fused activation code " + std::to_string(act));
  }
}

// ---------------------------------------------------------------------------
// Matmul.

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, bool ta, bool tb) {
  return at::matmul(ta ? a.transpose(-2, -1) : a, tb ? b.transpose(-2, -1) : b);
}

// matmul(a, b, transpose_a, transpose_b)
void op_matmul(Args& in, Out& out) {
  const at::Tensor& a = in.tensor();
  const at::Tensor& b = in.tensor();
  bool ta = in.flag();
  bool tb = in.flag();
  out.push(matmul(a, b, ta, tb));
}

// fused_matmul(a, b, bias?, prelu?, transpose_a, transpose_b, act; alpha)
void op_fused_matmul(Args& in, Out& out) {
  const at::Tensor& a = in.tensor();
  const at::Tensor& b = in.tensor();
  at::Tensor bias = in.opt_tensor();
  at::Tensor prelu = in.opt_tensor();
  bool ta = in.flag();
  bool tb = in.flag();
  int32_t act = in.i32();
  double alpha = in.f64();
  at::Tensor y = matmul(a, b, ta, tb);
  if (bias.defined()) y = y + bias;
  out.push(activate(y, act, prelu, alpha));
}

// ---------------------------------------------------------------------------
// Convolution. tfjs pads may be asymmetric ('same' with stride 2 pads the bottom/right more);
// torch pads symmetrically, so the symmetric part goes to the conv and the rest is explicit.

struct Geom {
  int64_t sh, sw, pt, pb, pl, pr, dh, dw;
  bool depthwise;
  int64_t sym_h() const { return std::min(pt, pb); }
  int64_t sym_w() const { return std::min(pl, pr); }
  int64_t extra_t() const { return pt - sym_h(); }
  int64_t extra_b() const { return pb - sym_h(); }
  int64_t extra_l() const { return pl - sym_w(); }
  int64_t extra_r() const { return pr - sym_w(); }
  bool has_extra() const { return extra_t() + extra_b() + extra_l() + extra_r() > 0; }
  std::vector<int64_t> extra() const { return {extra_l(), extra_r(), extra_t(), extra_b()}; }
};

// strides(2), pads top/bottom/left/right, dilations(2), depthwise flag.
Geom read_geom(Args& in) {
  Geom g{};
  g.sh = in.i64();
  g.sw = in.i64();
  g.pt = in.i64();
  g.pb = in.i64();
  g.pl = in.i64();
  g.pr = in.i64();
  g.dh = in.i64();
  g.dw = in.i64();
  g.depthwise = in.flag();
  return g;
}

// HWIO filter -> OIHW; depthwise [fh, fw, C, M] -> [C*M, 1, fh, fw]. Channels-last weights make
// libtorch pick its channels-last conv path even when the input layout is ambiguous (C == 1).
at::Tensor torch_weight(const at::Tensor& w, bool depthwise) {
  at::Tensor t = depthwise ? w.reshape({w.size(0), w.size(1), -1}).permute({2, 0, 1}).unsqueeze(1)
                           : w.permute({3, 2, 0, 1});
  return as_float(t).contiguous(at::MemoryFormat::ChannelsLast);
}

at::Tensor padded_input(const at::Tensor& x, const Geom& g, double value = 0) {
  at::Tensor xc = nchw(as_float(x));
  return g.has_extra() ? at::constant_pad_nd(xc, g.extra(), value) : xc;
}

// conv2d(x, w, bias?, prelu?, geom, act, out_h, out_w; alpha)
void op_conv2d(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  const at::Tensor& w = in.tensor();
  at::Tensor bias = in.opt_tensor();
  at::Tensor prelu = in.opt_tensor();
  Geom g = read_geom(in);
  int32_t act = in.i32();
  int64_t out_h = in.i64();
  int64_t out_w = in.i64();
  double alpha = in.f64();
  at::Tensor wc = torch_weight(w, g.depthwise);
  int64_t groups = g.depthwise ? x.size(3) : 1;
  bool bias_in_conv = bias.defined() && bias.dim() == 1 && bias.size(0) == wc.size(0);
  c10::optional<at::Tensor> conv_bias;
  if (bias_in_conv) conv_bias = as_float(bias);
  at::Tensor y = at::convolution(padded_input(x, g), wc, conv_bias, {g.sh, g.sw}, {g.sym_h(), g.sym_w()},
                                 {g.dh, g.dw}, false, {0, 0}, groups);
  if (y.size(2) != out_h || y.size(3) != out_w) {
    throw std::runtime_error("conv output " + std::to_string(y.size(2)) + "x" + std::to_string(y.size(3)) +
                             " differs from tfjs' " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                             " (unsupported dimRoundingMode/padding combination)");
  }
  y = nhwc(y);
  if (bias.defined() && !bias_in_conv) y = y + bias;
  out.push(activate(y, act, prelu, alpha));
}

// conv2d_backprop_input(dy, w, input_shape[4], geom): dL/dx, NHWC.
void op_conv2d_backprop_input(Args& in, Out& out) {
  const at::Tensor& dy = in.tensor();
  const at::Tensor& w = in.tensor();
  std::vector<int64_t> shape = in.ints_list();
  Geom g = read_geom(in);
  at::Tensor wc = torch_weight(w, g.depthwise);
  int64_t n = shape[0], h = shape[1], wd = shape[2], c = shape[3];
  // Only the input's shape and layout matter for dL/dx, so an uninitialised placeholder does.
  at::Tensor placeholder =
      at::empty({n, c, h + g.extra_t() + g.extra_b(), wd + g.extra_l() + g.extra_r()},
                opts(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  auto grads = at::convolution_backward(nchw(as_float(dy)), placeholder, wc, c10::nullopt, {g.sh, g.sw},
                                        {g.sym_h(), g.sym_w()}, {g.dh, g.dw}, false, {0, 0},
                                        g.depthwise ? c : 1, {true, false, false});
  at::Tensor dx = std::get<0>(grads);
  if (g.has_extra()) dx = dx.narrow(2, g.extra_t(), h).narrow(3, g.extra_l(), wd);
  out.push(nhwc(dx));
}

// conv2d_backprop_filter(x, dy, filter_shape[4], geom): dL/dw in tfjs filter layout.
void op_conv2d_backprop_filter(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  const at::Tensor& dy = in.tensor();
  std::vector<int64_t> fs = in.ints_list();
  Geom g = read_geom(in);
  std::vector<int64_t> torch_shape =
      g.depthwise ? std::vector<int64_t>{fs[2] * fs[3], 1, fs[0], fs[1]} : std::vector<int64_t>{fs[3], fs[2], fs[0], fs[1]};
  at::Tensor placeholder = at::empty(torch_shape, opts(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  auto grads = at::convolution_backward(nchw(as_float(dy)), padded_input(x, g), placeholder, c10::nullopt,
                                        {g.sh, g.sw}, {g.sym_h(), g.sym_w()}, {g.dh, g.dw}, false, {0, 0},
                                        g.depthwise ? x.size(3) : 1, {false, true, false});
  at::Tensor dw = std::get<1>(grads);
  if (g.depthwise) {
    dw = dw.squeeze(1).permute({1, 2, 0}).reshape(fs);
  } else {
    dw = dw.permute({2, 3, 1, 0});
  }
  // Filters are small and feed optimiser updates: keep them dense.
  out.push(dw.contiguous());
}

// ---------------------------------------------------------------------------
// Pooling. Args: x or (dy, x), then kernel h/w, strides h/w, pads top/bottom/left/right.

struct Pool {
  int64_t kh, kw, sh, sw, pt, pb, pl, pr;
  bool padded() const { return pt + pb + pl + pr > 0; }
  std::vector<int64_t> pads() const { return {pl, pr, pt, pb}; }
};

Pool read_pool(Args& in) {
  Pool p{};
  p.kh = in.i64();
  p.kw = in.i64();
  p.sh = in.i64();
  p.sw = in.i64();
  p.pt = in.i64();
  p.pb = in.i64();
  p.pl = in.i64();
  p.pr = in.i64();
  return p;
}

at::Tensor pool_input(const at::Tensor& x, const Pool& p, double value) {
  at::Tensor xc = nchw(as_float(x));
  return p.padded() ? at::constant_pad_nd(xc, p.pads(), value) : xc;
}

at::Tensor unpad(const at::Tensor& dx, const Pool& p, int64_t h, int64_t w) {
  return p.padded() ? dx.narrow(2, p.pt, h).narrow(3, p.pl, w) : dx;
}

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

void op_max_pool(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  Pool p = read_pool(in);
  at::Tensor y = at::max_pool2d(pool_input(x, p, kNegInf), {p.kh, p.kw}, {p.sh, p.sw}, {0, 0}, {1, 1}, false);
  out.push(nhwc(y));
}

// max_pool_grad(dy, x, pool): dy goes to the first maximum of each window (as tfjs).
void op_max_pool_grad(Args& in, Out& out) {
  const at::Tensor& dy = in.tensor();
  const at::Tensor& x = in.tensor();
  Pool p = read_pool(in);
  at::Tensor xp = pool_input(x, p, kNegInf);
  auto yi = at::max_pool2d_with_indices(xp, {p.kh, p.kw}, {p.sh, p.sw}, {0, 0}, {1, 1}, false);
  at::Tensor dx = at::max_pool2d_with_indices_backward(nchw(as_float(dy)), xp, {p.kh, p.kw}, {p.sh, p.sw}, {0, 0},
                                                       {1, 1}, false, std::get<1>(yi));
  out.push(nhwc(unpad(dx, p, x.size(1), x.size(2))));
}

// Number of real (unpadded) pixels under each window: tfjs averages over those only.
at::Tensor window_counts(const at::Tensor& x, const Pool& p) {
  at::Tensor ones = at::ones({1, 1, x.size(1), x.size(2)}, opts(at::kFloat));
  return at::avg_pool2d(at::constant_pad_nd(ones, p.pads(), 0), {p.kh, p.kw}, {p.sh, p.sw}, {0, 0}, false, true, 1);
}

void op_avg_pool(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  Pool p = read_pool(in);
  at::Tensor xp = pool_input(x, p, 0);
  at::Tensor y;
  if (!p.padded()) {
    y = at::avg_pool2d(xp, {p.kh, p.kw}, {p.sh, p.sw}, {0, 0}, false, true, c10::nullopt);
  } else {
    y = at::avg_pool2d(xp, {p.kh, p.kw}, {p.sh, p.sw}, {0, 0}, false, true, 1) / window_counts(x, p);
  }
  out.push(nhwc(y));
}

void op_avg_pool_grad(Args& in, Out& out) {
  const at::Tensor& dy = in.tensor();
  const at::Tensor& x = in.tensor();
  Pool p = read_pool(in);
  at::Tensor xp = pool_input(x, p, 0);
  at::Tensor dyc = nchw(as_float(dy));
  at::Tensor dx;
  if (!p.padded()) {
    dx = at::avg_pool2d_backward(dyc, xp, {p.kh, p.kw}, {p.sh, p.sw}, {0, 0}, false, true, c10::nullopt);
  } else {
    dx = at::avg_pool2d_backward(dyc / window_counts(x, p), xp, {p.kh, p.kw}, {p.sh, p.sw}, {0, 0}, false, true, 1);
  }
  out.push(nhwc(unpad(dx, p, x.size(1), x.size(2))));
}

// ---------------------------------------------------------------------------
// Resize. JS computes, per output row/column, the source indices (and lerp weights) with tfjs'
// formulas; here they are applied as separable gathers, and scattered back for the gradient.

at::Tensor index_tensor(Args& in) { return upload(at::tensor(in.ints_list(), at::kLong)); }

at::Tensor weight_tensor(Args& in, std::vector<int64_t> view) {
  return upload(at::tensor(in.floats_list(), at::kDouble).to(at::kFloat)).view(view);
}

struct BilinearAxis {
  at::Tensor lo, hi, frac;
};

BilinearAxis read_bilinear_axis(Args& in, int64_t dim) {
  std::vector<int64_t> view{1, 1, 1, 1};
  view[static_cast<size_t>(dim)] = -1;
  BilinearAxis a;
  a.lo = index_tensor(in);
  a.hi = index_tensor(in);
  a.frac = weight_tensor(in, view);
  return a;
}

at::Tensor lerp_axis(const at::Tensor& x, const BilinearAxis& a, int64_t dim) {
  at::Tensor lo = x.index_select(dim, a.lo);
  return lo + (x.index_select(dim, a.hi) - lo) * a.frac;
}

at::Tensor lerp_axis_adjoint(const at::Tensor& dy, const BilinearAxis& a, int64_t dim, int64_t size) {
  std::vector<int64_t> shape(dy.sizes().begin(), dy.sizes().end());
  shape[static_cast<size_t>(dim)] = size;
  at::Tensor dx = at::zeros(shape, dy.options());
  dx.index_add_(dim, a.lo, dy * (1 - a.frac));
  dx.index_add_(dim, a.hi, dy * a.frac);
  return dx;
}

// resize_bilinear(x, rows: lo, hi, frac; cols: lo, hi, frac) — columns first, as tfjs.
void op_resize_bilinear(Args& in, Out& out) {
  at::Tensor x = as_float(in.tensor());
  BilinearAxis rows = read_bilinear_axis(in, 1);
  BilinearAxis cols = read_bilinear_axis(in, 2);
  out.push(lerp_axis(lerp_axis(x, cols, 2), rows, 1));
}

// resize_bilinear_grad(dy, in_h, in_w, rows..., cols...)
void op_resize_bilinear_grad(Args& in, Out& out) {
  at::Tensor dy = as_float(in.tensor());
  int64_t h = in.i64();
  int64_t w = in.i64();
  BilinearAxis rows = read_bilinear_axis(in, 1);
  BilinearAxis cols = read_bilinear_axis(in, 2);
  out.push(lerp_axis_adjoint(lerp_axis_adjoint(dy, rows, 1, h), cols, 2, w));
}

// resize_nearest(x, row_idx, col_idx)
void op_resize_nearest(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  at::Tensor rows = index_tensor(in);
  at::Tensor cols = index_tensor(in);
  out.push(x.index_select(1, rows).index_select(2, cols));
}

// resize_nearest_grad(dy, in_h, in_w, row_idx, col_idx)
void op_resize_nearest_grad(Args& in, Out& out) {
  const at::Tensor& dy = in.tensor();
  int64_t h = in.i64();
  int64_t w = in.i64();
  at::Tensor rows = index_tensor(in);
  at::Tensor cols = index_tensor(in);
  at::Tensor d1 = at::zeros({dy.size(0), h, dy.size(2), dy.size(3)}, dy.options());
  d1.index_add_(1, rows, dy);
  at::Tensor dx = at::zeros({dy.size(0), h, w, dy.size(3)}, dy.options());
  dx.index_add_(2, cols, d1);
  out.push(dx);
}

// ---------------------------------------------------------------------------
// batch_norm(x, mean, variance, offset?, scale?; eps)
void op_batch_norm(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  const at::Tensor& mean = in.tensor();
  const at::Tensor& var = in.tensor();
  at::Tensor offset = in.opt_tensor();
  at::Tensor scale = in.opt_tensor();
  double eps = in.f64();
  at::Tensor inv = at::rsqrt(var + eps);
  if (scale.defined()) inv = inv * scale;
  at::Tensor y = (x - mean) * inv;
  if (offset.defined()) y = y + offset;
  out.push(y);
}

// einsum(list, equation)
void op_einsum(Args& in, Out& out) {
  std::vector<at::Tensor> xs = in.tensor_list();
  std::string eq = in.str();
  out.push(at::einsum(eq, xs));
}

}  // namespace

void register_nn_ops() {
  register_op("matmul", op_matmul);
  register_op("fused_matmul", op_fused_matmul);
  register_op("conv2d", op_conv2d);
  register_op("conv2d_backprop_input", op_conv2d_backprop_input);
  register_op("conv2d_backprop_filter", op_conv2d_backprop_filter);
  register_op("max_pool", op_max_pool);
  register_op("max_pool_grad", op_max_pool_grad);
  register_op("avg_pool", op_avg_pool);
  register_op("avg_pool_grad", op_avg_pool_grad);
  register_op("resize_bilinear", op_resize_bilinear);
  register_op("resize_bilinear_grad", op_resize_bilinear_grad);
  register_op("resize_nearest", op_resize_nearest);
  register_op("resize_nearest_grad", op_resize_nearest_grad);
  register_op("batch_norm", op_batch_norm);
  register_op("einsum", op_einsum);
}

}  // namespace ladder
