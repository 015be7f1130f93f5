// N-API entry points of ladder_torch: init, create/read/dispose tensors, run an op by code.
#include <ATen/Parallel.h>
#include <node_api.h>
#include <torch/version.h>

#include <cstring>
#include <unordered_set>

#include "common.h"

namespace ladder {

// ---------------------------------------------------------------------------
// Device, table, registry.

at::Device& device() {
  static at::Device dev(at::kCPU);
  return dev;
}

at::TensorOptions opts(at::ScalarType dtype) { return at::TensorOptions().dtype(dtype).device(device()); }

at::Tensor upload(const at::Tensor& cpu) {
  if (device().is_cpu()) return cpu;
  // A pageable-memory copy would wait for the whole GPU queue; a pinned one is queued like a kernel.
  at::Tensor pinned = cpu.is_pinned() ? cpu : cpu.pin_memory();
  return pinned.to(at::TensorOptions().device(device()), /*non_blocking=*/true);
}

namespace {
std::vector<at::Tensor> g_tensors{at::Tensor()};  // handle 0 is never issued
std::vector<int32_t> g_free;
size_t g_live = 0;

struct OpEntry {
  std::vector<std::string> names;
  std::vector<OpFn> fns;
};
OpEntry& registry() {
  static OpEntry r;
  return r;
}

// Shared argument/output buffer handed over by JS at init.
napi_ref g_buffer_ref = nullptr;
const int32_t* g_ints = nullptr;
const double* g_floats = nullptr;
int32_t* g_out = nullptr;
size_t g_int_cap = 0, g_float_cap = 0, g_out_cap = 0;
}  // namespace

int32_t table_put(at::Tensor t) {
  ++g_live;
  if (!g_free.empty()) {
    int32_t h = g_free.back();
    g_free.pop_back();
    g_tensors[static_cast<size_t>(h)] = std::move(t);
    return h;
  }
  g_tensors.push_back(std::move(t));
  return static_cast<int32_t>(g_tensors.size() - 1);
}

const at::Tensor& table_get(int32_t h) {
  if (h <= 0 || static_cast<size_t>(h) >= g_tensors.size() || !g_tensors[static_cast<size_t>(h)].defined()) {
    throw std::runtime_error("unknown tensor handle " + std::to_string(h) + " (already disposed?)");
  }
  return g_tensors[static_cast<size_t>(h)];
}

void table_drop(int32_t h) {
  if (h <= 0 || static_cast<size_t>(h) >= g_tensors.size() || !g_tensors[static_cast<size_t>(h)].defined()) return;
  g_tensors[static_cast<size_t>(h)] = at::Tensor();
  g_free.push_back(h);
  --g_live;
}

size_t table_live() { return g_live; }

size_t table_live_bytes() {
  // Views share storage; count each storage once.
  std::unordered_set<const void*> seen;
  size_t bytes = 0;
  for (const auto& t : g_tensors) {
    if (!t.defined()) continue;
    const void* key = t.storage().unsafeGetStorageImpl();
    if (seen.insert(key).second) bytes += t.storage().nbytes();
  }
  return bytes;
}

void table_clear() {
  g_tensors.assign(1, at::Tensor());
  g_free.clear();
  g_live = 0;
}

at::ScalarType dtype_from_code(int32_t code) {
  switch (code) {
    case 0: return at::kFloat;
    case 1: return at::kInt;
    case 2: return at::kBool;
    default: throw std::runtime_error("unknown dtype code " + std::to_string(code));
  }
}

int32_t code_from_dtype(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return 0;
    case at::kInt: return 1;
    case at::kBool: return 2;
    default: throw std::runtime_error(std::string("result dtype ") + c10::toString(dtype) + " has no tfjs equivalent");
  }
}

