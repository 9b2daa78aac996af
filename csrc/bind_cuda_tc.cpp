// convnet._cuda, tensor-core kernels (csrc/cuda/gemm_tc.cu, conv2d_tc.cu): float16 and
// bfloat16 operands with float32 accumulation, and float32 ones on TF32. Same calling
// convention as bind_cuda.cpp (device pointers, sizes, CuPy's stream and device); dtype is
// the operands' ("float16", "bfloat16", or "float32" for TF32).
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <string>
#include <type_traits>
#include <vector>

#include "bind_cuda_common.h"
#include "buffer_rules.h"
#include "cuda/tc_kernels.cuh"

namespace py = pybind11;
namespace cu = convnet::cuda;
namespace rules = convnet::rules;

namespace {

using namespace convnet::bind_cuda;  // Ptrs, Sizes, check_buffers, stream_of, conv_geom
using convnet::ConvGeom;
using convnet::index_t;

enum class TcType { f16, bf16, tf32 };

TcType tc_type(const std::string& name) {
  if (name == "float16") return TcType::f16;
  if (name == "bfloat16") return TcType::bf16;
  if (name == "float32") return TcType::tf32;
  throw py::type_error("dtype: expected 'float16', 'bfloat16' or 'float32' (TF32), got '" +
                       name + "'");
}

// mma.sync with these types, ldmatrix and cp.async need sm_80 (Ampere) or later.
void need_tensor_cores(int device) {
  static std::atomic<int> major[64];  // 0: not asked yet
  int m = device < 64 ? major[device].load() : 0;
  if (m == 0) {
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    m = prop.major;
    if (device < 64) major[device] = m;
  }
  if (m < 8)
    throw std::runtime_error("the tensor-core kernels need compute capability 8.0 or later; "
                             "cuda:" + std::to_string(device) + " has " + std::to_string(m) +
                             ".x");
}

// Runs f(T{}) for the operand type, with the GIL released, once every argument is checked.
template <typename F>
void on_tc(const std::string& dtype, int device, F&& f) {
  const TcType t = tc_type(dtype);
  use_device(device);
  need_tensor_cores(device);
  py::gil_scoped_release nogil;
  if (t == TcType::f16)
    f(cu::f16{});
  else if (t == TcType::bf16)
    f(cu::bf16{});
  else
    f(float{});
}

// 16-bit operands write a 16-bit or float32 result
bool float32_out(const std::string& dtype, const std::string& out_dtype, const char* out) {
  tc_type(dtype);
  if (out_dtype != dtype && out_dtype != "float32")
    throw py::type_error(std::string(out) + ": expected dtype " + dtype + " or float32, got " +
                         out_dtype);
  return out_dtype == "float32";
}

// a, b, c
void gemm_tc(const std::string& dtype, const std::string& out_dtype, const Ptrs& p,
             const Sizes& n, index_t M, index_t N, index_t K, index_t lda, index_t ldb,
             index_t ldc, double alpha, double beta, bool trans_a, bool trans_b, ptr_t stream,
             int device) {
  const bool f32_out = float32_out(dtype, out_dtype, "c");
  if (lda < 1 || ldb < 1 || ldc < 1)
    convnet::bind::fail("gemm", "leading dimensions must be >= 1");
  if (!check_buffers(rules::gemm(trans_a, trans_b, M, N, K, lda, ldb, ldc), p, n)) return;
  on_tc(dtype, device, [&](auto t) {
    using T = decltype(t);
    const T* pa = reinterpret_cast<const T*>(p[0]);
    const T* pb = reinterpret_cast<const T*>(p[1]);
    if (f32_out)
      cu::gemm_tc<T, float>(trans_a, trans_b, M, N, K, float(alpha), pa, lda, pb, ldb,
                            float(beta), reinterpret_cast<float*>(p[2]), ldc, stream_of(stream));
    else
      cu::gemm_tc<T, T>(trans_a, trans_b, M, N, K, float(alpha), pa, lda, pb, ldb, float(beta),
                        reinterpret_cast<T*>(p[2]), ldc, stream_of(stream));
  });
}

// x, w, b (float32) or 0, y, conv_table
void conv2d_forward_tc(const std::string& dtype, const Ptrs& p, const Sizes& n,
                       const Sizes& geom, ptr_t stream, int device) {
  const ConvGeom g = conv_geom("conv2d_forward", geom);
  tc_type(dtype);
  if (!check_buffers(rules::conv2d_forward(g).add({"table", 4 * g.C * g.R * g.S}), p, n)) return;
  on_tc(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_forward_tc<T>(g, reinterpret_cast<const T*>(p[0]),
                             reinterpret_cast<const T*>(p[1]),
                             reinterpret_cast<const float*>(p[2]), reinterpret_cast<T*>(p[3]),
                             reinterpret_cast<const int4*>(p[4]), stream_of(stream));
  });
}

