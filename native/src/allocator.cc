// Caching CPU allocator. A training step frees and re-allocates the same large buffer sizes every
// step; glibc returns such blocks to the OS and the next allocation page-faults them back in (about
// 1 ms per 3 MiB output on the dev machine, more than the arithmetic). Large freed blocks are kept in
// per-size free lists instead and reused; small ones are plain aligned mallocs.
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace ladder {
namespace {

constexpr size_t kMinCachedBytes = size_t{1} << 16;  // below this, malloc is cheap enough
constexpr size_t kPage = 4096;
constexpr size_t kAlignment = 64;  // libtorch's CPU alignment (AVX-512)

// libtorch 2.3 made allocate() non-const and added copy_data().
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define LADDER_ALLOCATE_CONST
#define LADDER_NEEDS_COPY_DATA 1
#else
#define LADDER_ALLOCATE_CONST const
#define LADDER_NEEDS_COPY_DATA 0
#endif

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // rounded size -> blocks
  std::unordered_map<void*, size_t> sizes;                     // every live or cached block
  size_t cached_bytes = 0;
  size_t limit_bytes = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during process exit
  return *c;
}

void* aligned_alloc_or_null(size_t size) {
  void* ptr = nullptr;
  return posix_memalign(&ptr, kAlignment, size) == 0 ? ptr : nullptr;
}

// Also the raw deleter: libtorch's raw_deallocate (used by oneDNN) hands back bare pointers.
void release_block(void* ptr) {
  if (ptr == nullptr) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.sizes.find(ptr);
  if (it == c.sizes.end()) {  // a small block
    std::free(ptr);
    return;
  }
  size_t size = it->second;
  if (c.cached_bytes + size > c.limit_bytes) {
    c.sizes.erase(it);
    std::free(ptr);
    return;
  }
  c.free_blocks[size].push_back(ptr);
  c.cached_bytes += size;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) LADDER_ALLOCATE_CONST override {
    if (nbytes < kMinCachedBytes) {
      void* ptr = nbytes == 0 ? nullptr : aligned_alloc_or_null(nbytes);
      if (nbytes > 0 && ptr == nullptr) throw std::runtime_error("out of CPU memory");
      return {ptr, ptr, &release_block, c10::Device(c10::DeviceType::CPU)};
    }
    size_t size = (nbytes + kPage - 1) / kPage * kPage;
    Cache& c = cache();
    {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.free_blocks.find(size);
      if (it != c.free_blocks.end() && !it->second.empty()) {
        void* ptr = it->second.back();
        it->second.pop_back();
        c.cached_bytes -= size;
        return {ptr, ptr, &release_block, c10::Device(c10::DeviceType::CPU)};
      }
    }
    void* ptr = aligned_alloc_or_null(size);
    if (ptr == nullptr) {
      empty_cpu_cache();  // give cached blocks back and retry once
      ptr = aligned_alloc_or_null(size);
      if (ptr == nullptr) throw std::runtime_error("out of CPU memory allocating " + std::to_string(size) + " bytes");
    }
    {
      std::lock_guard<std::mutex> lock(c.mu);
      c.sizes[ptr] = size;
    }
    return {ptr, ptr, &release_block, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release_block; }

#if LADDER_NEEDS_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#endif
};

}  // namespace

void install_cpu_cache(size_t limit_bytes) {
  static CachingCpuAllocator allocator;
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    cache().limit_bytes = limit_bytes;
  }
  if (limit_bytes > 0) c10::SetCPUAllocator(&allocator, /*priority=*/1);
  empty_cpu_cache();
}

size_t cpu_cache_bytes() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().cached_bytes;
}

void empty_cpu_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& entry : c.free_blocks) {
    for (void* ptr : entry.second) {
      c.sizes.erase(ptr);
      std::free(ptr);
    }
  }
  c.free_blocks.clear();
  c.cached_bytes = 0;
}

}  // namespace ladder