void Out::push(at::Tensor t) {
  switch (t.scalar_type()) {
    case at::kFloat: case at::kInt: case at::kBool: break;
    case at::kLong: case at::kShort: case at::kChar: case at::kByte: t = t.to(at::kInt); break;
    case at::kDouble: case at::kHalf: case at::kBFloat16: t = t.to(at::kFloat); break;
    default: throw std::runtime_error(std::string("unsupported result dtype ") + c10::toString(t.scalar_type()));
  }
  size_t need = 3 + static_cast<size_t>(t.dim());
  if (pos + need > cap) throw std::runtime_error("too many outputs for the shared output buffer");
  int32_t code = code_from_dtype(t.scalar_type());
  int64_t rank = t.dim();
  std::vector<int64_t> sizes(t.sizes().begin(), t.sizes().end());
  slots[pos++] = table_put(std::move(t));
  slots[pos++] = code;
  slots[pos++] = static_cast<int32_t>(rank);
  for (int64_t d : sizes) slots[pos++] = static_cast<int32_t>(d);
  slots[0] = ++count;
}

void register_op(const char* name, OpFn fn) {
  registry().names.emplace_back(name);
  registry().fns.push_back(fn);
}

const std::vector<std::string>& op_names() { return registry().names; }

OpFn op_at(int32_t code) {
  if (code < 0 || static_cast<size_t>(code) >= registry().fns.size()) {
    throw std::runtime_error("unknown op code " + std::to_string(code));
  }
  return registry().fns[static_cast<size_t>(code)];
}

}  // namespace ladder

// ---------------------------------------------------------------------------
// N-API glue.
using namespace ladder;

