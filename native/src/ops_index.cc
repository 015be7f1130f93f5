// Indexing ops: gather (with batch dims), gather_nd, scatter_nd, unsorted_segment_sum.
#include "common.h"

namespace ladder {
namespace {

int64_t prod(at::IntArrayRef dims, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t k = from; k < to; ++k) p *= dims[k];
  return p;
}

// gather(x, indices, axis, batch_dims): out shape = x[:axis] + indices[batch_dims:] + x[axis+1:].
void op_gather(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  at::Tensor idx = in.tensor().to(at::kLong);
  int64_t axis = in.i64();
  int64_t b = in.i64();
  auto xs = x.sizes();
  auto is = idx.sizes();
  std::vector<int64_t> out_shape(xs.begin(), xs.begin() + axis);
  out_shape.insert(out_shape.end(), is.begin() + b, is.end());
  out_shape.insert(out_shape.end(), xs.begin() + axis + 1, xs.end());
  if (b == 0) {
    out.push(at::index_select(x, axis, idx.reshape({-1})).reshape(out_shape));
    return;
  }
  // Batched: fold the batch dims into one, bring `axis` next to it, and offset each batch's
  // indices into the folded [batch * A] row space.
  size_t ub = static_cast<size_t>(b), ua = static_cast<size_t>(axis);
  int64_t batch = prod(xs, 0, ub);
  int64_t a = xs[ua];
  int64_t pre = prod(xs, ub, ua);
  int64_t post = prod(xs, ua + 1, xs.size());
  int64_t j = prod(is, ub, is.size());
  at::Tensor rows = x.reshape({batch, pre, a, post}).permute({0, 2, 1, 3}).reshape({batch * a, pre * post});
  at::Tensor offs = at::arange(batch, opts(at::kLong)).mul(a).unsqueeze(1);
  at::Tensor flat = idx.reshape({batch, j}).add(offs).reshape({-1});
  at::Tensor picked = at::index_select(rows, 0, flat).reshape({batch, j, pre, post}).permute({0, 2, 1, 3});
  out.push(picked.reshape(out_shape));
}

// Splits the last axis of an index tensor [..., K] into K index tensors.
c10::List<c10::optional<at::Tensor>> split_nd_index(const at::Tensor& indices) {
  at::Tensor idx = indices.to(at::kLong);
  c10::List<c10::optional<at::Tensor>> list;
  int64_t k = idx.size(-1);
  for (int64_t d = 0; d < k; ++d) list.push_back(idx.select(-1, d));
  return list;
}

// gather_nd(params, indices)
void op_gather_nd(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  const at::Tensor& indices = in.tensor();
  out.push(at::index(x, split_nd_index(indices)));
}

// scatter_nd(indices, updates, shape[]): duplicates add up.
void op_scatter_nd(Args& in, Out& out) {
  const at::Tensor& indices = in.tensor();
  const at::Tensor& updates = in.tensor();
  std::vector<int64_t> shape = in.ints_list();
  at::Tensor result = at::zeros(shape, opts(updates.scalar_type()));
  result.index_put_(split_nd_index(indices), updates, true);
  out.push(result);
}

// unsorted_segment_sum(x, segment_ids, num_segments): ids cover the leading ids.dim() dims of x; ids
// outside [0, num) go to a spare row that is cut off (no device sync needed to filter them).
void op_unsorted_segment_sum(Args& in, Out& out) {
  const at::Tensor& x = in.tensor();
  const at::Tensor& ids_in = in.tensor();
  int64_t num = in.i64();
  // The ids' rank says how many dims they cover: a size match alone cannot tell when a dim is 1 (a
  // single id, as in the gradient of a one-index gather, would cover no dims at all).
  int64_t lead = ids_in.dim();
  if (lead > x.dim() || x.sizes().slice(0, lead) != ids_in.sizes())
    throw std::runtime_error("segment_ids shape does not match the leading dims of x");
  at::Tensor ids = ids_in.to(at::kLong).reshape({-1});
  int64_t n = ids.numel();
  std::vector<int64_t> flat_shape{n};
  flat_shape.insert(flat_shape.end(), x.sizes().begin() + lead, x.sizes().end());
  at::Tensor valid = at::logical_and(ids >= 0, ids < num);
  ids = at::where(valid, ids, at::scalar_tensor(num, opts(at::kLong)));
  std::vector<int64_t> out_shape = flat_shape;
  out_shape[0] = num + 1;
  at::Tensor result = at::zeros(out_shape, opts(x.scalar_type()));
  result.index_add_(0, ids, x.reshape(flat_shape));
  out.push(result.narrow(0, 0, num));
}

}  // namespace

void register_index_ops() {
  register_op("gather", op_gather);
  register_op("gather_nd", op_gather_nd);
  register_op("scatter_nd", op_scatter_nd);
  register_op("unsorted_segment_sum", op_unsorted_segment_sum);
}

}  // namespace ladder
