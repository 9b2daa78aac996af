// convnet._cuda: thin pybind11 layer over csrc/cuda. Arrays arrive as device pointers
// (CuPy's `a.data.ptr`) with their shapes, plus the CuPy stream and device to run on. This
// layer checks what could make a kernel read or write out of bounds (sizes, geometry,
// null pointers, dtype) before anything is queued; all math lives in csrc/cuda. The
// friendly checks on the arrays themselves are in convnet/kernels/_cuda.py.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "convnet/cuda_utils.cuh"
#include "bind_cuda_common.h"
#include "cuda/kernels.cuh"

namespace py = pybind11;
namespace cu = convnet::cuda;
using convnet::ConvGeom;
using convnet::PoolGeom;
using index_t = std::int64_t;
using ptr_t = std::uintptr_t;

namespace {

using namespace convnet::bind_cuda;  // ptr, need, stream_of, use_device, conv_geom

enum class DType { f32, f64 };

DType dtype_of(const std::string& name) {
  if (name == "float32") return DType::f32;
  if (name == "float64") return DType::f64;
  throw py::type_error("dtype: expected 'float32' or 'float64', got '" + name + "'");
}

PoolGeom pool_geom(const std::vector<index_t>& v) {
  if (v.size() != 12)
    throw py::value_error("geom: expected 12 ints (N,C,H,W,P,Q,kh,kw,sh,sw,ph,pw)");
  PoolGeom g{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]};
  if (g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1)
    throw py::value_error("geom: every size must be >= 1");
  if (g.kh < 1 || g.kw < 1 || g.sh < 1 || g.sw < 1 || g.ph < 0 || g.pw < 0 || 2 * g.ph > g.kh ||
      2 * g.pw > g.kw)
    throw py::value_error("pool: kernel/stride >= 1 and 0 <= padding <= kernel/2 required");
  if (g.P < 1 || g.Q < 1 || (g.P - 1) * g.sh - g.ph >= g.H || (g.Q - 1) * g.sw - g.pw >= g.W)
    throw py::value_error("y: output size does not fit the input and padding");
  const index_t lim = (index_t(1) << 31) - 1;
  if (g.H * g.W > lim || g.H + g.kh + g.ph > lim || g.W + g.kw + g.pw > lim)
    throw py::value_error("geom: one plane exceeds 2^31 elements");
  return g;
}

// Runs f<float>() or f<double>() with the GIL released (the launchers only queue work).
template <typename F>
void on_dtype(const std::string& dtype, int device, F&& f) {
  const DType d = dtype_of(dtype);  // every argument is checked before the device is touched
  use_device(device);
  py::gil_scoped_release nogil;
  if (d == DType::f32)
    f(float{});
  else
    f(double{});
}

