// convnet._cuda: thin pybind11 layer over csrc/cuda. Every kernel takes the dtype, its
// buffers as device pointers (CuPy's `a.data.ptr`, 0 for None) with their element counts,
// in the manifest's order (convnet/kernels/spec.py) plus the scratch buffers the adapter
// adds, then its sizes and scalars, CuPy's stream and device. The friendly checks were made
// by the validation boundary (convnet/kernels/_boundary.py) and the adapter
// (convnet/kernels/_cuda.py); this layer checks, before anything is queued, what could make
// a kernel go out of bounds: every buffer holds the elements the sizes need (the rules of
// csrc/buffer_rules.h, in checked 64-bit arithmetic) and the sizes fit the kernels' 32-bit
// indexing. All math is in csrc/cuda.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "buffer_rules.h"
#include "convnet/bind_checks.h"
#include "bind_cuda_common.h"
#include "convnet/cuda_utils.cuh"
#include "cuda/kernels.cuh"

namespace py = pybind11;
namespace cu = convnet::cuda;
namespace rules = convnet::rules;
using convnet::ConvGeom;
using convnet::PoolGeom;
using convnet::bind::fail;
using convnet::bind::kIntMax;
using convnet::bind::Rule;
using index_t = std::int64_t;
using namespace convnet::bind_cuda;  // Ptrs, Sizes, check_buffers, use_device, conv_geom...

namespace {

// The buffers of one call, checked against the kernel's rule (a null pointer is None).
class Bufs {
 public:
  Bufs(const Rule& r, const Ptrs& ptrs, const Sizes& counts) : p_(ptrs) {
    touches_ = check_buffers(r, ptrs, counts);
  }
  template <typename F>
  void run(const std::string& dtype, int device, F&& f) const;
  template <typename T>
  T* at(int i) const {
    return reinterpret_cast<T*>(p_[i]);
  }

 private:
  const Ptrs& p_;
  bool touches_ = false;
};

bool is_f32(const std::string& dtype) {
  if (dtype != "float32" && dtype != "float64")
    throw py::type_error("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
  return dtype == "float32";
}

// Runs f(float{}) or f(double{}) with the GIL released (the launchers only queue work),
// unless the call touches no element.
template <typename F>
void Bufs::run(const std::string& dtype, int device, F&& f) const {
  const bool f32 = is_f32(dtype);
  if (!touches_) return;
  use_device(device);  // every argument is checked before the device is touched
  py::gil_scoped_release nogil;
  if (f32)
    f(float{});
  else
    f(double{});
}

PoolGeom pool_geom(const char* k, const Sizes& v) {
  if (v.size() != 12) fail(k, "geom: expected 12 ints (N,C,H,W,P,Q,kh,kw,sh,sw,ph,pw)");
  PoolGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]};
  rules::pool(k, g);  // max_pool2d_backward's window is unused, its sizes checked the same
  fits_int32(k, {convnet::bind::product(k, {g.H, g.W}), g.H + g.kh + g.ph, g.W + g.kw + g.pw});
  return g;
}

convnet::UpsampleGeom upsample_geom(const char* k, const Sizes& v) {
  if (v.size() != 6) fail(k, "geom: expected 6 ints (N,C,H,W,P,Q)");
  return {v[0], v[1], v[2], v[3], v[4], v[5]};
}

void gemm(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t M, index_t N,
          index_t K, index_t lda, index_t ldb, index_t ldc, double alpha, double beta,
          bool trans_a, bool trans_b, ptr_t stream, int device) {
  if (lda < 1 || ldb < 1 || ldc < 1) fail("gemm", "leading dimensions must be >= 1");
  const Bufs b(rules::gemm(trans_a, trans_b, M, N, K, lda, ldb, ldc), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::gemm<T>(trans_a, trans_b, M, N, K, T(alpha), b.at<const T>(0), lda, b.at<const T>(1),
                ldb, T(beta), b.at<T>(2), ldc, stream_of(stream));
  });
}

// Convolutions: buffers in the manifest's order, then the index table (int32, 4 per row).
void conv2d_forward(const std::string& dtype, const Ptrs& p, const Sizes& n, const Sizes& geom,
                    ptr_t stream, int device) {
  const ConvGeom g = conv_geom("conv2d_forward", geom);
  const Bufs b(rules::conv2d_forward(g).add({"table", 4 * g.C * g.R * g.S}), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_forward<T>(g, b.at<const T>(0), b.at<const T>(1), b.at<const T>(2), b.at<T>(3),
                          b.at<const int4>(4), stream_of(stream));
  });
}

