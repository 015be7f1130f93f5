// Reductions (sum, mean, max, min, prod, all, any, arg max/min), softmax, cumulative sums.
#include <algorithm>

#include "common.h"

namespace ladder {
namespace {

// Reductions over an empty axis list are the identity (torch would reduce everything).
at::Tensor fold_dims(at::Tensor x, const std::vector<int64_t>& dims, bool keep,
                     at::Tensor (*one)(const at::Tensor&, int64_t, bool)) {
  std::vector<int64_t> sorted = dims;
  std::sort(sorted.begin(), sorted.end());
  for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) x = one(x, *it, keep);
  return x;
}

at::Tensor prod_one(const at::Tensor& x, int64_t d, bool keep) { return at::prod(x, d, keep); }
at::Tensor all_one(const at::Tensor& x, int64_t d, bool keep) { return at::all(x, d, keep); }
at::Tensor any_one(const at::Tensor& x, int64_t d, bool keep) { return at::any(x, d, keep); }

// All reductions read: x, dims (normalised, unique), keepDims, result dtype code.
#define REDUCE(NAME, BODY)                                             \
  void NAME(Args& in, Out& out) {                                      \
    const at::Tensor& x = in.tensor();                                 \
    std::vector<int64_t> dims = in.ints_list();                        \
    bool keep = in.flag();                                             \
    at::ScalarType want = dtype_from_code(in.i32());                   \
    at::Tensor y;                                                      \
    if (dims.empty()) {                                                \
      y = x;                                                           \
    } else {                                                           \
      BODY;                                                            \
    }                                                                  \
    out.push(y.scalar_type() == want ? y : y.to(want));                \
  }

REDUCE(op_sum, y = at::sum(x, dims, keep))
REDUCE(op_mean, y = at::mean(as_float(x), dims, keep))
REDUCE(op_max, y = at::amax(x, dims, keep))
REDUCE(op_min, y = at::amin(x, dims, keep))
REDUCE(op_prod, y = fold_dims(x, dims, keep, prod_one))
REDUCE(op_all, y = fold_dims(x.scalar_type() == at::kBool ? x : x != 0, dims, keep, all_one))
REDUCE(op_any, y = fold_dims(x.scalar_type() == at::kBool ? x : x != 0, dims, keep, any_one))

// argmax/argmin(x, axis): first index of the extreme value, int32.
void op_argmax(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  int64_t axis = in.i64();
  out.push(at::argmax(x, axis, false));
}

void op_argmin(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  int64_t axis = in.i64();
  out.push(at::argmin(x, axis, false));
}

// softmax / log_softmax(x, dim)
void op_softmax(Args& in, Out& out) {
  at::Tensor x = as_float(in.tensor());
  int64_t dim = in.i64();
  out.push(at::softmax(x, dim));
}

void op_log_softmax(Args& in, Out& out) {
  at::Tensor x = as_float(in.tensor());
  int64_t dim = in.i64();
  out.push(at::log_softmax(x, dim));
}

// cumsum / cumprod(x, axis, exclusive, reverse)
at::Tensor cumulative(Args& in, bool product) {
  const at::Tensor& x0 = in.tensor();
  int64_t axis = in.i64();
  bool exclusive = in.flag();
  bool reverse = in.flag();
  at::Tensor x = reverse ? at::flip(x0, {axis}) : x0;
  at::Tensor y = product ? at::cumprod(x, axis) : at::cumsum(x, axis);
  if (exclusive && x.size(axis) > 0) {
    // Shift by one along axis, filling with the identity element.
    int64_t n = x.size(axis);
    at::Tensor head = product ? at::ones_like(y.narrow(axis, 0, 1)) : at::zeros_like(y.narrow(axis, 0, 1));
    y = at::cat({head, y.narrow(axis, 0, n - 1)}, axis);
  }
  if (reverse) y = at::flip(y, {axis});
  return y.scalar_type() == x0.scalar_type() ? y : y.to(x0.scalar_type());
}

void op_cumsum(Args& in, Out& out) { out.push(cumulative(in, false)); }

// topk(x, k, sorted): largest k along the last axis; values then int32 indices.
void op_topk(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  int64_t k = in.i64();
  bool sorted = in.flag();
  auto vi = at::topk(x, k, -1, true, sorted);
  out.push(std::get<0>(vi));
  out.push(std::get<1>(vi));
}
void op_cumprod(Args& in, Out& out) { out.push(cumulative(in, true)); }

}  // namespace

void register_reduce_ops() {
  register_op("sum", op_sum);
  register_op("mean", op_mean);
  register_op("max", op_max);
  register_op("min", op_min);
  register_op("prod", op_prod);
  register_op("all", op_all);
  register_op("any", op_any);
  register_op("argmax", op_argmax);
  register_op("argmin", op_argmin);
  register_op("softmax", op_softmax);
  register_op("log_softmax", op_log_softmax);
  register_op("cumsum", op_cumsum);
  register_op("cumprod", op_cumprod);
  register_op("topk", op_topk);
}

}  // namespace ladder
