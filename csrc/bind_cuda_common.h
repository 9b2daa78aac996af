// What the CUDA binding files (bind_cuda.cpp, bind_cuda_tc.cpp) share: the buffer check of
// a call against its rule (csrc/buffer_rules.h), the device and stream arguments, and the
// convolution geometry, all refused with a clear message before anything touches the device.
#pragma once

#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "buffer_rules.h"
#include "convnet/bind_checks.h"
#include "convnet/cuda_utils.cuh"
#include "cuda/kernels.cuh"

namespace convnet::bind_cuda {

namespace py = pybind11;
using ptr_t = std::uintptr_t;
using Ptrs = std::vector<ptr_t>;
using Sizes = std::vector<index_t>;

// The buffers of one call (device pointers with their element counts, a null pointer for
// None) against the kernel's rule; false when the call touches no element.
inline bool check_buffers(const bind::Rule& r, const Ptrs& ptrs, const Sizes& counts) {
  if (ptrs.size() != counts.size() || ptrs.size() > std::size_t(bind::Rule::kMax))
    bind::fail(r.kernel, "ptrs and counts: expected one count per pointer");
  index_t have[bind::Rule::kMax];
  for (std::size_t i = 0; i < ptrs.size(); ++i) have[i] = ptrs[i] ? counts[i] : -1;
  return bind::check(r, have, ptrs.size());
}

// The CUDA runtime linked here keeps its own current device, separate from CuPy's.
inline void use_device(int device) {
  if (device < 0) throw py::value_error("device: expected a device ordinal >= 0");
  CUDA_CHECK(cudaSetDevice(device));
}

inline cudaStream_t stream_of(ptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// The kernels index one image, one filter bank, one plane and the tables with 32-bit ints.
inline void fits_int32(const char* k, std::initializer_list<index_t> extents) {
  for (index_t e : extents)
    if (e > bind::kIntMax) bind::fail(k, "one image, plane or filter bank exceeds 2^31 elements");
}

inline ConvGeom conv_geom(const char* k, const Sizes& v) {
  if (v.size() != 15)
    bind::fail(k, "geom: expected 15 ints (N,C,H,W,K,R,S,P,Q,sh,sw,ph,pw,dh,dw)");
  ConvGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
             v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
  rules::conv(k, g);
  bind::in_range(k, "sizes", {g.H, g.W}, 1);  // the launch grids need them
  using bind::product;
  fits_int32(k, {product(k, {g.C, g.H, g.W}), product(k, {g.K, g.P, g.Q}),
                 product(k, {g.K, g.C, g.R, g.S}), g.H + g.ph + g.R * g.dh,
                 g.W + g.pw + g.S * g.dw});
  return g;
}

}  // namespace convnet::bind_cuda