// the product, then the epilogue pass (csrc/cuda/epilogue.cu)
void conv2d_forward_act(const std::string& dtype, const Ptrs& p, const Sizes& n,
                        const Sizes& geom, int act, double p1, double p2, ptr_t stream,
                        int device) {
  const ConvGeom g = conv_geom("conv2d_forward_act", geom);
  rules::activation_code("conv2d_forward_act", act);
  const Bufs b(rules::conv2d_forward_act(g).add({"table", 4 * g.C * g.R * g.S}), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    T* y = b.at<T>(3);
    const cudaStream_t s = stream_of(stream);
    cu::conv2d_forward<T>(g, b.at<const T>(0), b.at<const T>(1), b.at<const T>(2), y,
                          b.at<const int4>(4), s);
    cu::bias_act<T>(g.N * g.K * g.P * g.Q, y, nullptr, 1, 1, act, T(p1), T(p2), s);
  });
}

void linear_forward_act(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t M,
                        index_t N, index_t K, int act, double p1, double p2, ptr_t stream,
                        int device) {
  rules::activation_code("linear_forward_act", act);
  const Bufs b(rules::linear_forward_act(M, N, K), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    T* y = b.at<T>(3);
    const cudaStream_t s = stream_of(stream);
    cu::gemm<T>(false, true, M, N, K, T(1), b.at<const T>(0), K, b.at<const T>(1), K, T(0), y, N,
                s);
    cu::bias_act<T>(M * N, y, b.at<const T>(2), 1, N, act, T(p1), T(p2), s);
  });
}

void conv2d_backward_data(const std::string& dtype, const Ptrs& p, const Sizes& n,
                          const Sizes& geom, ptr_t stream, int device) {
  const ConvGeom g = conv_geom("conv2d_backward_data", geom);
  const Bufs b(rules::conv2d_backward_data(g).add({"table", 4 * g.K * g.R * g.S}), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_backward_data<T>(g, b.at<const T>(0), b.at<const T>(1), b.at<T>(2),
                                b.at<const int4>(3), stream_of(stream));
  });
}

void conv2d_backward_weight(const std::string& dtype, const Ptrs& p, const Sizes& n,
                            const Sizes& geom, ptr_t stream, int device) {
  const ConvGeom g = conv_geom("conv2d_backward_weight", geom);
  const Bufs b(rules::conv2d_backward_weight(g).add({"table", 4 * g.C * g.R * g.S}), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_backward_weight<T>(g, b.at<const T>(0), b.at<const T>(1), b.at<T>(2),
                                  b.at<const int4>(3), stream_of(stream));
  });
}

void conv2d_backward_bias(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t N,
                          index_t K, index_t P, index_t Q, ptr_t stream, int device) {
  convnet::bind::in_range("conv2d_backward_bias", "sizes", {N, K, P, Q}, 1);
  const Bufs b(rules::conv2d_backward_bias(N, K, P, Q), p, n);
  const ConvGeom g{N, 0, 0, 0, K, 1, 1, P, Q, 1, 1, 0, 0, 1, 1};
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_backward_bias<T>(g, b.at<const T>(0), b.at<T>(1), stream_of(stream));
  });
}

void max_pool2d_forward(const std::string& dtype, const Ptrs& p, const Sizes& n,
                        const Sizes& geom, ptr_t stream, int device) {
  const PoolGeom g = pool_geom("max_pool2d_forward", geom);
  const Bufs b(rules::max_pool2d_forward(g), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::max_pool2d_forward<T>(g, b.at<const T>(0), b.at<T>(1), b.at<std::int64_t>(2),
                              stream_of(stream));
  });
}

// Only the sizes matter (the window is in the indices, which the boundary range-checks).
void max_pool2d_backward(const std::string& dtype, const Ptrs& p, const Sizes& n,
                         const Sizes& geom, ptr_t stream, int device) {
  const PoolGeom g = pool_geom("max_pool2d_backward", geom);
  const Bufs b(rules::max_pool2d_backward(g), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::max_pool2d_backward<T>(g, b.at<const T>(0), b.at<const std::int64_t>(1), b.at<T>(2),
                               stream_of(stream));
  });
}

