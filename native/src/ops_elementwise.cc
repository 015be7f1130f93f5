// Elementwise ops: unary math, binary arithmetic/comparison with broadcasting, cast, select, clip.
#include <cmath>
#include <limits>

#include "common.h"

namespace ladder {
namespace {

// Every elementwise op ends with a cast to the dtype tfjs expects (JS passes its code last).
at::Tensor to_code(const at::Tensor& t, int32_t code) {
  at::ScalarType want = dtype_from_code(code);
  return t.scalar_type() == want ? t : t.to(want);
}

// Unary op whose torch kernel accepts the input dtype as is.
#define UNARY_NATIVE(NAME, EXPR)                       \
  void NAME(Args& in, Out& out) {                      \
    const at::Tensor& x = in.tensor();                 \
    int32_t code = in.i32();                           \
    out.push(to_code(EXPR, code));                     \
  }
// Unary op computed in float (ints are converted first).
#define UNARY_FLOAT(NAME, EXPR)                        \
  void NAME(Args& in, Out& out) {                      \
    at::Tensor x = as_float(in.tensor());              \
    int32_t code = in.i32();                           \
    out.push(to_code(EXPR, code));                     \
  }

UNARY_NATIVE(op_neg, at::neg(x))
UNARY_NATIVE(op_abs, at::abs(x))
UNARY_NATIVE(op_square, at::mul(x, x))
UNARY_NATIVE(op_relu, at::relu(x))
UNARY_NATIVE(op_sign, at::sign(x))
UNARY_NATIVE(op_identity, x)
UNARY_NATIVE(op_logical_not, at::logical_not(x))
UNARY_NATIVE(op_zeros_like, at::zeros(x.sizes(), x.options()))
UNARY_NATIVE(op_ones_like, at::ones(x.sizes(), x.options()))
UNARY_FLOAT(op_exp, at::exp(x))
UNARY_FLOAT(op_log, at::log(x))
UNARY_FLOAT(op_sqrt, at::sqrt(x))
UNARY_FLOAT(op_rsqrt, at::rsqrt(x))
UNARY_FLOAT(op_sigmoid, at::sigmoid(x))
UNARY_FLOAT(op_tanh, at::tanh(x))
UNARY_FLOAT(op_relu6, at::clamp(x, 0.0, 6.0))
UNARY_FLOAT(op_elu, at::elu(x))
UNARY_FLOAT(op_selu, at::selu(x))
UNARY_FLOAT(op_sin, at::sin(x))
UNARY_FLOAT(op_cos, at::cos(x))
UNARY_FLOAT(op_tan, at::tan(x))
UNARY_FLOAT(op_asin, at::asin(x))
UNARY_FLOAT(op_acos, at::acos(x))
UNARY_FLOAT(op_atan, at::atan(x))
UNARY_FLOAT(op_sinh, at::sinh(x))
UNARY_FLOAT(op_cosh, at::cosh(x))
UNARY_FLOAT(op_asinh, at::asinh(x))
UNARY_FLOAT(op_acosh, at::acosh(x))
UNARY_FLOAT(op_atanh, at::atanh(x))
UNARY_FLOAT(op_softplus, at::softplus(x, 1, 20))
UNARY_FLOAT(op_floor, at::floor(x))
UNARY_FLOAT(op_ceil, at::ceil(x))
UNARY_FLOAT(op_round, at::round(x))  // half to even, as tfjs
UNARY_FLOAT(op_isnan, at::isnan(x))
UNARY_FLOAT(op_isinf, at::isinf(x))
UNARY_FLOAT(op_isfinite, at::isfinite(x))
UNARY_FLOAT(op_reciprocal, at::reciprocal(x))
UNARY_FLOAT(op_erf, at::erf(x))
UNARY_FLOAT(op_log1p, at::log1p(x))
UNARY_FLOAT(op_expm1, at::expm1(x))

// leaky_relu(x, code; alpha): x < 0 ? alpha * x : x.
void op_leaky_relu(Args& in, Out& out) {
  at::Tensor x = as_float(in.tensor());
  int32_t code = in.i32();
  double alpha = in.f64();
  out.push(to_code(at::where(x < 0, x * alpha, x), code));
}

// step(x, code; alpha): x > 0 ? 1 : alpha, NaN stays NaN.
void op_step(Args& in, Out& out) {
  at::Tensor x = as_float(in.tensor());
  int32_t code = in.i32();
  double alpha = in.f64();
  at::Tensor y = at::where(x > 0, at::ones_like(x), at::full_like(x, alpha));
  out.push(to_code(at::where(at::isnan(x), x, y), code));
}

// clip(x, code; lo, hi)
void op_clip(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  int32_t code = in.i32();
  double lo = in.f64();
  double hi = in.f64();
  at::Tensor y = at::isFloatingType(x.scalar_type()) ? at::clamp(x, lo, hi) : at::clamp(as_float(x), lo, hi);
  out.push(to_code(y, code));
}

// cast(x, code): float -> int truncates toward zero; any -> bool is x != 0.
void op_cast(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  int32_t code = in.i32();
  at::ScalarType want = dtype_from_code(code);
  if (want == at::kBool) {
    out.push(x.scalar_type() == at::kBool ? x : x != 0);
    return;
  }
  out.push(to_code(x, code));
}

// elu_grad(dy, y, code): dy * (y < 0 ? y + 1 : 1).
void op_elu_grad(Args& in, Out& out) {
  const at::Tensor& dy = in.tensor();
  const at::Tensor& y = in.tensor();
  int32_t code = in.i32();
  out.push(to_code(at::where(y < 0, dy * (y + 1), dy), code));
}

// ---------------------------------------------------------------------------
// Binary ops (inputs broadcast numpy-style).

#define BINARY(NAME, EXPR)                             \
  void NAME(Args& in, Out& out) {                      \
    const at::Tensor& a = in.tensor();                 \
    const at::Tensor& b = in.tensor();                 \
    int32_t code = in.i32();                           \
    out.push(to_code(EXPR, code));                     \
  }

BINARY(op_add, at::add(a, b))
BINARY(op_sub, at::sub(a, b))
BINARY(op_mul, at::mul(a, b))
BINARY(op_div, at::div(as_float(a), as_float(b)))
BINARY(op_floor_div, at::div(a, b, "floor"))
BINARY(op_mod, at::remainder(a, b))
BINARY(op_maximum, at::maximum(a, b))
BINARY(op_minimum, at::minimum(a, b))
BINARY(op_pow, at::pow(a, b))
BINARY(op_squared_difference, at::square(at::sub(a, b)))
BINARY(op_atan2, at::atan2(as_float(a), as_float(b)))
BINARY(op_equal, at::eq(a, b))
BINARY(op_not_equal, at::ne(a, b))
BINARY(op_greater, at::gt(a, b))
BINARY(op_greater_equal, at::ge(a, b))
BINARY(op_less, at::lt(a, b))
BINARY(op_less_equal, at::le(a, b))
BINARY(op_logical_and, at::logical_and(a, b))
BINARY(op_logical_or, at::logical_or(a, b))
BINARY(op_logical_xor, at::logical_xor(a, b))
BINARY(op_prelu, at::where(a < 0, a * b, a))

// select(cond, t, e, code): cond ? t : e. A rank-1 cond picks whole rows of t/e (tfjs rule).
void op_select(Args& in, Out& out) {
  at::Tensor cond = in.tensor();
  const at::Tensor& t = in.tensor();
  const at::Tensor& e = in.tensor();
  int32_t code = in.i32();
  if (cond.dim() == 1 && t.dim() > 1) {
    std::vector<int64_t> shape(static_cast<size_t>(t.dim()), 1);
    shape[0] = cond.size(0);
    cond = cond.reshape(shape);
  }
  if (cond.scalar_type() != at::kBool) cond = cond != 0;
  out.push(to_code(at::where(cond, t, e), code));
}

// add_n(list, code)
void op_add_n(Args& in, Out& out) {
  std::vector<at::Tensor> xs = in.tensor_list();
  int32_t code = in.i32();
  if (xs.empty()) throw std::runtime_error("add_n needs at least one tensor");
  at::Tensor acc = xs[0];
  for (size_t k = 1; k < xs.size(); ++k) acc = at::add(acc, xs[k]);
  out.push(to_code(acc, code));
}

}  // namespace

void register_elementwise_ops() {
  register_op("neg", op_neg);
  register_op("abs", op_abs);
  register_op("square", op_square);
  register_op("relu", op_relu);
  register_op("sign", op_sign);
  register_op("identity", op_identity);
  register_op("logical_not", op_logical_not);
  register_op("zeros_like", op_zeros_like);
  register_op("ones_like", op_ones_like);
  register_op("exp", op_exp);
  register_op("log", op_log);
  register_op("sqrt", op_sqrt);
  register_op("rsqrt", op_rsqrt);
  register_op("sigmoid", op_sigmoid);
  register_op("tanh", op_tanh);
  register_op("relu6", op_relu6);
  register_op("elu", op_elu);
  register_op("selu", op_selu);
  register_op("sin", op_sin);
  register_op("cos", op_cos);
  register_op("tan", op_tan);
  register_op("asin", op_asin);
  register_op("acos", op_acos);
  register_op("atan", op_atan);
  register_op("sinh", op_sinh);
  register_op("cosh", op_cosh);
  register_op("asinh", op_asinh);
  register_op("acosh", op_acosh);
  register_op("atanh", op_atanh);
  register_op("softplus", op_softplus);
  register_op("floor", op_floor);
  register_op("ceil", op_ceil);
  register_op("round", op_round);
  register_op("isnan", op_isnan);
  register_op("isinf", op_isinf);
  register_op("isfinite", op_isfinite);
  register_op("reciprocal", op_reciprocal);
  register_op("erf", op_erf);
  register_op("log1p", op_log1p);
  register_op("expm1", op_expm1);
  register_op("leaky_relu", op_leaky_relu);
  register_op("step", op_step);
  register_op("clip", op_clip);
  register_op("cast", op_cast);
  register_op("elu_grad", op_elu_grad);
  register_op("add", op_add);
  register_op("sub", op_sub);
  register_op("mul", op_mul);
  register_op("div", op_div);
  register_op("floor_div", op_floor_div);
  register_op("mod", op_mod);
  register_op("maximum", op_maximum);
  register_op("minimum", op_minimum);
  register_op("pow", op_pow);
  register_op("squared_difference", op_squared_difference);
  register_op("atan2", op_atan2);
  register_op("equal", op_equal);
  register_op("not_equal", op_not_equal);
  register_op("greater", op_greater);
  register_op("greater_equal", op_greater_equal);
  register_op("less", op_less);
  register_op("less_equal", op_less_equal);
  register_op("logical_and", op_logical_and);
  register_op("logical_or", op_logical_or);
  register_op("logical_xor", op_logical_xor);
  register_op("prelu", op_prelu);
  register_op("select", op_select);
  register_op("add_n", op_add_n);
}

}  // namespace ladder
