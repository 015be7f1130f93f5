// Shared pieces of the ladder_torch addon: tensor table, argument stream, op registry.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ladder {

// ---------------------------------------------------------------------------
// Device: chosen once at init; every tensor the addon creates lands here.
at::Device& device();
at::TensorOptions opts(at::ScalarType dtype);
// Moves a CPU tensor to the device without a blocking copy (through pinned memory on CUDA).
at::Tensor upload(const at::Tensor& cpu);

// ---------------------------------------------------------------------------
// Tensor table: JS holds integer handles, the addon owns the at::Tensor values.
int32_t table_put(at::Tensor t);
const at::Tensor& table_get(int32_t handle);
void table_drop(int32_t handle);
size_t table_live();
size_t table_live_bytes();
void table_clear();

// tfjs dtypes: 0 = float32, 1 = int32, 2 = bool.
at::ScalarType dtype_from_code(int32_t code);
int32_t code_from_dtype(at::ScalarType dtype);

// ---------------------------------------------------------------------------
// Argument stream: JS writes int32 and float64 arguments into a shared buffer in the
// order the op reads them; outputs go back through a third region of the same buffer.
struct Args {
  const int32_t* ints;
  size_t int_cap;
  size_t ip = 0;
  const double* floats;
  size_t float_cap;
  size_t fp = 0;

  int32_t i32() {
    if (ip >= int_cap) throw std::runtime_error("argument stream overrun (ints)");
    return ints[ip++];
  }
  int64_t i64() { return i32(); }
  bool flag() { return i32() != 0; }
  double f64() {
    if (fp >= float_cap) throw std::runtime_error("argument stream overrun (floats)");
    return floats[fp++];
  }
  // Length-prefixed int list.
  std::vector<int64_t> ints_list() {
    int32_t n = i32();
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int32_t k = 0; k < n; ++k) v[static_cast<size_t>(k)] = i32();
    return v;
  }
  // Length-prefixed float list.
  std::vector<double> floats_list() {
    int32_t n = i32();
    std::vector<double> v(static_cast<size_t>(n));
    for (int32_t k = 0; k < n; ++k) v[static_cast<size_t>(k)] = f64();
    return v;
  }
  // Length-prefixed list of char codes.
  std::string str() {
    int32_t n = i32();
    std::string s(static_cast<size_t>(n), ' ');
    for (int32_t k = 0; k < n; ++k) s[static_cast<size_t>(k)] = static_cast<char>(i32());
    return s;
  }
  const at::Tensor& tensor() { return table_get(i32()); }
  // Handle -1 means "absent" (e.g. an optional bias).
  at::Tensor opt_tensor() {
    int32_t h = i32();
    return h < 0 ? at::Tensor() : table_get(h);
  }
  std::vector<at::Tensor> tensor_list() {
    int32_t n = i32();
    std::vector<at::Tensor> v;
    v.reserve(static_cast<size_t>(n));
    for (int32_t k = 0; k < n; ++k) v.push_back(tensor());
    return v;
  }
};

struct Out {
  int32_t* slots;
  size_t cap;
  size_t pos = 1;
  int32_t count = 0;
  // Stores t (int64 -> int32, float64 -> float32) and reports handle, dtype and shape.
  void push(at::Tensor t);
};

// ---------------------------------------------------------------------------
// Op registry: each op reads its Args and pushes its results.
using OpFn = void (*)(Args&, Out&);
void register_op(const char* name, OpFn fn);
const std::vector<std::string>& op_names();
OpFn op_at(int32_t code);

// Caching CPU allocator (allocator.cc): limit 0 leaves libtorch's default allocator in charge.
void install_cpu_cache(size_t limit_bytes);
size_t cpu_cache_bytes();
void empty_cpu_cache();

void register_elementwise_ops();
void register_reduce_ops();
void register_shape_ops();
void register_index_ops();
void register_nn_ops();
void register_fused_ops();
void register_distributed_ops();

// ---------------------------------------------------------------------------
// Small helpers shared by op files.
inline at::Tensor as_float(const at::Tensor& t) {
  return at::isFloatingType(t.scalar_type()) ? t : t.to(at::kFloat);
}
inline int64_t norm_axis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

}  // namespace ladder