void avg_pool2d_forward(const std::string& dtype, const Ptrs& p, const Sizes& n,
                        const Sizes& geom, bool count_include_pad, ptr_t stream, int device) {
  const PoolGeom g = pool_geom("avg_pool2d_forward", geom);
  const Bufs b(rules::avg_pool2d_forward(g), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::avg_pool2d_forward<T>(g, b.at<const T>(0), b.at<T>(1), count_include_pad,
                              stream_of(stream));
  });
}

void avg_pool2d_backward(const std::string& dtype, const Ptrs& p, const Sizes& n,
                         const Sizes& geom, bool count_include_pad, ptr_t stream, int device) {
  const PoolGeom g = pool_geom("avg_pool2d_backward", geom);
  const Bufs b(rules::avg_pool2d_backward(g), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::avg_pool2d_backward<T>(g, b.at<const T>(0), b.at<T>(1), count_include_pad,
                               stream_of(stream));
  });
}

// Batch norm: the buffers, then the float64 workspace (batch_norm_workspace doubles; the
// inference kernel's is 2*C).
index_t bn_work(const char* k, index_t N, index_t C, index_t L, bool training, int device) {
  convnet::bind::in_range(k, "C", {C}, 1);
  if (training) use_device(device);  // the split of the reductions follows the SM count
  return training ? cu::batch_norm_workspace(N, C, L) : 2 * C;
}

void batch_norm_forward_training(const std::string& dtype, const Ptrs& p, const Sizes& n,
                                 index_t N, index_t C, index_t L, double eps, ptr_t stream,
                                 int device) {
  Rule r = rules::batch_norm_forward_training(N, C, L);
  const Bufs b(r.add({"work", bn_work(r.kernel, N, C, L, true, device)}), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::batch_norm_forward_training<T>(N, C, L, b.at<const T>(0), b.at<const T>(1),
                                       b.at<const T>(2), b.at<T>(3), b.at<T>(4), b.at<T>(5),
                                       b.at<T>(6), eps, b.at<double>(7), stream_of(stream));
  });
}

void batch_norm_forward_inference(const std::string& dtype, const Ptrs& p, const Sizes& n,
                                  index_t N, index_t C, index_t L, double eps, ptr_t stream,
                                  int device) {
  Rule r = rules::batch_norm_forward_inference(N, C, L);
  const Bufs b(r.add({"work", bn_work(r.kernel, N, C, L, false, device)}), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::batch_norm_forward_inference<T>(N, C, L, b.at<const T>(0), b.at<const T>(1),
                                        b.at<const T>(2), b.at<const T>(3), b.at<const T>(4),
                                        b.at<T>(5), eps, b.at<double>(6), stream_of(stream));
  });
}

void batch_norm_backward(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t N,
                         index_t C, index_t L, ptr_t stream, int device) {
  Rule r = rules::batch_norm_backward(N, C, L);
  const Bufs b(r.add({"work", bn_work(r.kernel, N, C, L, true, device)}), p, n);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::batch_norm_backward<T>(N, C, L, b.at<const T>(0), b.at<const T>(1), b.at<const T>(2),
                               b.at<const T>(3), b.at<const T>(4), b.at<T>(5), b.at<T>(6),
                               b.at<T>(7), b.at<double>(8), stream_of(stream));
  });
}

index_t batch_norm_workspace(index_t N, index_t C, index_t L, int device) {
  const char* k = "batch_norm_workspace";
  rules::batch_norm(k, N, C, L, {}, {});
  return bn_work(k, N, C, L, true, device);
}

// Element-wise kernels: buffers (x, y) forward or (dy, saved, dx) backward of counts[0]
// elements, and the kernel's scalar parameters; launch(T{}, n, buffers, params, stream).
template <int Arrays, int Params, typename Launch>
void elementwise(const char* k, const std::string& dtype, const Ptrs& p, const Sizes& n,
                 const std::vector<double>& params, ptr_t stream, int device, Launch launch) {
  const index_t count = n.empty() ? 0 : n[0];
  const Bufs b(Arrays == 2 ? rules::elementwise(k, count, {"x", "y"})
                           : rules::elementwise(k, count, {"dy", "saved", "dx"}),
               p, n);
  if (params.size() != Params)
    fail(k, "params: expected " + std::to_string(Params) + " scalars");
  b.run(dtype, device, [&](auto t) { launch(t, count, b, params.data(), stream_of(stream)); });
}

// ---- recurrent cells and the recurrence (csrc/cuda/rnn.cu)

