// Checks shared by the CUDA binding files (bind_cuda.cpp, bind_cuda_tc.cpp): device
// pointers, streams, devices and the convolution geometry, refused with a clear message
// before anything touches the device.
#pragma once

#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "convnet/cuda_utils.cuh"
#include "cuda/kernels.cuh"

namespace convnet {
namespace bind_cuda {

namespace py = pybind11;
using convnet::ConvGeom;
using index_t = std::int64_t;
using ptr_t = std::uintptr_t;

template <typename T>
inline T* ptr(ptr_t p, const char* name, index_t count) {
  if (p == 0 && count > 0) throw py::value_error(std::string(name) + ": null device pointer");
  return reinterpret_cast<T*>(p);
}

// Null pointers are refused before anything touches the device (checks run without a GPU).
inline void need(std::initializer_list<std::pair<ptr_t, const char*>> ptrs) {
  for (const auto& p : ptrs)
    if (p.first == 0) throw py::value_error(std::string(p.second) + ": null device pointer");
}

inline cudaStream_t stream_of(ptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// The CUDA runtime linked here keeps its own current device, separate from CuPy's.
inline void use_device(int device) {
  if (device < 0) throw py::value_error("device: expected a device ordinal >= 0");
  CUDA_CHECK(cudaSetDevice(device));
}

inline void nonneg(std::initializer_list<index_t> sizes, const char* what) {
  for (index_t s : sizes)
    if (s < 0) throw py::value_error(std::string(what) + ": sizes must be >= 0");
}

inline ConvGeom conv_geom(const std::vector<index_t>& v) {
  if (v.size() != 15)
    throw py::value_error("geom: expected 15 ints (N,C,H,W,K,R,S,P,Q,sh,sw,ph,pw,dh,dw)");
  ConvGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
             v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
  if (g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1 || g.K < 1 || g.R < 1 || g.S < 1)
    throw py::value_error("geom: every size must be >= 1");
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.ph < 0 || g.pw < 0)
    throw py::value_error("stride/dilation must be >= 1 and padding >= 0");
  // any output size stays in bounds (windows are clipped to the input; the rest is the
  // bottom/right padding, which is how asymmetric padding reaches the kernels)
  if (g.P < 1 || g.Q < 1) throw py::value_error("y: empty output");
  // The kernels index within one image, one filter bank and the tables with 32-bit ints.
  const index_t lim = (index_t(1) << 31) - 1;
  if (g.C * g.H * g.W > lim || g.K * g.P * g.Q > lim || g.K * g.C * g.R * g.S > lim ||
      g.H + g.ph + g.R * g.dh > lim || g.W + g.pw + g.S * g.dw > lim)
    throw py::value_error("geom: one image or the filters exceed 2^31 elements");
  return g;
}

}  // namespace bind_cuda
}  // namespace convnet