namespace {

#define NAPI_TRY(call)                                    \
  do {                                                    \
    if ((call) != napi_ok) {                              \
      napi_throw_error(env, nullptr, "N-API call failed: " #call); \
      return nullptr;                                     \
    }                                                     \
  } while (0)

std::string error_text(const std::exception& e) {
  if (auto ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

napi_value throw_error(napi_env env, const std::string& where, const std::string& msg) {
  std::string text = "ladder_torch " + where + ": " + msg;
  napi_throw_error(env, nullptr, text.c_str());
  return nullptr;
}

napi_value make_int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_double(env, static_cast<double>(v), &out);
  return out;
}

bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < want) {
    napi_throw_error(env, nullptr, "ladder_torch: wrong number of arguments");
    return false;
  }
  return true;
}

int32_t get_i32(napi_env env, napi_value v) {
  int32_t out = 0;
  napi_get_value_int32(env, v, &out);
  return out;
}

// init(buffer: ArrayBuffer, intCap, floatOffset, floatCap, outOffset, outCap, device: string, threads,
//      allowTF32: boolean, cpuCacheMiB)
napi_value Init(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  if (!get_args(env, info, 10, argv)) return nullptr;
  void* data = nullptr;
  size_t len = 0;
  NAPI_TRY(napi_get_arraybuffer_info(env, argv[0], &data, &len));
  size_t int_cap = static_cast<size_t>(get_i32(env, argv[1]));
  size_t float_off = static_cast<size_t>(get_i32(env, argv[2]));
  size_t float_cap = static_cast<size_t>(get_i32(env, argv[3]));
  size_t out_off = static_cast<size_t>(get_i32(env, argv[4]));
  size_t out_cap = static_cast<size_t>(get_i32(env, argv[5]));
  if (int_cap * 4 > float_off || float_off + float_cap * 8 > out_off || out_off + out_cap * 4 > len ||
      float_off % 8 != 0 || out_off % 4 != 0) {
    return throw_error(env, "init", "shared buffer layout does not fit the buffer");
  }
  if (g_buffer_ref != nullptr) napi_delete_reference(env, g_buffer_ref);
  NAPI_TRY(napi_create_reference(env, argv[0], 1, &g_buffer_ref));
  auto* bytes = static_cast<uint8_t*>(data);
  g_ints = reinterpret_cast<const int32_t*>(bytes);
  g_floats = reinterpret_cast<const double*>(bytes + float_off);
  g_out = reinterpret_cast<int32_t*>(bytes + out_off);
  g_int_cap = int_cap;
  g_float_cap = float_cap;
  g_out_cap = out_cap;

  char dev_name[64] = {0};
  size_t dev_len = 0;
  NAPI_TRY(napi_get_value_string_utf8(env, argv[6], dev_name, sizeof(dev_name), &dev_len));
  int32_t threads = get_i32(env, argv[7]);
  bool allow_tf32 = false;
  NAPI_TRY(napi_get_value_bool(env, argv[8], &allow_tf32));
  int32_t cache_mib = get_i32(env, argv[9]);
  try {
    std::string name(dev_name, dev_len);
    if (name == "cuda" && !at::hasCUDA()) {
      return throw_error(env, "init",
                         "device 'cuda' requested but this libtorch has no CUDA support (or no GPU is "
                         "visible); rebuild the addon against a CUDA libtorch or use device 'cpu'");
    }
    device() = at::Device(name);
    if (threads > 0) at::set_num_threads(threads);
    // TF32 trades float32 accuracy for speed on recent GPUs; tfjs semantics are plain float32.
    at::globalContext().setAllowTF32CuDNN(allow_tf32);
    at::globalContext().setAllowTF32CuBLAS(allow_tf32);
    install_cpu_cache(static_cast<size_t>(cache_mib > 0 ? cache_mib : 0) << 20);
  } catch (const std::exception& e) {
    return throw_error(env, "init", error_text(e));
  }
  napi_value result;
  NAPI_TRY(napi_create_object(env, &result));
  napi_value v;
  std::string dev_str = device().str();
  NAPI_TRY(napi_create_string_utf8(env, dev_str.c_str(), dev_str.size(), &v));
  NAPI_TRY(napi_set_named_property(env, result, "device", v));
  NAPI_TRY(napi_set_named_property(env, result, "threads", make_int(env, at::get_num_threads())));
  std::string ver = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                    std::to_string(TORCH_VERSION_PATCH);
  NAPI_TRY(napi_create_string_utf8(env, ver.c_str(), ver.size(), &v));
  NAPI_TRY(napi_set_named_property(env, result, "torchVersion", v));
  NAPI_TRY(napi_get_boolean(env, at::hasCUDA(), &v));
  NAPI_TRY(napi_set_named_property(env, result, "cudaAvailable", v));
  return result;
}

// opNames(): string[] — index = op code.
napi_value OpNames(napi_env env, napi_callback_info) {
  const auto& names = op_names();
  napi_value arr;
  NAPI_TRY(napi_create_array_with_length(env, names.size(), &arr));
  for (size_t i = 0; i < names.size(); ++i) {
    napi_value s;
    NAPI_TRY(napi_create_string_utf8(env, names[i].c_str(), names[i].size(), &s));
    NAPI_TRY(napi_set_element(env, arr, static_cast<uint32_t>(i), s));
  }
  return arr;
}

size_t element_size(at::ScalarType t) { return t == at::kBool ? 1 : 4; }

// create(values: TypedArray, dtypeCode): handle. Shape is read from the int region: rank, dims...
napi_value Create(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return nullptr;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  NAPI_TRY(napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr));
  try {
    at::ScalarType dtype = dtype_from_code(get_i32(env, argv[1]));
    Args args{g_ints, g_int_cap, 0, g_floats, g_float_cap, 0};
    std::vector<int64_t> shape = args.ints_list();
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    size_t bytes_per = element_size(dtype);
    size_t have_bytes = length * (type == napi_uint8_array || type == napi_int8_array || type == napi_uint8_clamped_array ? 1 : 4);
    if (have_bytes != static_cast<size_t>(numel) * bytes_per) {
      return throw_error(env, "create", "value buffer has " + std::to_string(have_bytes) + " bytes but shape needs " +
                                            std::to_string(numel * static_cast<int64_t>(bytes_per)));
    }
    c10::InferenceMode guard;
    bool on_cpu = device().is_cpu();
    if (!on_cpu && numel == 1) {
      // Scalars (tfjs makes many) become a device-side fill: no host-device copy at all.
      double value = dtype == at::kFloat ? static_cast<double>(*static_cast<const float*>(data))
                     : dtype == at::kInt ? static_cast<double>(*static_cast<const int32_t*>(data))
                                         : static_cast<double>(*static_cast<const uint8_t*>(data) != 0);
      return make_int(env, table_put(at::full(shape, value, opts(dtype))));
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype).pinned_memory(!on_cpu));
    if (have_bytes > 0) std::memcpy(t.data_ptr(), data, have_bytes);
    return make_int(env, table_put(upload(t)));
  } catch (const std::exception& e) {
    return throw_error(env, "create", error_text(e));
  }
}