// every per-step offset the kernels form (16*B*H at most) stays inside 64 bits
void rnn_sizes(const char* k, index_t B, index_t H) {
  rules::cell(k, B, H);
  convnet::bind::product(k, {16, B, H});
}

// The cells: B, H and the buffers in the manifest's order; f(T{}, buffers, stream) queues.
template <typename Launch>
void cell(const char* k, Rule (*rule)(index_t, index_t), const std::string& dtype,
          const Ptrs& p, const Sizes& n, index_t B, index_t H, ptr_t stream, int device,
          Launch launch) {
  rnn_sizes(k, B, H);
  const Bufs b(rule(B, H), p, n);
  b.run(dtype, device, [&](auto t) { launch(t, b, stream_of(stream)); });
}

#define IN(i) b.template at<const T>(i)
#define OUT(i) b.template at<T>(i)

void lstm_cell_forward(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t B,
                       index_t H, ptr_t stream, int device) {
  cell("lstm_cell_forward", rules::lstm_cell_forward, dtype, p, n, B, H, stream, device,
       [&](auto t, const Bufs& b, cudaStream_t s) {
         using T = decltype(t);
         cu::lstm_cell_forward<T>(B, H, IN(0), IN(1), IN(2), OUT(3), OUT(4), OUT(5), s);
       });
}

void lstm_cell_backward(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t B,
                        index_t H, bool accumulate, ptr_t stream, int device) {
  cell("lstm_cell_backward", rules::lstm_cell_backward, dtype, p, n, B, H, stream, device,
       [&](auto t, const Bufs& b, cudaStream_t s) {
         using T = decltype(t);
         cu::lstm_cell_backward<T>(B, H, IN(0), IN(1), IN(2), IN(3), IN(4), OUT(5), OUT(6),
                                   OUT(7), accumulate, s);
       });
}

void gru_cell_forward(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t B,
                      index_t H, ptr_t stream, int device) {
  cell("gru_cell_forward", rules::gru_cell_forward, dtype, p, n, B, H, stream, device,
       [&](auto t, const Bufs& b, cudaStream_t s) {
         using T = decltype(t);
         cu::gru_cell_forward<T>(B, H, IN(0), IN(1), IN(2), IN(3), IN(4), OUT(5), OUT(6), s);
       });
}

void gru_cell_backward(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t B,
                       index_t H, bool accumulate, ptr_t stream, int device) {
  cell("gru_cell_backward", rules::gru_cell_backward, dtype, p, n, B, H, stream, device,
       [&](auto t, const Bufs& b, cudaStream_t s) {
         using T = decltype(t);
         cu::gru_cell_backward<T>(B, H, IN(0), IN(1), IN(2), OUT(3), OUT(4), OUT(5), OUT(6),
                                  OUT(7), accumulate, s);
       });
}

void rnn_cell_forward(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t B,
                      index_t H, bool relu, ptr_t stream, int device) {
  cell("rnn_cell_forward", rules::rnn_cell_forward, dtype, p, n, B, H, stream, device,
       [&](auto t, const Bufs& b, cudaStream_t s) {
         using T = decltype(t);
         cu::rnn_cell_forward<T>(B, H, IN(0), IN(1), OUT(2), relu, s);
       });
}

void rnn_cell_backward(const std::string& dtype, const Ptrs& p, const Sizes& n, index_t B,
                       index_t H, bool relu, bool accumulate, ptr_t stream, int device) {
  cell("rnn_cell_backward", rules::rnn_cell_backward, dtype, p, n, B, H, stream, device,
       [&](auto t, const Bufs& b, cudaStream_t s) {
         using T = decltype(t);
         cu::rnn_cell_backward<T>(B, H, IN(0), IN(1), OUT(2), OUT(3), relu, accumulate, s);
       });
}

// The recurrence: Tn steps; buffers in the manifest's order (cbuf, act, dc: 0 when unused).
void rnn_recurrence_forward(const std::string& dtype, int mode, const Ptrs& p, const Sizes& n,
                            index_t Tn, index_t B, index_t H, bool reverse, ptr_t stream,
                            int device) {
  const char* k = "rnn_recurrence_forward";
  const Bufs b(rules::rnn_recurrence_forward(mode, Tn, B, H), p, n);
  rnn_sizes(k, B, H);
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::rnn_recurrence_forward<T>(mode, Tn, B, H, OUT(0), IN(1), IN(2), IN(3), OUT(4),
                                  mode == 0 ? OUT(5) : nullptr, mode == 1 ? OUT(6) : nullptr,
                                  reverse, stream_of(stream));
  });
}

