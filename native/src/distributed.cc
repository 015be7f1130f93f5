// Data-parallel collectives on PyTorch's own distributed engine (c10d): a TCPStore rendezvous and a Gloo process
// group, with broadcast, mean all-reduce and all-gather over the addon's tensors. Each collective takes a list of
// tensors and makes one call on one flat buffer (the bucketing of DDP, at the size of a whole player), because a
// call costs a network round trip whatever its size.
#include "common.h"

// Debian's libtorch-dev needs libgloo-dev for the Gloo headers; without them the ops exist and say what to install.
#if __has_include(<gloo/context.h>)
#define LADDER_HAS_GLOO 1
#define USE_C10D_GLOO 1  // the header declares the Gloo group only under this macro, set by torch's own build
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#endif

namespace ladder {
namespace {

#ifdef LADDER_HAS_GLOO

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0;
  int world = 1;
};

Group& group() {
  static Group g;
  return g;
}

c10d::ProcessGroupGloo& pg() {
  if (!group().pg) throw std::runtime_error("no process group: call dist_init first");
  return *group().pg;
}

// Gloo reduces host memory; a tensor on another device is copied there and back.
at::Tensor flat_on_host(const std::vector<at::Tensor>& tensors, at::ScalarType dtype) {
  std::vector<at::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) {
    if (t.scalar_type() != dtype) throw std::runtime_error("a collective's tensors must share one dtype");
    flat.push_back(t.reshape({-1}).to(at::kCPU));
  }
  return flat.empty() ? at::empty({0}, at::TensorOptions().dtype(dtype)) : at::cat(flat).contiguous();
}

void push_split(const at::Tensor& flat, const std::vector<at::Tensor>& like, Out& out) {
  int64_t at_ = 0;
  for (const auto& t : like) {
    out.push(upload(flat.slice(0, at_, at_ + t.numel()).reshape(t.sizes()).clone()));
    at_ += t.numel();
  }
}

void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    auto c10_error = dynamic_cast<const c10::Error*>(&e);
    throw std::runtime_error(std::string(what) + " failed on rank " + std::to_string(group().rank) + " of " +
                             std::to_string(group().world) + " (a rank stopped or timed out): " +
                             (c10_error != nullptr ? c10_error->what_without_backtrace() : e.what()));
  }
}

// dist_init(host: str, port, rank, world, timeoutMs, device: str, deviceKind): the rank 0 process serves the
// store; deviceKind 0 = the default interface of this host, 1 = the interface of the address `device`,
// 2 = the network interface named `device`.
void dist_init(Args& a, Out&) {
  std::string host = a.str();
  int port = a.i32();
  int rank = a.i32();
  int world = a.i32();
  int timeout_ms = a.i32();
  std::string device_name = a.str();
  int device_kind = a.i32();
  if (group().pg) throw std::runtime_error("the process group is already initialised");
  if (world < 1 || rank < 0 || rank >= world) {
    throw std::runtime_error("rank " + std::to_string(rank) + " is outside world size " + std::to_string(world));
  }
  auto timeout = std::chrono::milliseconds(timeout_ms);
  c10d::TCPStoreOptions store_opts;
  store_opts.port = static_cast<std::uint16_t>(port);
  store_opts.isServer = rank == 0;
  store_opts.numWorkers = static_cast<std::size_t>(world);
  store_opts.waitWorkers = true;
  store_opts.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(host, store_opts);
  // Every rank says how large it believes the world is: a rank started with another WORLD_SIZE is named.
  store->set("world-size/" + std::to_string(rank), std::vector<uint8_t>(1, static_cast<uint8_t>(world)));
  for (int r = 0; r < world; ++r) {
    auto other = store->get("world-size/" + std::to_string(r));
    if (other.size() != 1 || other[0] != static_cast<uint8_t>(world)) {
      throw std::runtime_error("rank " + std::to_string(r) + " was started with WORLD_SIZE " +
                               std::to_string(other.empty() ? 0 : other[0]) + ", this rank with " +
                               std::to_string(world));
    }
  }
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(device_kind == 2   ? c10d::ProcessGroupGloo::createDeviceForInterface(device_name)
                             : device_kind == 1 ? c10d::ProcessGroupGloo::createDeviceForHostname(device_name)
                                                : c10d::ProcessGroupGloo::createDefaultDevice());
  options->threads = 2;
  group().pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
  group().store = store;
  group().rank = rank;
  group().world = world;
}

// dist_allreduce_mean(tensors): the element-wise mean over the ranks of each tensor, in one call.
void dist_allreduce_mean(Args& a, Out& out) {
  c10::InferenceMode normal_tensors(false);  // Gloo fills the buffers on its own threads
  std::vector<at::Tensor> tensors = a.tensor_list();
  if (tensors.empty()) return;
  at::Tensor flat = flat_on_host(tensors, tensors[0].scalar_type());
  std::vector<at::Tensor> bufs{flat};
  wait(pg().allreduce(bufs), "all-reduce");
  if (at::isFloatingType(flat.scalar_type())) flat.div_(group().world);
  push_split(flat, tensors, out);
}

// dist_broadcast(tensors, root): root's values of each tensor, on every rank, in one call.
void dist_broadcast(Args& a, Out& out) {
  c10::InferenceMode normal_tensors(false);  // Gloo fills the buffers on its own threads
  std::vector<at::Tensor> tensors = a.tensor_list();
  int root = a.i32();
  if (tensors.empty()) return;
  at::Tensor flat = flat_on_host(tensors, tensors[0].scalar_type());
  std::vector<at::Tensor> bufs{flat};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  wait(pg().broadcast(bufs, options), "broadcast");
  push_split(flat, tensors, out);
}

// dist_allgather(tensor): every rank's tensor stacked along a new first axis, rank order.
void dist_allgather(Args& a, Out& out) {
  c10::InferenceMode normal_tensors(false);  // Gloo fills the buffers on its own threads
  at::Tensor t = a.tensor().contiguous().to(at::kCPU);
  std::vector<at::Tensor> mine{t};
  std::vector<std::vector<at::Tensor>> gathered(1);
  for (int r = 0; r < group().world; ++r) gathered[0].push_back(at::empty_like(t));
  wait(pg().allgather(gathered, mine), "all-gather");
  out.push(upload(at::stack(gathered[0])));
}

void dist_barrier(Args&, Out&) { wait(pg().barrier(), "barrier"); }

void dist_shutdown(Args&, Out&) {
  group().pg.reset();
  group().store.reset();
  group().rank = 0;
  group().world = 1;
}

#else
[[noreturn]] void no_gloo(Args&, Out&) {
  throw std::runtime_error(
      "this addon was built without the Gloo headers, so it has no process groups: install them "
      "(apt-get install libgloo-dev) and run `npm run build:native`");
}
void dist_init(Args& a, Out& o) { no_gloo(a, o); }
void dist_allreduce_mean(Args& a, Out& o) { no_gloo(a, o); }
void dist_broadcast(Args& a, Out& o) { no_gloo(a, o); }
void dist_allgather(Args& a, Out& o) { no_gloo(a, o); }
void dist_barrier(Args& a, Out& o) { no_gloo(a, o); }
void dist_shutdown(Args&, Out&) {}
#endif

}  // namespace

void register_distributed_ops() {
  register_op("dist_init", dist_init);
  register_op("dist_allreduce_mean", dist_allreduce_mean);
  register_op("dist_broadcast", dist_broadcast);
  register_op("dist_allgather", dist_allgather);
  register_op("dist_barrier", dist_barrier);
  register_op("dist_shutdown", dist_shutdown);
}

}  // namespace ladder
