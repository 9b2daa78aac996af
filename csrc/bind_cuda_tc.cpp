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
#include "cuda/tc_kernels.cuh"

namespace py = pybind11;
namespace cu = convnet::cuda;

namespace {

using namespace convnet::bind_cuda;  // ptr, need, stream_of, use_device, conv_geom

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

void gemm_tc(const std::string& dtype, const std::string& out_dtype, ptr_t a, ptr_t b, ptr_t c,
             index_t M, index_t N, index_t K, index_t lda, index_t ldb, index_t ldc, double alpha,
             double beta, bool trans_a, bool trans_b, ptr_t stream, int device) {
  nonneg({M, N, K}, "gemm");
  if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N || lda < 1 || ldb < 1 ||
      ldc < 1)
    throw py::value_error("gemm: leading dimensions smaller than the rows they hold");
  tc_type(dtype);
  if (out_dtype != dtype && out_dtype != "float32")
    throw py::type_error("c: expected dtype " + dtype + " or float32, got " + out_dtype);
  const bool f32_out = out_dtype == "float32";
  if (M * K > 0) need({{a, "a"}});
  if (K * N > 0) need({{b, "b"}});
  if (M * N > 0) need({{c, "c"}});
  on_tc(dtype, device, [&](auto t) {
    using T = decltype(t);
    const T* pa = ptr<const T>(a, "a", M * K);
    const T* pb = ptr<const T>(b, "b", K * N);
    if (f32_out)
      cu::gemm_tc<T, float>(trans_a, trans_b, M, N, K, float(alpha), pa, lda, pb, ldb,
                            float(beta), ptr<float>(c, "c", M * N), ldc, stream_of(stream));
    else
      cu::gemm_tc<T, T>(trans_a, trans_b, M, N, K, float(alpha), pa, lda, pb, ldb, float(beta),
                        ptr<T>(c, "c", M * N), ldc, stream_of(stream));
  });
}

void conv2d_forward_tc(const std::string& dtype, ptr_t x, ptr_t w, ptr_t b, ptr_t y,
                       const std::vector<index_t>& geom, ptr_t table, ptr_t stream, int device) {
  const ConvGeom g = conv_geom(geom);
  need({{x, "x"}, {w, "w"}, {y, "y"}, {table, "table"}});
  on_tc(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_forward_tc<T>(g, ptr<const T>(x, "x", 1), ptr<const T>(w, "w", 1),
                             reinterpret_cast<const float*>(b), ptr<T>(y, "y", 1),
                             ptr<const int4>(table, "table", 1), stream_of(stream));
  });
}

void conv2d_backward_data_tc(const std::string& dtype, ptr_t dy, ptr_t w, ptr_t dx,
                             const std::vector<index_t>& geom, ptr_t table, ptr_t stream,
                             int device) {
  const ConvGeom g = conv_geom(geom);
  need({{dy, "dy"}, {w, "w"}, {dx, "dx"}, {table, "table"}});
  on_tc(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_backward_data_tc<T>(g, ptr<const T>(dy, "dy", 1), ptr<const T>(w, "w", 1),
                                   ptr<T>(dx, "dx", 1), ptr<const int4>(table, "table", 1),
                                   stream_of(stream));
  });
}

void conv2d_backward_weight_tc(const std::string& dtype, const std::string& out_dtype, ptr_t dy,
                               ptr_t x, ptr_t dw_out, const std::vector<index_t>& geom,
                               ptr_t table, ptr_t work, ptr_t stream, int device) {
  const ConvGeom g = conv_geom(geom);
  need({{dy, "dy"}, {x, "x"}, {dw_out, "dw_out"}, {table, "table"}});
  tc_type(dtype);
  if (out_dtype != dtype && out_dtype != "float32")
    throw py::type_error("dw_out: expected dtype " + dtype + " or float32, got " + out_dtype);
  const bool f32_out = out_dtype == "float32";
  if (!f32_out) need({{work, "work"}});
  on_tc(dtype, device, [&](auto t) {
    using T = decltype(t);
    auto run = [&](auto* dw) {
      using TO = std::remove_pointer_t<decltype(dw)>;
      cu::conv2d_backward_weight_tc<T, TO>(g, ptr<const T>(dy, "dy", 1), ptr<const T>(x, "x", 1),
                                           dw, ptr<const int4>(table, "table", 1),
                                           reinterpret_cast<float*>(work), stream_of(stream));
    };
    if (f32_out)
      run(ptr<float>(dw_out, "dw_out", 1));
    else
      run(ptr<T>(dw_out, "dw_out", 1));
  });
}

}  // namespace

void bind_tc(py::module_& m) {
  using py::arg;
  m.def("gemm_tc", &gemm_tc, arg("dtype"), arg("out_dtype"), arg("a"), arg("b"), arg("c"),
        arg("M"), arg("N"), arg("K"), arg("lda"), arg("ldb"), arg("ldc"), arg("alpha"),
        arg("beta"), arg("trans_a"), arg("trans_b"), arg("stream"), arg("device"),
        "c = alpha * op(a) @ op(b) + beta * c on tensor cores (float16/bfloat16 operands, or "
        "float32 rounded to TF32), float32 accumulation; c has the operands' dtype or "
        "float32 (out_dtype). Row-major; beta == 0 never reads c.");
  m.def("conv2d_forward_tc", &conv2d_forward_tc, arg("dtype"), arg("x"), arg("w"), arg("b"),
        arg("y"), arg("geom"), arg("table"), arg("stream"), arg("device"),
        "conv2d_forward on tensor cores (float16/bfloat16, or float32 as TF32); b: float32.");
  m.def("conv2d_backward_data_tc", &conv2d_backward_data_tc, arg("dtype"), arg("dy"), arg("w"),
        arg("dx"), arg("geom"), arg("table"), arg("stream"), arg("device"),
        "conv2d_backward_data on tensor cores (float16/bfloat16, or float32 as TF32).");
  m.def("conv2d_backward_weight_tc", &conv2d_backward_weight_tc, arg("dtype"), arg("out_dtype"),
        arg("dy"), arg("x"), arg("dw_out"), arg("geom"), arg("table"), arg("work"),
        arg("stream"), arg("device"),
        "conv2d_backward_weight on tensor cores, dw_out in the operands' dtype or float32 "
        "(out_dtype); work: K*C*R*S float32 of scratch for the split reduction into a 16-bit "
        "dw_out (0 allowed for a float32 one).");
}