void rnn_recurrence_backward(const std::string& dtype, int mode, const Ptrs& p, const Sizes& n,
                             index_t Tn, index_t B, index_t H, bool reverse, ptr_t stream,
                             int device) {
  const char* k = "rnn_recurrence_backward";
  const Bufs b(rules::rnn_recurrence_backward(mode, Tn, B, H), p, n);
  rnn_sizes(k, B, H);
  // the GRU's kernel writes both: one array for the two would race
  if (mode == 1 && (p[6] == p[7] || p[8] == p[9]))
    fail(k, "dgh: the GRU needs separate dgx/dgh and dbx/dbh arrays");
  b.run(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::rnn_recurrence_backward<T>(mode, Tn, B, H, IN(0), IN(1), mode == 0 ? IN(2) : nullptr,
                                   mode <= 1 ? IN(3) : nullptr, OUT(4),
                                   mode == 0 ? OUT(5) : nullptr, OUT(6), OUT(7), OUT(8), OUT(9),
                                   reverse, stream_of(stream));
  });
}

// ---- upsampling (csrc/cuda/upsample.cu); geom (N,C,H,W,P,Q)

template <typename Launch>
void upsample(const char* k, bool forward, const std::string& dtype, const Ptrs& p,
              const Sizes& n, const Sizes& geom, double scale_h, double scale_w, ptr_t stream,
              int device, Launch launch) {
  const auto g = upsample_geom(k, geom);
  const Bufs b(rules::upsample2d(k, g, scale_h, scale_w, forward), p, n);
  b.run(dtype, device, [&](auto t) { launch(t, g, b, stream_of(stream)); });
}

void upsample_nearest2d_forward(const std::string& dtype, const Ptrs& p, const Sizes& n,
                                const Sizes& geom, double scale_h, double scale_w,
                                ptr_t stream, int device) {
  upsample("upsample_nearest2d_forward", true, dtype, p, n, geom, scale_h, scale_w, stream,
           device, [&](auto t, const auto& g, const Bufs& b, cudaStream_t s) {
             using T = decltype(t);
             cu::upsample_nearest2d_forward<T>(g, IN(0), OUT(1), scale_h, scale_w, s);
           });
}

void upsample_nearest2d_backward(const std::string& dtype, const Ptrs& p, const Sizes& n,
                                 const Sizes& geom, double scale_h, double scale_w,
                                 ptr_t stream, int device) {
  upsample("upsample_nearest2d_backward", false, dtype, p, n, geom, scale_h, scale_w, stream,
           device, [&](auto t, const auto& g, const Bufs& b, cudaStream_t s) {
             using T = decltype(t);
             cu::upsample_nearest2d_backward<T>(g, IN(0), OUT(1), scale_h, scale_w, s);
           });
}

void upsample_bilinear2d_forward(const std::string& dtype, const Ptrs& p, const Sizes& n,
                                 const Sizes& geom, bool align_corners, double scale_h,
                                 double scale_w, ptr_t stream, int device) {
  upsample("upsample_bilinear2d_forward", true, dtype, p, n, geom, scale_h, scale_w, stream,
           device, [&](auto t, const auto& g, const Bufs& b, cudaStream_t s) {
             using T = decltype(t);
             cu::upsample_bilinear2d_forward<T>(g, IN(0), OUT(1), align_corners, scale_h,
                                                scale_w, s);
           });
}

void upsample_bilinear2d_backward(const std::string& dtype, const Ptrs& p, const Sizes& n,
                                  const Sizes& geom, bool align_corners, double scale_h,
                                  double scale_w, ptr_t stream, int device) {
  upsample("upsample_bilinear2d_backward", false, dtype, p, n, geom, scale_h, scale_w, stream,
           device, [&](auto t, const auto& g, const Bufs& b, cudaStream_t s) {
             using T = decltype(t);
             cu::upsample_bilinear2d_backward<T>(g, IN(0), OUT(1), align_corners, scale_h,
                                                 scale_w, s);
           });
}

py::dict device_info(int device) {
  use_device(device);
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int driver = 0;
  CUDA_CHECK(cudaDriverGetVersion(&driver));
  py::dict d;
  d["name"] = std::string(prop.name);
  d["compute_capability"] = py::make_tuple(prop.major, prop.minor);
  d["multiprocessors"] = prop.multiProcessorCount;
  d["total_memory"] = static_cast<std::size_t>(prop.totalGlobalMem);
  d["driver_version"] = driver;
  return d;
}

