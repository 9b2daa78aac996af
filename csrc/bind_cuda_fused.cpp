// convnet._cuda: the fused-epilogue kernels, as the product (conv2d_forward / gemm of
// csrc/cuda) followed by the epilogue pass of csrc/cuda/epilogue.cu. Same checks as
// bind_cuda.cpp: everything that could make a kernel go out of bounds, before any launch.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "convnet/cuda_utils.cuh"
#include "convnet/epilogue_math.h"
#include "cuda/kernels.cuh"

namespace py = pybind11;
namespace cu = convnet::cuda;
using convnet::ConvGeom;
using index_t = std::int64_t;
using ptr_t = std::uintptr_t;

namespace {

bool is_f32(const std::string& dtype) {
  if (dtype == "float32") return true;
  if (dtype == "float64") return false;
  throw py::type_error("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
}

void need_ptr(ptr_t p, const char* name) {
  if (p == 0) throw py::value_error(std::string(name) + ": null device pointer");
}

void need_act(int act) {
  if (act < 0 || act >= convnet::math::kActEnd)
    throw py::value_error("act: expected an activation code in [0, " +
                          std::to_string(convnet::math::kActEnd - 1) + "], got " +
                          std::to_string(act));
}

// Runs f<float>() or f<double>() on `device` with the GIL released (launches only queue).
template <typename F>
void on_dtype(const std::string& dtype, int device, F&& f) {
  const bool f32 = is_f32(dtype);
  if (device < 0) throw py::value_error("device: expected a device ordinal >= 0");
  CUDA_CHECK(cudaSetDevice(device));
  py::gil_scoped_release nogil;
  if (f32)
    f(float{});
  else
    f(double{});
}

void conv2d_forward_act(const std::string& dtype, ptr_t x, ptr_t w, ptr_t b, ptr_t y,
                        const std::vector<index_t>& geom, ptr_t table, int act, double p1,
                        double p2, ptr_t stream, int device) {
  if (geom.size() != 15)
    throw py::value_error("geom: expected 15 ints (N,C,H,W,K,R,S,P,Q,sh,sw,ph,pw,dh,dw)");
  const ConvGeom g{geom[0], geom[1], geom[2],  geom[3],  geom[4],  geom[5],  geom[6], geom[7],
                   geom[8], geom[9], geom[10], geom[11], geom[12], geom[13], geom[14]};
  if (g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1 || g.K < 1 || g.R < 1 || g.S < 1)
    throw py::value_error("geom: every size must be >= 1");
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.ph < 0 || g.pw < 0)
    throw py::value_error("stride/dilation must be >= 1 and padding >= 0");
  if (g.P < 1 || g.Q < 1) throw py::value_error("y: empty output");
  const index_t lim = (index_t(1) << 31) - 1;
  if (g.C * g.H * g.W > lim || g.K * g.P * g.Q > lim || g.K * g.C * g.R * g.S > lim ||
      g.H + g.ph + g.R * g.dh > lim || g.W + g.pw + g.S * g.dw > lim)
    throw py::value_error("geom: one image or the filters exceed 2^31 elements");
  need_ptr(x, "x");
  need_ptr(w, "w");
  need_ptr(y, "y");
  need_ptr(table, "table");
  need_act(act);
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    T* out = reinterpret_cast<T*>(y);
    const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
    cu::conv2d_forward<T>(g, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(w),
                          reinterpret_cast<const T*>(b), out,
                          reinterpret_cast<const int4*>(table), s);
    cu::bias_act<T>(g.N * g.K * g.P * g.Q, out, nullptr, 1, 1, act, T(p1), T(p2), s);
  });
}

void linear_forward_act(const std::string& dtype, ptr_t x, ptr_t w, ptr_t b, ptr_t y, index_t M,
                        index_t N, index_t K, int act, double p1, double p2, ptr_t stream,
                        int device) {
  if (M < 0 || N < 0 || K < 0) throw py::value_error("linear: sizes must be >= 0");
  if (M * K > 0) need_ptr(x, "x");
  if (N * K > 0) need_ptr(w, "w");
  if (M * N > 0) need_ptr(y, "y");
  need_act(act);
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    T* out = reinterpret_cast<T*>(y);
    const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
    cu::gemm<T>(false, true, M, N, K, T(1), reinterpret_cast<const T*>(x), K,
                reinterpret_cast<const T*>(w), K, T(0), out, N, s);
    cu::bias_act<T>(M * N, out, reinterpret_cast<const T*>(b), 1, N, act, T(p1), T(p2), s);
  });
}

}  // namespace

void bind_fused(py::module_& m) {
  using py::arg;
  m.def("conv2d_forward_act", &conv2d_forward_act, arg("dtype"), arg("x"), arg("w"), arg("b"),
        arg("y"), arg("geom"), arg("table"), arg("act"), arg("p1"), arg("p2"), arg("stream"),
        arg("device"),
        "y = act(conv(x, w) + b): conv2d_forward, then the epilogue pass. geom, table: as "
        "conv2d_forward's.");
  m.def("linear_forward_act", &linear_forward_act, arg("dtype"), arg("x"), arg("w"), arg("b"),
        arg("y"), arg("M"), arg("N"), arg("K"), arg("act"), arg("p1"), arg("p2"), arg("stream"),
        arg("device"), "x (M,K), w (N,K), b (N) or 0 -> y (M,N) = act(x w^T + b).");
}