// dy, w, dx, dgrad_table
void conv2d_backward_data_tc(const std::string& dtype, const Ptrs& p, const Sizes& n,
                             const Sizes& geom, ptr_t stream, int device) {
  const ConvGeom g = conv_geom("conv2d_backward_data", geom);
  tc_type(dtype);
  if (!check_buffers(rules::conv2d_backward_data(g).add({"table", 4 * g.K * g.R * g.S}), p, n)) return;
  on_tc(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_backward_data_tc<T>(g, reinterpret_cast<const T*>(p[0]),
                                   reinterpret_cast<const T*>(p[1]), reinterpret_cast<T*>(p[2]),
                                   reinterpret_cast<const int4*>(p[3]), stream_of(stream));
  });
}

// dy, x, dw_out, conv_table, work (K*C*R*S float32 for a 16-bit dw_out; 0 for a float32 one)
void conv2d_backward_weight_tc(const std::string& dtype, const std::string& out_dtype,
                               const Ptrs& p, const Sizes& n, const Sizes& geom,
                               ptr_t stream, int device) {
  const ConvGeom g = conv_geom("conv2d_backward_weight", geom);
  const bool f32_out = float32_out(dtype, out_dtype, "dw_out");
  const index_t kcrs = g.K * g.C * g.R * g.S;  // bounded by conv_geom
  convnet::bind::Rule r = rules::conv2d_backward_weight(g);
  r.add({"table", 4 * g.C * g.R * g.S}).add({"work", f32_out ? -1 : kcrs});
  if (!check_buffers(r, p, n)) return;
  on_tc(dtype, device, [&](auto t) {
    using T = decltype(t);
    auto run = [&](auto* dw) {
      using TO = std::remove_pointer_t<decltype(dw)>;
      cu::conv2d_backward_weight_tc<T, TO>(g, reinterpret_cast<const T*>(p[0]),
                                           reinterpret_cast<const T*>(p[1]), dw,
                                           reinterpret_cast<const int4*>(p[3]),
                                           reinterpret_cast<float*>(p[4]), stream_of(stream));
    };
    if (f32_out)
      run(reinterpret_cast<float*>(p[2]));
    else
      run(reinterpret_cast<T*>(p[2]));
  });
}

}  // namespace

void bind_tc(py::module_& m) {
  using py::arg;
  m.def("gemm_tc", &gemm_tc, arg("dtype"), arg("out_dtype"), arg("ptrs"), arg("counts"),
        arg("M"), arg("N"), arg("K"), arg("lda"), arg("ldb"), arg("ldc"), arg("alpha"),
        arg("beta"), arg("trans_a"), arg("trans_b"), arg("stream"), arg("device"),
        "a, b, c: c = alpha * op(a) @ op(b) + beta * c on tensor cores (float16/bfloat16 "
        "operands, or float32 rounded to TF32), float32 accumulation; c has the operands' "
        "dtype or float32 (out_dtype). Row-major; beta == 0 never reads c.");
  m.def("conv2d_forward_tc", &conv2d_forward_tc, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("geom"), arg("stream"), arg("device"),
        "x, w, b (float32) or 0, y, conv_table: conv2d_forward on tensor cores "
        "(float16/bfloat16, or float32 as TF32).");
  m.def("conv2d_backward_data_tc", &conv2d_backward_data_tc, arg("dtype"), arg("ptrs"),
        arg("counts"), arg("geom"), arg("stream"), arg("device"),
        "dy, w, dx, dgrad_table: conv2d_backward_data on tensor cores.");
  m.def("conv2d_backward_weight_tc", &conv2d_backward_weight_tc, arg("dtype"), arg("out_dtype"),
        arg("ptrs"), arg("counts"), arg("geom"), arg("stream"), arg("device"),
        "dy, x, dw_out, conv_table, work: conv2d_backward_weight on tensor cores, dw_out in "
        "the operands' dtype or float32 (out_dtype); work: K*C*R*S float32 of scratch for the "
        "split reduction into a 16-bit dw_out (0 for a float32 one).");
}
