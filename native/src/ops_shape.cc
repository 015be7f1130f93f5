// Layout ops: reshape, transpose, concat, slices, stack/unstack, split, tile, broadcast, pads, reverse,
// and tensor factories (fill, range, linspace, one_hot).
#include <limits>

#include "common.h"

namespace ladder {
namespace {

// reshape(x, shape): a view when the layout allows it.
void op_reshape(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  out.push(x.reshape(in.ints_list()));
}

// transpose(x, perm): a strided view; consumers that need contiguity copy on demand.
void op_transpose(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  out.push(x.permute(in.ints_list()));
}

// concat(list, axis)
void op_concat(Args& in, Out& out) {
  std::vector<at::Tensor> xs = in.tensor_list();
  int64_t axis = in.i64();
  out.push(at::cat(xs, axis));
}

// slice(x, begin[], size[]): narrow views.
void op_slice(Args& in, Out& out) {
  at::Tensor x = in.tensor();
  std::vector<int64_t> begin = in.ints_list();
  std::vector<int64_t> size = in.ints_list();
  for (size_t d = 0; d < begin.size(); ++d) x = x.narrow(static_cast<int64_t>(d), begin[d], size[d]);
  out.push(x);
}

// strided_slice(x, begin[], strides[], sizes[], final_shape[]): per-axis start, step and count
// (already resolved by tfjs' slice_util), then a reshape that drops/adds axes.
void op_strided_slice(Args& in, Out& out) {
  at::Tensor x = in.tensor();
  std::vector<int64_t> begin = in.ints_list();
  std::vector<int64_t> strides = in.ints_list();
  std::vector<int64_t> sizes = in.ints_list();
  std::vector<int64_t> final_shape = in.ints_list();
  for (size_t k = 0; k < begin.size(); ++k) {
    int64_t d = static_cast<int64_t>(k);
    int64_t n = sizes[k];
    int64_t step = strides[k];
    int64_t start = begin[k];
    if (n == 0) {
      x = x.narrow(d, 0, 0);
      continue;
    }
    if (step < 0) {
      // Walk backwards: flip the axis so the walk becomes forwards.
      x = at::flip(x, {d});
      start = x.size(d) - 1 - start;
      step = -step;
    }
    x = x.slice(d, start, start + (n - 1) * step + 1, step);
  }
  out.push(x.reshape(final_shape));
}

// stack(list, axis)
void op_stack(Args& in, Out& out) {
  std::vector<at::Tensor> xs = in.tensor_list();
  int64_t axis = in.i64();
  out.push(at::stack(xs, axis));
}

// unstack(x, axis): one output per index along axis.
void op_unstack(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  int64_t axis = in.i64();
  for (auto& t : at::unbind(x, axis)) out.push(t);
}

// split(x, sizes[], axis)
void op_split(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  std::vector<int64_t> sizes = in.ints_list();
  int64_t axis = in.i64();
  for (auto& t : at::split_with_sizes(x, sizes, axis)) out.push(t);
}

// tile(x, reps): size-1 axes are broadcast as views; the rest repeat (copies).
void op_tile(Args& in, Out& out) {
  at::Tensor x = in.tensor();
  std::vector<int64_t> reps = in.ints_list();
  std::vector<int64_t> expand_to(x.sizes().begin(), x.sizes().end());
  std::vector<int64_t> rest(reps.size(), 1);
  bool needs_repeat = false;
  for (size_t d = 0; d < reps.size(); ++d) {
    if (x.size(static_cast<int64_t>(d)) == 1) {
      expand_to[d] = reps[d];
    } else if (reps[d] != 1) {
      rest[d] = reps[d];
      needs_repeat = true;
    }
  }
  x = x.expand(expand_to);
  out.push(needs_repeat ? x.repeat(rest) : x);
}

// broadcast_to(x, shape): a stride-0 view.
void op_broadcast_to(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  out.push(x.expand(in.ints_list()));
}

// pad(x, paddings[2*rank] as before0, after0, ...; value)
void op_pad(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  std::vector<int64_t> p = in.ints_list();
  double value = in.f64();
  // torch lists the last axis first.
  std::vector<int64_t> tp;
  for (size_t d = p.size() / 2; d-- > 0;) {
    tp.push_back(p[2 * d]);
    tp.push_back(p[2 * d + 1]);
  }
  out.push(at::constant_pad_nd(x, tp, value));
}

// mirror_pad(x, paddings[2*rank], symmetric): reflect excludes the edge, symmetric repeats it.
void op_mirror_pad(Args& in, Out& out) {
  at::Tensor x = in.tensor();
  std::vector<int64_t> p = in.ints_list();
  bool symmetric = in.flag();
  int64_t skip = symmetric ? 0 : 1;
  for (size_t k = 0; k < p.size() / 2; ++k) {
    int64_t d = static_cast<int64_t>(k);
    int64_t before = p[2 * k], after = p[2 * k + 1];
    if (before == 0 && after == 0) continue;
    int64_t n = x.size(d);
    std::vector<at::Tensor> parts;
    if (before > 0) parts.push_back(at::flip(x.narrow(d, skip, before), {d}));
    parts.push_back(x);
    if (after > 0) parts.push_back(at::flip(x.narrow(d, n - skip - after, after), {d}));
    x = at::cat(parts, d);
  }
  out.push(x);
}

// reverse(x, dims[])
void op_reverse(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  std::vector<int64_t> dims = in.ints_list();
  out.push(dims.empty() ? x : at::flip(x, dims));
}

// fill(shape[], code; value)
void op_fill(Args& in, Out& out) {
  std::vector<int64_t> shape = in.ints_list();
  at::ScalarType dtype = dtype_from_code(in.i32());
  double value = in.f64();
  out.push(at::full(shape, value, opts(dtype)));
}

// range(n, code; start, step): start + i * step for i < n.
void op_range(Args& in, Out& out) {
  int64_t n = in.i64();
  at::ScalarType dtype = dtype_from_code(in.i32());
  double start = in.f64();
  double step = in.f64();
  if (dtype == at::kInt) {
    auto s = static_cast<int64_t>(start), st = static_cast<int64_t>(step);
    out.push(at::arange(s, s + n * st, st, opts(at::kLong)));
  } else {
    out.push(at::arange(n, opts(at::kDouble)).mul(step).add(start));
  }
}

// linspace(num; start, stop)
void op_linspace(Args& in, Out& out) {
  int64_t num = in.i64();
  double start = in.f64();
  double stop = in.f64();
  out.push(at::linspace(start, stop, num, opts(at::kFloat)));
}

// one_hot(indices, depth, code; on, off): out-of-range indices give an all-off row.
void op_one_hot(Args& in, Out& out) {
  const at::Tensor& idx = in.tensor();
  int64_t depth = in.i64();
  at::ScalarType dtype = dtype_from_code(in.i32());
  double on = in.f64();
  double off = in.f64();
  at::Tensor hit = at::eq(idx.to(at::kLong).unsqueeze(-1), at::arange(depth, opts(at::kLong)));
  out.push(at::where(hit, at::scalar_tensor(on, opts(dtype)), at::scalar_tensor(off, opts(dtype))));
}

}  // namespace

void register_shape_ops() {
  register_op("reshape", op_reshape);
  register_op("transpose", op_transpose);
  register_op("concat", op_concat);
  register_op("slice", op_slice);
  register_op("strided_slice", op_strided_slice);
  register_op("stack", op_stack);
  register_op("unstack", op_unstack);
  register_op("split", op_split);
  register_op("tile", op_tile);
  register_op("broadcast_to", op_broadcast_to);
  register_op("pad", op_pad);
  register_op("mirror_pad", op_mirror_pad);
  register_op("reverse", op_reverse);
  register_op("fill", op_fill);
  register_op("range", op_range);
  register_op("linspace", op_linspace);
  register_op("one_hot", op_one_hot);
}

}  // namespace ladder
