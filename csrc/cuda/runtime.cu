// Device queries shared by the launchers (mirrors csrc/cpu/runtime.cpp).
#include <mutex>
#include <vector>

#include "convnet/cuda_utils.cuh"
#include "kernels.cuh"

namespace convnet {
namespace cuda {

int sm_count() {
  static std::mutex lock;
  static std::vector<int> cache;  // per device ordinal; 0 = not asked yet
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> guard(lock);
  if (static_cast<int>(cache.size()) <= dev) cache.resize(dev + 1, 0);
  if (cache[dev] == 0)
    CUDA_CHECK(cudaDeviceGetAttribute(&cache[dev], cudaDevAttrMultiProcessorCount, dev));
  return cache[dev];
}

const char* compiled_archs() {
#ifdef CONVNET_CUDA_ARCHS
  return CONVNET_CUDA_ARCHS;
#else
  return "unknown";
#endif
}

int runtime_version() {
  int v = 0;
  CUDA_CHECK(cudaRuntimeGetVersion(&v));
  return v;
}

}  // namespace cuda
}  // namespace convnet