int device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error for later calls
    throw std::runtime_error(std::string("no usable CUDA device: ") + cudaGetErrorName(err) +
                             " (" + cudaGetErrorString(err) + ")");
  }
  return n;
}

}  // namespace

void bind_tc(py::module_& m);  // bind_cuda_tc.cpp

PYBIND11_MODULE(_cuda, m) {
  m.doc() =
      "convnet CUDA kernels on device pointers (CuPy's a.data.ptr) with their element "
      "counts, CuPy's stream and device. Called through convnet.kernels (_cuda.py).";
  using py::arg;
  // every kernel: (dtype, ptrs, counts, sizes..., scalars..., stream, device)
  m.def("gemm", &gemm, arg("dtype"), arg("ptrs"), arg("counts"), arg("M"), arg("N"), arg("K"),
        arg("lda"), arg("ldb"), arg("ldc"), arg("alpha"), arg("beta"), arg("trans_a"),
        arg("trans_b"), arg("stream"), arg("device"),
        "a, b, c: c = alpha * op(a) @ op(b) + beta * c; row-major; beta == 0 never reads c.");
  m.def("conv2d_forward", &conv2d_forward, arg("dtype"), arg("ptrs"), arg("counts"), arg("geom"),
        arg("stream"), arg("device"),
        "x (N,C,H,W), w (K,C,R,S), b (K) or 0, y (N,K,P,Q), conv_table (C*R*S int4). geom: "
        "(N,C,H,W,K,R,S,P,Q,sh,sw,ph,pw,dh,dw).");
  m.def("conv2d_forward_act", &conv2d_forward_act, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("geom"), arg("act"), arg("p1"), arg("p2"), arg("stream"), arg("device"),
        "As conv2d_forward, then y = act(y) (the bias added by the convolution).");
  m.def("linear_forward_act", &linear_forward_act, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("M"), arg("N"), arg("K"), arg("act"), arg("p1"), arg("p2"), arg("stream"),
        arg("device"), "x (M,K), w (N,K), b (N) or 0, y (M,N) = act(x w^T + b).");
  m.def("conv2d_backward_data", &conv2d_backward_data, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("geom"), arg("stream"), arg("device"),
        "dy (N,K,P,Q), w (K,C,R,S), dx (N,C,H,W), dgrad_table (K*R*S int4).");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, arg("dtype"), arg("ptrs"),
        arg("counts"), arg("geom"), arg("stream"), arg("device"),
        "dy (N,K,P,Q), x (N,C,H,W), dw_out (K,C,R,S), conv_table.");
  m.def("conv2d_backward_bias", &conv2d_backward_bias, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("N"), arg("K"), arg("P"), arg("Q"), arg("stream"), arg("device"),
        "dy (N,K,P,Q), db (K).");
  m.def("max_pool2d_forward", &max_pool2d_forward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("geom"), arg("stream"), arg("device"),
        "x (N,C,H,W), y, indices (N,C,P,Q). geom: (N,C,H,W,P,Q,kh,kw,sh,sw,ph,pw).");
  m.def("max_pool2d_backward", &max_pool2d_backward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("geom"), arg("stream"), arg("device"), "dy, indices (N,C,P,Q), dx (N,C,H,W).");
  m.def("avg_pool2d_forward", &avg_pool2d_forward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("geom"), arg("count_include_pad"), arg("stream"), arg("device"),
        "x (N,C,H,W), y (N,C,P,Q).");
  m.def("avg_pool2d_backward", &avg_pool2d_backward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("geom"), arg("count_include_pad"), arg("stream"), arg("device"),
        "dy (N,C,P,Q), dx (N,C,H,W).");
  m.def("batch_norm_workspace", &batch_norm_workspace, arg("N"), arg("C"), arg("L"),
        arg("device"), "Doubles of scratch the batch norm kernels need for (N,C,L).");
  m.def("batch_norm_forward_training", &batch_norm_forward_training, arg("dtype"), arg("ptrs"),
        arg("counts"), arg("N"), arg("C"), arg("L"), arg("eps"), arg("stream"), arg("device"),
        "x (N,C,L), weight, bias (C) -> y (N,C,L), mean, biased var, invstd (C); work.");
  m.def("batch_norm_forward_inference", &batch_norm_forward_inference, arg("dtype"),
        arg("ptrs"), arg("counts"), arg("N"), arg("C"), arg("L"), arg("eps"), arg("stream"),
        arg("device"),
        "x (N,C,L), weight, bias, running_mean, running_var (C) -> y (N,C,L); work (2C).");
  m.def("batch_norm_backward", &batch_norm_backward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("N"), arg("C"), arg("L"), arg("stream"), arg("device"),
        "dy, x (N,C,L), weight, mean, invstd (C) -> dx (N,C,L), dweight, dbias (C); work.");
  // element-wise: (dtype, ptrs, counts, params, stream, device); x, y forward and dy, saved,
  // dx backward of counts[0] elements; params: the manifest's scalars
  const auto act = [&m](const char* name, auto fn, const char* doc) {
    m.def(name, fn, arg("dtype"), arg("ptrs"), arg("counts"), arg("params"), arg("stream"),
          arg("device"), doc);
  };