void gemm(const std::string& dtype, ptr_t a, ptr_t b, ptr_t c, index_t M, index_t N, index_t K,
          index_t lda, index_t ldb, index_t ldc, double alpha, double beta, bool trans_a,
          bool trans_b, ptr_t stream, int device) {
  nonneg({M, N, K}, "gemm");
  // lda/ldb: the row length of a/b as stored.
  if (lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N || lda < 1 || ldb < 1 ||
      ldc < 1)
    throw py::value_error("gemm: leading dimensions smaller than the rows they hold");
  if (M * K > 0) need({{a, "a"}});
  if (K * N > 0) need({{b, "b"}});
  if (M * N > 0) need({{c, "c"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::gemm<T>(trans_a, trans_b, M, N, K, T(alpha), ptr<const T>(a, "a", M * K), lda,
                ptr<const T>(b, "b", K * N), ldb, T(beta), ptr<T>(c, "c", M * N), ldc,
                stream_of(stream));
  });
}

void conv2d_forward(const std::string& dtype, ptr_t x, ptr_t w, ptr_t b, ptr_t y,
                    const std::vector<index_t>& geom, ptr_t table, ptr_t stream, int device) {
  const ConvGeom g = conv_geom(geom);
  need({{x, "x"}, {w, "w"}, {y, "y"}, {table, "table"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_forward<T>(g, ptr<const T>(x, "x", 1), ptr<const T>(w, "w", 1),
                          reinterpret_cast<const T*>(b), ptr<T>(y, "y", 1),
                          ptr<const int4>(table, "table", 1), stream_of(stream));
  });
}

void conv2d_backward_data(const std::string& dtype, ptr_t dy, ptr_t w, ptr_t dx,
                          const std::vector<index_t>& geom, ptr_t table, ptr_t stream,
                          int device) {
  const ConvGeom g = conv_geom(geom);
  need({{dy, "dy"}, {w, "w"}, {dx, "dx"}, {table, "table"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_backward_data<T>(g, ptr<const T>(dy, "dy", 1), ptr<const T>(w, "w", 1),
                                ptr<T>(dx, "dx", 1), ptr<const int4>(table, "table", 1),
                                stream_of(stream));
  });
}

void conv2d_backward_weight(const std::string& dtype, ptr_t dy, ptr_t x, ptr_t dw_out,
                            const std::vector<index_t>& geom, ptr_t table, ptr_t stream,
                            int device) {
  const ConvGeom g = conv_geom(geom);
  need({{dy, "dy"}, {x, "x"}, {dw_out, "dw_out"}, {table, "table"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_backward_weight<T>(g, ptr<const T>(dy, "dy", 1), ptr<const T>(x, "x", 1),
                                  ptr<T>(dw_out, "dw_out", 1), ptr<const int4>(table, "table", 1),
                                  stream_of(stream));
  });
}

void conv2d_backward_bias(const std::string& dtype, ptr_t dy, ptr_t db, index_t N, index_t K,
                          index_t P, index_t Q, ptr_t stream, int device) {
  if (N < 1 || K < 1 || P < 1 || Q < 1) throw py::value_error("dy: every size must be >= 1");
  ConvGeom g{N, 0, 0, 0, K, 1, 1, P, Q, 1, 1, 0, 0, 1, 1};
  need({{dy, "dy"}, {db, "db"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::conv2d_backward_bias<T>(g, ptr<const T>(dy, "dy", 1), ptr<T>(db, "db", 1),
                                stream_of(stream));
  });
}

void max_pool2d_forward(const std::string& dtype, ptr_t x, ptr_t y, ptr_t indices,
                        const std::vector<index_t>& geom, ptr_t stream, int device) {
  const PoolGeom g = pool_geom(geom);
  need({{x, "x"}, {y, "y"}, {indices, "indices"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::max_pool2d_forward<T>(g, ptr<const T>(x, "x", 1), ptr<T>(y, "y", 1),
                              ptr<std::int64_t>(indices, "indices", 1), stream_of(stream));
  });
}

void max_pool2d_backward(const std::string& dtype, ptr_t dy, ptr_t indices, ptr_t dx,
                         const std::vector<index_t>& geom, ptr_t stream, int device) {
  // Only the sizes matter here (the window is in the indices), as in the CPU binding.
  if (geom.size() != 12)
    throw py::value_error("geom: expected 12 ints (N,C,H,W,P,Q,kh,kw,sh,sw,ph,pw)");
  const PoolGeom g{geom[0], geom[1], geom[2], geom[3], geom[4],  geom[5],
                   geom[6], geom[7], geom[8], geom[9], geom[10], geom[11]};
  if (g.N < 1 || g.C < 1 || g.H < 1 || g.W < 1 || g.P < 1 || g.Q < 1)
    throw py::value_error("geom: every size must be >= 1");
  need({{dy, "dy"}, {indices, "indices"}, {dx, "dx"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::max_pool2d_backward<T>(g, ptr<const T>(dy, "dy", 1),
                               ptr<const std::int64_t>(indices, "indices", 1),
                               ptr<T>(dx, "dx", 1), stream_of(stream));
  });
}

void avg_pool2d_forward(const std::string& dtype, ptr_t x, ptr_t y,
                        const std::vector<index_t>& geom, bool count_include_pad, ptr_t stream,
                        int device) {
  const PoolGeom g = pool_geom(geom);
  need({{x, "x"}, {y, "y"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::avg_pool2d_forward<T>(g, ptr<const T>(x, "x", 1), ptr<T>(y, "y", 1), count_include_pad,
                              stream_of(stream));
  });
}

void avg_pool2d_backward(const std::string& dtype, ptr_t dy, ptr_t dx,
                         const std::vector<index_t>& geom, bool count_include_pad, ptr_t stream,
                         int device) {
  const PoolGeom g = pool_geom(geom);
  need({{dy, "dy"}, {dx, "dx"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::avg_pool2d_backward<T>(g, ptr<const T>(dy, "dy", 1), ptr<T>(dx, "dx", 1),
                               count_include_pad, stream_of(stream));
  });
}

void bn_sizes(index_t N, index_t C, index_t L) {
  if (N < 1 || C < 1 || L < 1) throw py::value_error("x: every size must be >= 1");
  if (C > (index_t(1) << 31) - 1) throw py::value_error("x: too many channels");
}

void batch_norm_forward_training(const std::string& dtype, ptr_t x, ptr_t weight, ptr_t bias,
                                 ptr_t y, ptr_t mean, ptr_t var, ptr_t invstd, index_t N,
                                 index_t C, index_t L, double eps, ptr_t work, ptr_t stream,
                                 int device) {
  bn_sizes(N, C, L);
  need({{x, "x"}, {weight, "weight"}, {bias, "bias"}, {y, "y"}, {mean, "mean"},
        {var, "var"}, {invstd, "invstd"}, {work, "work"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::batch_norm_forward_training<T>(
        N, C, L, ptr<const T>(x, "x", 1), ptr<const T>(weight, "weight", 1),
        ptr<const T>(bias, "bias", 1), ptr<T>(y, "y", 1), ptr<T>(mean, "mean", 1),
        ptr<T>(var, "var", 1), ptr<T>(invstd, "invstd", 1), eps, ptr<double>(work, "work", 1),
        stream_of(stream));
  });
}

void batch_norm_forward_inference(const std::string& dtype, ptr_t x, ptr_t weight, ptr_t bias,
                                  ptr_t running_mean, ptr_t running_var, ptr_t y, index_t N,
                                  index_t C, index_t L, double eps, ptr_t work, ptr_t stream,
                                  int device) {
  bn_sizes(N, C, L);
  need({{x, "x"}, {weight, "weight"}, {bias, "bias"}, {running_mean, "running_mean"},
        {running_var, "running_var"}, {y, "y"}, {work, "work"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::batch_norm_forward_inference<T>(
        N, C, L, ptr<const T>(x, "x", 1), ptr<const T>(weight, "weight", 1),
        ptr<const T>(bias, "bias", 1), ptr<const T>(running_mean, "running_mean", 1),
        ptr<const T>(running_var, "running_var", 1), ptr<T>(y, "y", 1), eps,
        ptr<double>(work, "work", 1), stream_of(stream));
  });
}

void batch_norm_backward(const std::string& dtype, ptr_t dy, ptr_t x, ptr_t weight, ptr_t mean,
                         ptr_t invstd, ptr_t dx, ptr_t dweight, ptr_t dbias, index_t N,
                         index_t C, index_t L, ptr_t work, ptr_t stream, int device) {
  bn_sizes(N, C, L);
  need({{dy, "dy"}, {x, "x"}, {weight, "weight"}, {mean, "mean"}, {invstd, "invstd"},
        {dx, "dx"}, {dweight, "dweight"}, {dbias, "dbias"}, {work, "work"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::batch_norm_backward<T>(N, C, L, ptr<const T>(dy, "dy", 1), ptr<const T>(x, "x", 1),
                               ptr<const T>(weight, "weight", 1), ptr<const T>(mean, "mean", 1),
                               ptr<const T>(invstd, "invstd", 1), ptr<T>(dx, "dx", 1),
                               ptr<T>(dweight, "dweight", 1), ptr<T>(dbias, "dbias", 1),
                               ptr<double>(work, "work", 1), stream_of(stream));
  });
}

index_t batch_norm_workspace(index_t N, index_t C, index_t L, int device) {
  bn_sizes(N, C, L);
  use_device(device);
  return cu::batch_norm_workspace(N, C, L);
}

// Element-wise kernels: one wrapper per signature shape.
template <void (*F32)(index_t, const float*, float*, cudaStream_t),
          void (*F64)(index_t, const double*, double*, cudaStream_t)>
void unary(const std::string& dtype, ptr_t x, ptr_t y, index_t n, ptr_t stream, int device) {
  nonneg({n}, "n");
  if (n > 0) need({{x, "x"}, {y, "y"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    if constexpr (sizeof(T) == 4)
      F32(n, ptr<const float>(x, "x", n), ptr<float>(y, "y", n), stream_of(stream));
    else
      F64(n, ptr<const double>(x, "x", n), ptr<double>(y, "y", n), stream_of(stream));
  });
}

template <void (*F32)(index_t, const float*, const float*, float*, cudaStream_t),
          void (*F64)(index_t, const double*, const double*, double*, cudaStream_t)>
void binary(const std::string& dtype, ptr_t dy, ptr_t saved, ptr_t dx, index_t n, ptr_t stream,
            int device) {
  nonneg({n}, "n");
  if (n > 0) need({{dy, "dy"}, {saved, "saved"}, {dx, "dx"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    if constexpr (sizeof(T) == 4)
      F32(n, ptr<const float>(dy, "dy", n), ptr<const float>(saved, "saved", n),
          ptr<float>(dx, "dx", n), stream_of(stream));
    else
      F64(n, ptr<const double>(dy, "dy", n), ptr<const double>(saved, "saved", n),
          ptr<double>(dx, "dx", n), stream_of(stream));
  });
}

void leaky_relu_forward(const std::string& dtype, ptr_t x, ptr_t y, index_t n, double slope,
                        ptr_t stream, int device) {
  nonneg({n}, "n");
  if (n > 0) need({{x, "x"}, {y, "y"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::leaky_relu_forward<T>(n, ptr<const T>(x, "x", n), ptr<T>(y, "y", n), T(slope),
                              stream_of(stream));
  });
}

void leaky_relu_backward(const std::string& dtype, ptr_t dy, ptr_t x, ptr_t dx, index_t n,
                         double slope, ptr_t stream, int device) {
  nonneg({n}, "n");
  if (n > 0) need({{dy, "dy"}, {x, "x"}, {dx, "dx"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::leaky_relu_backward<T>(n, ptr<const T>(dy, "dy", n), ptr<const T>(x, "x", n),
                               ptr<T>(dx, "dx", n), T(slope), stream_of(stream));
  });
}

void elu_forward(const std::string& dtype, ptr_t x, ptr_t y, index_t n, double alpha,
                 double scale, ptr_t stream, int device) {
  nonneg({n}, "n");
  if (n > 0) need({{x, "x"}, {y, "y"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::elu_forward<T>(n, ptr<const T>(x, "x", n), ptr<T>(y, "y", n), T(alpha), T(scale),
                       stream_of(stream));
  });
}

void elu_backward(const std::string& dtype, ptr_t dy, ptr_t x, ptr_t dx, index_t n,
                  double alpha, double scale, ptr_t stream, int device) {
  nonneg({n}, "n");
  if (n > 0) need({{dy, "dy"}, {x, "x"}, {dx, "dx"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::elu_backward<T>(n, ptr<const T>(dy, "dy", n), ptr<const T>(x, "x", n),
                        ptr<T>(dx, "dx", n), T(alpha), T(scale), stream_of(stream));
  });
}

// The formula activations of convnet/activation_table.h: NAME_forward(dtype, x, y, n, p, ...)
// and NAME_backward(dtype, dy, x, dx, n, p, ...).
template <typename Op>
void formula_forward(const std::string& dtype, ptr_t x, ptr_t y, index_t n, double p,
                     ptr_t stream, int device) {
  nonneg({n}, "n");
  if (n > 0) need({{x, "x"}, {y, "y"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::formula_forward<Op, T>(n, ptr<const T>(x, "x", n), ptr<T>(y, "y", n), T(p),
                               stream_of(stream));
  });
}

template <typename Op>
void formula_backward(const std::string& dtype, ptr_t dy, ptr_t x, ptr_t dx, index_t n,
                      double p, ptr_t stream, int device) {
  nonneg({n}, "n");
  if (n > 0) need({{dy, "dy"}, {x, "x"}, {dx, "dx"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::formula_backward<Op, T>(n, ptr<const T>(dy, "dy", n), ptr<const T>(x, "x", n),
                                ptr<T>(dx, "dx", n), T(p), stream_of(stream));
  });
}

// ---- recurrent cells and the recurrence (csrc/cuda/rnn.cu): every buffer's element count
// is checked against the sizes

void rnn_sizes(index_t B, index_t H) {
  if (B < 1 || H < 1) throw py::value_error("batch and hidden sizes must be >= 1");
  // every buffer size below (4*B*H per step at most, G*H*H) must fit in 64 bits
  if (B > INT32_MAX || H > INT32_MAX || B > (INT64_MAX / 16) / H)
    throw py::value_error("batch and hidden sizes are too large");
}

// The adapter passes each buffer's element count with its pointer: a smaller buffer than the
// sizes imply would be overrun by the recurrence (want < 0: a buffer this mode ignores).
void need_counts(const std::vector<index_t>& got,
                 std::initializer_list<std::pair<const char*, index_t>> want) {
  if (got.size() != want.size())
    throw py::value_error("counts: expected " + std::to_string(want.size()) + " element counts");
  std::size_t i = 0;
  for (const auto& w : want) {
    if (w.second >= 0 && got[i] < w.second)
      throw py::value_error(std::string(w.first) + ": holds " + std::to_string(got[i]) +
                            " values, the sizes need " + std::to_string(w.second));
    ++i;
  }
}


void lstm_cell_forward(const std::string& dtype, ptr_t gates, ptr_t bias, ptr_t c_prev, ptr_t h,
                       ptr_t c, ptr_t act, index_t B, index_t H,
                       const std::vector<index_t>& counts, ptr_t stream, int device) {
  rnn_sizes(B, H);
  const index_t BH = B * H;
  need_counts(counts, {{"gates", 4 * BH}, {"bias", 4 * H}, {"c_prev", BH}, {"h", BH}, {"c", BH},
                       {"act", 4 * BH}});
  need({{gates, "gates"}, {bias, "bias"}, {c_prev, "c_prev"}, {h, "h"}, {c, "c"}, {act, "act"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::lstm_cell_forward<T>(B, H, ptr<const T>(gates, "gates", 1), ptr<const T>(bias, "bias", 1),
                             ptr<const T>(c_prev, "c_prev", 1), ptr<T>(h, "h", 1),
                             ptr<T>(c, "c", 1), ptr<T>(act, "act", 1), stream_of(stream));
  });
}

void lstm_cell_backward(const std::string& dtype, ptr_t act, ptr_t c_prev, ptr_t c, ptr_t dh,
                        ptr_t dc, ptr_t dgates, ptr_t dc_prev, ptr_t db, index_t B, index_t H,
                        const std::vector<index_t>& counts,
                        bool accumulate, ptr_t stream, int device) {
  rnn_sizes(B, H);
  const index_t BH = B * H;
  need_counts(counts, {{"act", 4 * BH}, {"c_prev", BH}, {"c", BH}, {"dh", BH}, {"dc", BH},
                       {"dgates", 4 * BH}, {"dc_prev", BH}, {"db", 4 * H}});
  need({{act, "act"}, {c_prev, "c_prev"}, {c, "c"}, {dh, "dh"}, {dc, "dc"}, {dgates, "dgates"},
        {dc_prev, "dc_prev"}, {db, "db"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::lstm_cell_backward<T>(B, H, ptr<const T>(act, "act", 1), ptr<const T>(c_prev, "c_prev", 1),
                              ptr<const T>(c, "c", 1), ptr<const T>(dh, "dh", 1),
                              ptr<const T>(dc, "dc", 1), ptr<T>(dgates, "dgates", 1),
                              ptr<T>(dc_prev, "dc_prev", 1), ptr<T>(db, "db", 1), accumulate,
                              stream_of(stream));
  });
}

void gru_cell_forward(const std::string& dtype, ptr_t gx, ptr_t gh, ptr_t b_ih, ptr_t b_hh,
                      ptr_t h_prev, ptr_t h, ptr_t act, index_t B, index_t H,
                      const std::vector<index_t>& counts, ptr_t stream,
                      int device) {
  rnn_sizes(B, H);
  const index_t BH = B * H;
  need_counts(counts, {{"gx", 3 * BH}, {"gh", 3 * BH}, {"b_ih", 3 * H}, {"b_hh", 3 * H},
                       {"h_prev", BH}, {"h", BH}, {"act", 4 * BH}});
  need({{gx, "gx"}, {gh, "gh"}, {b_ih, "b_ih"}, {b_hh, "b_hh"}, {h_prev, "h_prev"}, {h, "h"},
        {act, "act"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::gru_cell_forward<T>(B, H, ptr<const T>(gx, "gx", 1), ptr<const T>(gh, "gh", 1),
                            ptr<const T>(b_ih, "b_ih", 1), ptr<const T>(b_hh, "b_hh", 1),
                            ptr<const T>(h_prev, "h_prev", 1), ptr<T>(h, "h", 1),
                            ptr<T>(act, "act", 1), stream_of(stream));
  });
}

void gru_cell_backward(const std::string& dtype, ptr_t act, ptr_t h_prev, ptr_t dh, ptr_t dgx,
                       ptr_t dgh, ptr_t dh_prev, ptr_t dbx, ptr_t dbh, index_t B, index_t H,
                       const std::vector<index_t>& counts,
                       bool accumulate, ptr_t stream, int device) {
  rnn_sizes(B, H);
  const index_t BH = B * H;
  need_counts(counts, {{"act", 4 * BH}, {"h_prev", BH}, {"dh", BH}, {"dgx", 3 * BH},
                       {"dgh", 3 * BH}, {"dh_prev", BH}, {"dbx", 3 * H}, {"dbh", 3 * H}});
  need({{act, "act"}, {h_prev, "h_prev"}, {dh, "dh"}, {dgx, "dgx"}, {dgh, "dgh"},
        {dh_prev, "dh_prev"}, {dbx, "dbx"}, {dbh, "dbh"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::gru_cell_backward<T>(B, H, ptr<const T>(act, "act", 1), ptr<const T>(h_prev, "h_prev", 1),
                             ptr<const T>(dh, "dh", 1), ptr<T>(dgx, "dgx", 1),
                             ptr<T>(dgh, "dgh", 1), ptr<T>(dh_prev, "dh_prev", 1),
                             ptr<T>(dbx, "dbx", 1), ptr<T>(dbh, "dbh", 1), accumulate,
                             stream_of(stream));
  });
}

void rnn_cell_forward(const std::string& dtype, ptr_t pre, ptr_t bias, ptr_t h, index_t B,
                      index_t H,
                      const std::vector<index_t>& counts, bool relu, ptr_t stream, int device) {
  rnn_sizes(B, H);
  const index_t BH = B * H;
  need_counts(counts, {{"pre", BH}, {"bias", H}, {"h", BH}});
  need({{pre, "pre"}, {bias, "bias"}, {h, "h"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::rnn_cell_forward<T>(B, H, ptr<const T>(pre, "pre", 1), ptr<const T>(bias, "bias", 1),
                            ptr<T>(h, "h", 1), relu, stream_of(stream));
  });
}

void rnn_cell_backward(const std::string& dtype, ptr_t h, ptr_t dh, ptr_t dpre, ptr_t db,
                       index_t B, index_t H,
                       const std::vector<index_t>& counts, bool relu, bool accumulate, ptr_t stream,
                       int device) {
  rnn_sizes(B, H);
  const index_t BH = B * H;
  need_counts(counts, {{"h", BH}, {"dh", BH}, {"dpre", BH}, {"db", H}});
  need({{h, "h"}, {dh, "dh"}, {dpre, "dpre"}, {db, "db"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::rnn_cell_backward<T>(B, H, ptr<const T>(h, "h", 1), ptr<const T>(dh, "dh", 1),
                             ptr<T>(dpre, "dpre", 1), ptr<T>(db, "db", 1), relu, accumulate,
                             stream_of(stream));
  });
}

int rnn_mode(int mode) {
  if (mode < 0 || mode > 3) throw py::value_error("mode: expected 0 (lstm) .. 3 (rnn_relu)");
  return mode;
}

void rnn_recurrence_forward(const std::string& dtype, int mode, ptr_t xproj, ptr_t w_hh,
                            ptr_t b_ih, ptr_t b_hh, ptr_t hbuf, ptr_t cbuf, ptr_t act, index_t Tn,
                            index_t B, index_t H, bool reverse,
                            const std::vector<index_t>& counts, ptr_t stream, int device) {
  rnn_mode(mode);
  rnn_sizes(B, H);
  if (Tn < 1) throw py::value_error("T: the sequence must have >= 1 steps");
  const index_t G = mode == 0 ? 4 : mode == 1 ? 3 : 1, state = (Tn + 1) * B * H;
  need_counts(counts, {{"xproj", Tn * B * G * H}, {"w_hh", G * H * H}, {"b_ih", G * H},
                       {"b_hh", G * H}, {"hbuf", state}, {"cbuf", mode == 0 ? state : -1},
                       {"act", mode == 1 ? Tn * B * 4 * H : -1}});
  need({{xproj, "xproj"}, {w_hh, "w_hh"}, {b_ih, "b_ih"}, {b_hh, "b_hh"}, {hbuf, "hbuf"}});
  if (mode == 0) need({{cbuf, "cbuf"}});
  if (mode == 1) need({{act, "act"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::rnn_recurrence_forward<T>(mode, Tn, B, H, ptr<T>(xproj, "xproj", 1),
                                  ptr<const T>(w_hh, "w_hh", 1), ptr<const T>(b_ih, "b_ih", 1),
                                  ptr<const T>(b_hh, "b_hh", 1), ptr<T>(hbuf, "hbuf", 1),
                                  reinterpret_cast<T*>(cbuf), reinterpret_cast<T*>(act), reverse,
                                  stream_of(stream));
  });
}

void rnn_recurrence_backward(const std::string& dtype, int mode, ptr_t w_hh, ptr_t hbuf,
                             ptr_t cbuf, ptr_t act, ptr_t dH, ptr_t dc, ptr_t dgx, ptr_t dgh,
                             ptr_t dbx, ptr_t dbh, index_t Tn, index_t B, index_t H, bool reverse,
                             const std::vector<index_t>& counts, ptr_t stream, int device) {
  rnn_mode(mode);
  rnn_sizes(B, H);
  if (Tn < 1) throw py::value_error("T: the sequence must have >= 1 steps");
  const index_t G = mode == 0 ? 4 : mode == 1 ? 3 : 1, state = (Tn + 1) * B * H;
  need_counts(counts, {{"w_hh", G * H * H}, {"hbuf", state}, {"cbuf", mode == 0 ? state : -1},
                       {"act", mode <= 1 ? Tn * B * (mode == 1 ? 4 : G) * H : -1},
                       {"dH", state}, {"dc", mode == 0 ? B * H : -1}, {"dgx", Tn * B * G * H},
                       {"dgh", Tn * B * G * H}, {"dbx", G * H}, {"dbh", G * H}});
  need({{w_hh, "w_hh"}, {hbuf, "hbuf"}, {dH, "dH"}, {dgx, "dgx"}, {dgh, "dgh"}, {dbx, "dbx"},
        {dbh, "dbh"}});
  if (mode == 0) need({{cbuf, "cbuf"}, {dc, "dc"}});
  if (mode <= 1) need({{act, "act"}});
  if (mode == 1 && (dgx == dgh || dbx == dbh))
    throw py::value_error("dgh/dbh: the GRU needs them apart from dgx/dbx");
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::rnn_recurrence_backward<T>(
        mode, Tn, B, H, ptr<const T>(w_hh, "w_hh", 1), ptr<const T>(hbuf, "hbuf", 1),
        reinterpret_cast<const T*>(cbuf), reinterpret_cast<const T*>(act), ptr<T>(dH, "dH", 1),
        reinterpret_cast<T*>(dc), ptr<T>(dgx, "dgx", 1), ptr<T>(dgh, "dgh", 1),
        ptr<T>(dbx, "dbx", 1), ptr<T>(dbh, "dbh", 1), reverse, stream_of(stream));
  });
}

// ---- upsampling (csrc/cuda/upsample.cu)

convnet::UpsampleGeom upsample_geom(const std::vector<index_t>& v) {
  if (v.size() != 6) throw py::value_error("geom: expected 6 ints (N,C,H,W,P,Q)");
  for (index_t s : v)
    if (s < 1) throw py::value_error("geom: every size must be >= 1");
  return {v[0], v[1], v[2], v[3], v[4], v[5]};
}

void upsample_nearest2d_forward(const std::string& dtype, ptr_t x, ptr_t y,
                                const std::vector<index_t>& geom, double scale_h, double scale_w,
                                ptr_t stream, int device) {
  const auto g = upsample_geom(geom);
  need({{x, "x"}, {y, "y"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::upsample_nearest2d_forward<T>(g, ptr<const T>(x, "x", 1), ptr<T>(y, "y", 1), scale_h,
                                      scale_w, stream_of(stream));
  });
}

void upsample_nearest2d_backward(const std::string& dtype, ptr_t dy, ptr_t dx,
                                 const std::vector<index_t>& geom, double scale_h,
                                 double scale_w, ptr_t stream, int device) {
  const auto g = upsample_geom(geom);
  need({{dy, "dy"}, {dx, "dx"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::upsample_nearest2d_backward<T>(g, ptr<const T>(dy, "dy", 1), ptr<T>(dx, "dx", 1),
                                       scale_h, scale_w, stream_of(stream));
  });
}

void upsample_bilinear2d_forward(const std::string& dtype, ptr_t x, ptr_t y,
                                 const std::vector<index_t>& geom, bool align_corners,
                                 double scale_h, double scale_w, ptr_t stream, int device) {
  const auto g = upsample_geom(geom);
  need({{x, "x"}, {y, "y"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::upsample_bilinear2d_forward<T>(g, ptr<const T>(x, "x", 1), ptr<T>(y, "y", 1),
                                       align_corners, scale_h, scale_w, stream_of(stream));
  });
}

void upsample_bilinear2d_backward(const std::string& dtype, ptr_t dy, ptr_t dx,
                                  const std::vector<index_t>& geom, bool align_corners,
                                  double scale_h, double scale_w, ptr_t stream, int device) {
  const auto g = upsample_geom(geom);
  need({{dy, "dy"}, {dx, "dx"}});
  on_dtype(dtype, device, [&](auto t) {
    using T = decltype(t);
    cu::upsample_bilinear2d_backward<T>(g, ptr<const T>(dy, "dy", 1), ptr<T>(dx, "dx", 1),
                                        align_corners, scale_h, scale_w, stream_of(stream));
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
      "convnet CUDA kernels on device pointers (CuPy's a.data.ptr), with CuPy's stream and "
      "device. Called through convnet.kernels (convnet/kernels/_cuda.py checks the arrays).";
  using py::arg;
  m.def("gemm", &gemm, arg("dtype"), arg("a"), arg("b"), arg("c"), arg("M"), arg("N"), arg("K"),
        arg("lda"), arg("ldb"), arg("ldc"), arg("alpha"), arg("beta"), arg("trans_a"),
        arg("trans_b"), arg("stream"), arg("device"),
        "c = alpha * op(a) @ op(b) + beta * c, in place; row-major; beta == 0 never reads c.");
  m.def("conv2d_forward", &conv2d_forward, arg("dtype"), arg("x"), arg("w"), arg("b"), arg("y"),
        arg("geom"), arg("table"), arg("stream"), arg("device"),
        "x (N,C,H,W), w (K,C,R,S), b (K) or 0 -> y (N,K,P,Q). geom: "
        "(N,C,H,W,K,R,S,P,Q,sh,sw,ph,pw,dh,dw); table: conv_table (C*R*S int4).");
  m.def("conv2d_backward_data", &conv2d_backward_data, arg("dtype"), arg("dy"), arg("w"),
        arg("dx"), arg("geom"), arg("table"), arg("stream"), arg("device"),
        "dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W); table: dgrad_table (K*R*S int4).");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, arg("dtype"), arg("dy"), arg("x"),
        arg("dw_out"), arg("geom"), arg("table"), arg("stream"), arg("device"),
        "dy (N,K,P,Q), x (N,C,H,W) -> dw_out (K,C,R,S); table: conv_table.");
  m.def("conv2d_backward_bias", &conv2d_backward_bias, arg("dtype"), arg("dy"), arg("db"),
        arg("N"), arg("K"), arg("P"), arg("Q"), arg("stream"), arg("device"),
        "dy (N,K,P,Q) -> db (K).");
  m.def("max_pool2d_forward", &max_pool2d_forward, arg("dtype"), arg("x"), arg("y"),
        arg("indices"), arg("geom"), arg("stream"), arg("device"),
        "x (N,C,H,W) -> y, indices (N,C,P,Q). geom: (N,C,H,W,P,Q,kh,kw,sh,sw,ph,pw).");
  m.def("max_pool2d_backward", &max_pool2d_backward, arg("dtype"), arg("dy"), arg("indices"),
        arg("dx"), arg("geom"), arg("stream"), arg("device"),
        "dy, indices (N,C,P,Q) -> dx (N,C,H,W).");
  m.def("avg_pool2d_forward", &avg_pool2d_forward, arg("dtype"), arg("x"), arg("y"),
        arg("geom"), arg("count_include_pad"), arg("stream"), arg("device"),
        "x (N,C,H,W) -> y (N,C,P,Q).");
  m.def("avg_pool2d_backward", &avg_pool2d_backward, arg("dtype"), arg("dy"), arg("dx"),
        arg("geom"), arg("count_include_pad"), arg("stream"), arg("device"),
        "dy (N,C,P,Q) -> dx (N,C,H,W).");
  m.def("batch_norm_workspace", &batch_norm_workspace, arg("N"), arg("C"), arg("L"),
        arg("device"), "Doubles of scratch the batch norm kernels need for (N,C,L).");
  m.def("batch_norm_forward_training", &batch_norm_forward_training, arg("dtype"), arg("x"),
        arg("weight"), arg("bias"), arg("y"), arg("mean"), arg("var"), arg("invstd"), arg("N"),
        arg("C"), arg("L"), arg("eps"), arg("work"), arg("stream"), arg("device"),
        "x (N,C,L) -> y (N,C,L), mean, biased var, invstd (C).");
  m.def("batch_norm_forward_inference", &batch_norm_forward_inference, arg("dtype"), arg("x"),
        arg("weight"), arg("bias"), arg("running_mean"), arg("running_var"), arg("y"), arg("N"),
        arg("C"), arg("L"), arg("eps"), arg("work"), arg("stream"), arg("device"),
        "x (N,C,L) -> y (N,C,L) with the running statistics.");
  m.def("batch_norm_backward", &batch_norm_backward, arg("dtype"), arg("dy"), arg("x"),
        arg("weight"), arg("mean"), arg("invstd"), arg("dx"), arg("dweight"), arg("dbias"),
        arg("N"), arg("C"), arg("L"), arg("work"), arg("stream"), arg("device"),
        "dy, x (N,C,L) -> dx (N,C,L), dweight, dbias (C).");
  m.def("tanh_forward", &unary<cu::tanh_forward<float>, cu::tanh_forward<double>>, arg("dtype"),
        arg("x"), arg("y"), arg("n"), arg("stream"), arg("device"), "y = tanh(x).");
  m.def("tanh_backward", &binary<cu::tanh_backward<float>, cu::tanh_backward<double>>,
        arg("dtype"), arg("dy"), arg("y"), arg("dx"), arg("n"), arg("stream"), arg("device"),
        "dx = dy * (1 - y^2).");
  m.def("sigmoid_forward", &unary<cu::sigmoid_forward<float>, cu::sigmoid_forward<double>>,
        arg("dtype"), arg("x"), arg("y"), arg("n"), arg("stream"), arg("device"),
        "y = 1 / (1 + exp(-x)), stable for large |x|.");
  m.def("sigmoid_backward", &binary<cu::sigmoid_backward<float>, cu::sigmoid_backward<double>>,
        arg("dtype"), arg("dy"), arg("y"), arg("dx"), arg("n"), arg("stream"), arg("device"),
        "dx = dy * y * (1 - y).");
  m.def("leaky_relu_forward", &leaky_relu_forward, arg("dtype"), arg("x"), arg("y"), arg("n"),
        arg("slope"), arg("stream"), arg("device"), "y = x if x > 0 else slope * x.");
  m.def("leaky_relu_backward", &leaky_relu_backward, arg("dtype"), arg("dy"), arg("x"),
        arg("dx"), arg("n"), arg("slope"), arg("stream"), arg("device"),
        "dx = dy if x > 0 else slope * dy.");
  m.def("elu_forward", &elu_forward, arg("dtype"), arg("x"), arg("y"), arg("n"), arg("alpha"),
        arg("scale"), arg("stream"), arg("device"),
        "y = scale * (x if x > 0 else alpha * (exp(x) - 1)).");
  m.def("elu_backward", &elu_backward, arg("dtype"), arg("dy"), arg("x"), arg("dx"), arg("n"),
        arg("alpha"), arg("scale"), arg("stream"), arg("device"),
        "dx = dy * scale * (alpha * exp(x) if x <= 0 else 1).");
#define BIND_FORMULA(name, Op)                                                             \
  m.def(#name "_forward", &formula_forward<convnet::math::Op>, arg("dtype"), arg("x"),     \
        arg("y"), arg("n"), arg("p"), arg("stream"), arg("device"), "y = " #name "(x).");  \
  m.def(#name "_backward", &formula_backward<convnet::math::Op>, arg("dtype"), arg("dy"),  \
        arg("x"), arg("dx"), arg("n"), arg("p"), arg("stream"), arg("device"),            \
        "dx = dy * " #name "'(x).");
  CONVNET_FORMULA_ACTIVATIONS(BIND_FORMULA)
#undef BIND_FORMULA
  m.def("device_count", &device_count, "Number of CUDA devices; RuntimeError without a driver.");
  m.def("device_info", &device_info, arg("device"),
        "name, compute capability, SM count, memory and driver version of a device.");
  m.def("compiled_archs", &cu::compiled_archs, "The gencode targets this module was built for.");
  m.def("runtime_version", &cu::runtime_version, "CUDA runtime version linked in (e.g. 13000).");
  // recurrent cells and the recurrence (rnn.cu)
  m.def("lstm_cell_forward", &lstm_cell_forward, arg("dtype"), arg("gates"), arg("bias"),
        arg("c_prev"), arg("h"), arg("c"), arg("act"), arg("B"), arg("H"), arg("counts"),
        arg("stream"), arg("device"),
        "gates (B,4H), bias (4H), c_prev (B,H) -> h, c (B,H), act (B,4H).");
  m.def("lstm_cell_backward", &lstm_cell_backward, arg("dtype"), arg("act"), arg("c_prev"),
        arg("c"), arg("dh"), arg("dc"), arg("dgates"), arg("dc_prev"), arg("db"), arg("B"),
        arg("H"), arg("counts"), arg("accumulate"), arg("stream"), arg("device"),
        "act (B,4H), c_prev, c, dh, dc (B,H) -> dgates (B,4H), dc_prev (B,H), db (4H).");
  m.def("gru_cell_forward", &gru_cell_forward, arg("dtype"), arg("gx"), arg("gh"), arg("b_ih"),
        arg("b_hh"), arg("h_prev"), arg("h"), arg("act"), arg("B"), arg("H"), arg("counts"),
        arg("stream"), arg("device"),
        "gx, gh (B,3H), b_ih, b_hh (3H), h_prev (B,H) -> h (B,H), act (B,4H).");
  m.def("gru_cell_backward", &gru_cell_backward, arg("dtype"), arg("act"), arg("h_prev"),
        arg("dh"), arg("dgx"), arg("dgh"), arg("dh_prev"), arg("dbx"), arg("dbh"), arg("B"),
        arg("H"), arg("counts"), arg("accumulate"), arg("stream"), arg("device"),
        "act (B,4H), h_prev, dh (B,H) -> dgx, dgh (B,3H), dh_prev (B,H), dbx, dbh (3H).");
  m.def("rnn_cell_forward", &rnn_cell_forward, arg("dtype"), arg("pre"), arg("bias"), arg("h"),
        arg("B"), arg("H"), arg("counts"), arg("relu"), arg("stream"), arg("device"),
        "pre (B,H), bias (H) -> h (B,H) = tanh or relu of pre + bias.");
  m.def("rnn_cell_backward", &rnn_cell_backward, arg("dtype"), arg("h"), arg("dh"), arg("dpre"),
        arg("db"), arg("B"), arg("H"), arg("counts"), arg("relu"), arg("accumulate"), arg("stream"),
        arg("device"), "h, dh (B,H) -> dpre (B,H), db (H).");
  m.def("rnn_recurrence_forward", &rnn_recurrence_forward, arg("dtype"), arg("mode"),
        arg("xproj"), arg("w_hh"), arg("b_ih"), arg("b_hh"), arg("hbuf"), arg("cbuf"),
        arg("act"), arg("T"), arg("B"), arg("H"), arg("reverse"), arg("counts"), arg("stream"),
        arg("device"),
        "One layer direction over a sequence: xproj (T,B,G*H) consumed, hbuf (T+1,B,H) with "
        "h0 in place -> states; cbuf (LSTM) and act (GRU) or 0.");
  m.def("rnn_recurrence_backward", &rnn_recurrence_backward, arg("dtype"), arg("mode"),
        arg("w_hh"), arg("hbuf"), arg("cbuf"), arg("act"), arg("dH"), arg("dc"), arg("dgx"),
        arg("dgh"), arg("dbx"), arg("dbh"), arg("T"), arg("B"), arg("H"), arg("reverse"),
        arg("counts"), arg("stream"), arg("device"),
        "Backpropagation through time: dH (T+1,B,H), dc (B,H) in/out -> dgx, dgh (T,B,G*H), "
        "dbx, dbh (G*H).");
  // upsampling (upsample.cu); geom (N,C,H,W,P,Q)
  m.def("upsample_nearest2d_forward", &upsample_nearest2d_forward, arg("dtype"), arg("x"),
        arg("y"), arg("geom"), arg("scale_h"), arg("scale_w"), arg("stream"), arg("device"),
        "x (N,C,H,W) -> y (N,C,P,Q); scale_h/w: the scale factors given, or <= 0.");
  m.def("upsample_nearest2d_backward", &upsample_nearest2d_backward, arg("dtype"), arg("dy"),
        arg("dx"), arg("geom"), arg("scale_h"), arg("scale_w"), arg("stream"), arg("device"),
        "dy (N,C,P,Q) -> dx (N,C,H,W).");
  m.def("upsample_bilinear2d_forward", &upsample_bilinear2d_forward, arg("dtype"), arg("x"),
        arg("y"), arg("geom"), arg("align_corners"), arg("scale_h"), arg("scale_w"),
        arg("stream"), arg("device"), "x (N,C,H,W) -> y (N,C,P,Q).");
  m.def("upsample_bilinear2d_backward", &upsample_bilinear2d_backward, arg("dtype"), arg("dy"),
        arg("dx"), arg("geom"), arg("align_corners"), arg("scale_h"), arg("scale_w"),
        arg("stream"), arg("device"), "dy (N,C,P,Q) -> dx (N,C,H,W).");
  bind_tc(m);
}