// read(handle, out: TypedArray): copies the tensor's values (row-major) into out.
napi_value Read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return nullptr;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  NAPI_TRY(napi_get_typedarray_info(env, argv[1], &type, &length, &data, nullptr, nullptr));
  try {
    c10::InferenceMode guard;
    at::Tensor t = table_get(get_i32(env, argv[0]));
    if (!t.device().is_cpu()) t = t.to(at::kCPU);
    t = t.contiguous();
    size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
    size_t have = length * (type == napi_uint8_array || type == napi_int8_array || type == napi_uint8_clamped_array ? 1 : 4);
    if (bytes != have) {
      return throw_error(env, "read", "target holds " + std::to_string(have) + " bytes, tensor has " + std::to_string(bytes));
    }
    if (bytes > 0) std::memcpy(data, t.data_ptr(), bytes);
    return nullptr;
  } catch (const std::exception& e) {
    return throw_error(env, "read", error_text(e));
  }
}

napi_value Dispose(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  table_drop(get_i32(env, argv[0]));
  return nullptr;
}

napi_value DisposeAll(napi_env, napi_callback_info) {
  table_clear();
  return nullptr;
}

// run(code): number of outputs; handles/dtypes/shapes are in the output region.
napi_value Run(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  int32_t code = get_i32(env, argv[0]);
  Args args{g_ints, g_int_cap, 0, g_floats, g_float_cap, 0};
  Out out{g_out, g_out_cap};
  g_out[0] = 0;
  try {
    OpFn fn = op_at(code);
    c10::InferenceMode guard;
    fn(args, out);
  } catch (const std::exception& e) {
    // Release outputs pushed before the failure so nothing leaks.
    size_t p = 1;
    for (int32_t k = 0; k < out.count; ++k) {
      table_drop(g_out[p]);
      p += 3 + static_cast<size_t>(g_out[p + 2]);
    }
    g_out[0] = 0;
    std::string name = (code >= 0 && static_cast<size_t>(code) < op_names().size()) ? op_names()[static_cast<size_t>(code)] : "?";
    return throw_error(env, "op '" + name + "'", error_text(e));
  }
  return make_int(env, out.count);
}

// stats(): [liveTensors, liveBytes, cachedCpuBytes]
napi_value Stats(napi_env env, napi_callback_info) {
  napi_value arr;
  NAPI_TRY(napi_create_array_with_length(env, 3, &arr));
  NAPI_TRY(napi_set_element(env, arr, 0, make_int(env, static_cast<int64_t>(table_live()))));
  NAPI_TRY(napi_set_element(env, arr, 1, make_int(env, static_cast<int64_t>(table_live_bytes()))));
  NAPI_TRY(napi_set_element(env, arr, 2, make_int(env, static_cast<int64_t>(cpu_cache_bytes()))));
  return arr;
}

// emptyCache(): returns cached CPU blocks to the system.
napi_value EmptyCache(napi_env, napi_callback_info) {
  empty_cpu_cache();
  return nullptr;
}

// synchronize(): waits for queued device work (a no-op on CPU).
napi_value Synchronize(napi_env env, napi_callback_info) {
  try {
    if (device().is_cuda()) {
      c10::InferenceMode guard;
      // A tiny blocking copy waits for all queued work on the current stream.
      at::zeros({1}, opts(at::kFloat)).to(at::kCPU);
    }
  } catch (const std::exception& e) {
    return throw_error(env, "synchronize", error_text(e));
  }
  return nullptr;
}

napi_value ModuleInit(napi_env env, napi_value exports) {
  if (op_names().empty()) {
    register_elementwise_ops();
    register_reduce_ops();
    register_shape_ops();
    register_index_ops();
    register_nn_ops();
    register_fused_ops();
    register_distributed_ops();
  }
  napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"opNames", nullptr, OpNames, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"create", nullptr, Create, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"read", nullptr, Read, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"dispose", nullptr, Dispose, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"disposeAll", nullptr, DisposeAll, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, Run, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"emptyCache", nullptr, EmptyCache, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"synchronize", nullptr, Synchronize, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, ModuleInit)