#define ELEMENTWISE(name, arrays, params, CALL)                                               \
  [](const std::string& dtype, const Ptrs& p, const Sizes& n, const std::vector<double>& prm, \
     ptr_t stream, int device) {                                                             \
    elementwise<arrays, params>(name, dtype, p, n, prm, stream, device,                      \
                                [](auto t, index_t n, const Bufs& b, const double* q,         \
                                   cudaStream_t s) {                                          \
                                  using T = decltype(t);                                      \
                                  (void)q;                                                    \
                                  CALL;                                                       \
                                });                                                           \
  }
  act("tanh_forward", ELEMENTWISE("tanh_forward", 2, 0, cu::tanh_forward<T>(n, IN(0), OUT(1), s)),
      "y = tanh(x).");
  act("tanh_backward",
      ELEMENTWISE("tanh_backward", 3, 0, cu::tanh_backward<T>(n, IN(0), IN(1), OUT(2), s)),
      "dx = dy * (1 - y^2).");
  act("sigmoid_forward",
      ELEMENTWISE("sigmoid_forward", 2, 0, cu::sigmoid_forward<T>(n, IN(0), OUT(1), s)),
      "y = 1 / (1 + exp(-x)), stable for large |x|.");
  act("sigmoid_backward",
      ELEMENTWISE("sigmoid_backward", 3, 0, cu::sigmoid_backward<T>(n, IN(0), IN(1), OUT(2), s)),
      "dx = dy * y * (1 - y).");
  act("leaky_relu_forward",
      ELEMENTWISE("leaky_relu_forward", 2, 1,
                  cu::leaky_relu_forward<T>(n, IN(0), OUT(1), T(q[0]), s)),
      "y = x if x > 0 else slope * x.");
  act("leaky_relu_backward",
      ELEMENTWISE("leaky_relu_backward", 3, 1,
                  cu::leaky_relu_backward<T>(n, IN(0), IN(1), OUT(2), T(q[0]), s)),
      "dx = dy if x > 0 else slope * dy.");
  act("elu_forward",
      ELEMENTWISE("elu_forward", 2, 2, cu::elu_forward<T>(n, IN(0), OUT(1), T(q[0]), T(q[1]), s)),
      "y = scale * (x if x > 0 else alpha * (exp(x) - 1)); params (alpha, scale).");
  act("elu_backward",
      ELEMENTWISE("elu_backward", 3, 2,
                  cu::elu_backward<T>(n, IN(0), IN(1), OUT(2), T(q[0]), T(q[1]), s)),
      "dx = dy * scale * (alpha * exp(x) if x <= 0 else 1).");
#define BIND_FORMULA(name, Op)                                                               \
  act(#name "_forward",                                                                      \
      ELEMENTWISE(#name "_forward", 2, 1,                                                    \
                  (cu::formula_forward<convnet::math::Op, T>(n, IN(0), OUT(1), T(q[0]), s))), \
      "y = " #name "(x).");                                                                  \
  act(#name "_backward",                                                                     \
      ELEMENTWISE(#name "_backward", 3, 1,                                                   \
                  (cu::formula_backward<convnet::math::Op, T>(n, IN(0), IN(1), OUT(2), T(q[0]), \
                                                              s))),                          \
      "dx = dy * " #name "'(x).");
  CONVNET_FORMULA_ACTIVATIONS(BIND_FORMULA)
#undef BIND_FORMULA
#undef ELEMENTWISE
  m.def("device_count", &device_count, "Number of CUDA devices; RuntimeError without a driver.");
  m.def("device_info", &device_info, arg("device"),
        "name, compute capability, SM count, memory and driver version of a device.");
  m.def("compiled_archs", &cu::compiled_archs, "The gencode targets this module was built for.");
  m.def("runtime_version", &cu::runtime_version, "CUDA runtime version linked in (e.g. 13000).");
  // recurrent cells (dtype, ptrs, counts, B, H, flags..., stream, device) and the recurrence
  m.def("lstm_cell_forward", &lstm_cell_forward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("B"), arg("H"), arg("stream"), arg("device"),
        "gates (B,4H), bias (4H), c_prev (B,H) -> h, c (B,H), act (B,4H).");
  m.def("lstm_cell_backward", &lstm_cell_backward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("B"), arg("H"), arg("accumulate"), arg("stream"), arg("device"),
        "act (B,4H), c_prev, c, dh, dc (B,H) -> dgates (B,4H), dc_prev (B,H), db (4H).");
  m.def("gru_cell_forward", &gru_cell_forward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("B"), arg("H"), arg("stream"), arg("device"),
        "gx, gh (B,3H), b_ih, b_hh (3H), h_prev (B,H) -> h (B,H), act (B,4H).");
  m.def("gru_cell_backward", &gru_cell_backward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("B"), arg("H"), arg("accumulate"), arg("stream"), arg("device"),
        "act (B,4H), h_prev, dh (B,H) -> dgx, dgh (B,3H), dh_prev (B,H), dbx, dbh (3H).");
  m.def("rnn_cell_forward", &rnn_cell_forward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("B"), arg("H"), arg("relu"), arg("stream"), arg("device"),
        "pre (B,H), bias (H) -> h (B,H) = tanh or relu of pre + bias.");
  m.def("rnn_cell_backward", &rnn_cell_backward, arg("dtype"), arg("ptrs"), arg("counts"),
        arg("B"), arg("H"), arg("relu"), arg("accumulate"), arg("stream"), arg("device"),
        "h, dh (B,H) -> dpre (B,H), db (H).");
  m.def("rnn_recurrence_forward", &rnn_recurrence_forward, arg("dtype"), arg("mode"),
        arg("ptrs"), arg("counts"), arg("T"), arg("B"), arg("H"), arg("reverse"), arg("stream"),
        arg("device"),
        "One layer direction over a sequence: xproj (T,B,G*H) consumed, w_hh, b_ih, b_hh, "
        "hbuf (T+1,B,H) with h0 in place -> states; cbuf (LSTM) and act (GRU) or 0.");
  m.def("rnn_recurrence_backward", &rnn_recurrence_backward, arg("dtype"), arg("mode"),
        arg("ptrs"), arg("counts"), arg("T"), arg("B"), arg("H"), arg("reverse"), arg("stream"),
        arg("device"),
        "Backpropagation through time: w_hh, hbuf, cbuf, act, dH (T+1,B,H) and dc (B,H) "
        "in/out -> dgx, dgh (T,B,G*H), dbx, dbh (G*H).");
  // upsampling; geom (N,C,H,W,P,Q); scale_h/w: the scale factors given, or <= 0
  m.def("upsample_nearest2d_forward", &upsample_nearest2d_forward, arg("dtype"), arg("ptrs"),
        arg("counts"), arg("geom"), arg("scale_h"), arg("scale_w"), arg("stream"),
        arg("device"), "x (N,C,H,W) -> y (N,C,P,Q).");
  m.def("upsample_nearest2d_backward", &upsample_nearest2d_backward, arg("dtype"), arg("ptrs"),
        arg("counts"), arg("geom"), arg("scale_h"), arg("scale_w"), arg("stream"),
        arg("device"), "dy (N,C,P,Q) -> dx (N,C,H,W).");
  m.def("upsample_bilinear2d_forward", &upsample_bilinear2d_forward, arg("dtype"), arg("ptrs"),
        arg("counts"), arg("geom"), arg("align_corners"), arg("scale_h"), arg("scale_w"),
        arg("stream"), arg("device"), "x (N,C,H,W) -> y (N,C,P,Q).");
  m.def("upsample_bilinear2d_backward", &upsample_bilinear2d_backward, arg("dtype"),
        arg("ptrs"), arg("counts"), arg("geom"), arg("align_corners"), arg("scale_h"),
        arg("scale_w"), arg("stream"), arg("device"), "dy (N,C,P,Q) -> dx (N,C,H,W).");
  bind_tc(m);
}
