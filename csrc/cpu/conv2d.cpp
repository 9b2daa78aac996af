// 2-D convolution (cross-correlation, NCHW) on the packed GEMM.
//
// Forward and weight gradient are implicit GEMMs: the im2col matrix is never built, its
// values are gathered straight into the GEMM's packed B panels. A 1x1/stride-1 convolution
// is a plain GEMM on the image as it is. The data gradient is a GEMM into a column buffer
// bounded to a few output rows, scattered back with col2im.
// Images are spread over threads (one single-threaded GEMM per image) when the batch has at
// least as many images as threads; otherwise each GEMM uses every thread.
#include <algorithm>
#include <cstring>
#include <vector>

#include "gemm.h"

namespace convnet {

namespace {

// Offsets of row crs = (c*R + r)*S + s of the im2col matrix, decoded once per call.
struct ColIndex {
  index_t c, dr, ds;  // channel, r*dh, s*dw
};

std::vector<ColIndex> col_index(const ConvGeom& g) {
  std::vector<ColIndex> t(g.crs());
  for (index_t c = 0; c < g.C; ++c)
    for (index_t r = 0; r < g.R; ++r)
      for (index_t s = 0; s < g.S; ++s) t[(c * g.R + r) * g.S + s] = {c, r * g.dh, s * g.dw};
  return t;
}

// Copies `len` input values of row h, starting at column w0 with step sw, zero outside.
template <typename T>
inline void gather_row(const T* plane, const ConvGeom& g, index_t h, index_t w0, index_t len,
                       T* out, index_t out_step) {
  if (h < 0 || h >= g.H) {
    for (index_t t = 0; t < len; ++t) out[t * out_step] = T(0);
    return;
  }
  const T* row = plane + h * g.W;
  if (g.sw == 1 && w0 >= 0 && w0 + len <= g.W) {
    if (out_step == 1) {
      std::memcpy(out, row + w0, sizeof(T) * len);
    } else {
      for (index_t t = 0; t < len; ++t) out[t * out_step] = row[w0 + t];
    }
    return;
  }
  for (index_t t = 0; t < len; ++t) {
    const index_t w = w0 + t * g.sw;
    out[t * out_step] = (w >= 0 && w < g.W) ? row[w] : T(0);
  }
}

// B = im2col(x_n): (C*R*S) x (P*Q). Packs depth rows [k0,k0+kc) x pixels [j0,j0+nr).
template <typename T>
struct Im2colB {
  const T* x;  // one image (C,H,W)
  const ConvGeom* g;
  const ColIndex* idx;
  void operator()(index_t k0, index_t kc, index_t j0, int nr, T* dst) const {
    constexpr int NR = GemmBlocking<T>::NR;
    const ConvGeom& G = *g;
    index_t pix = j0;
    int j = 0;
    while (j < nr) {  // one segment per output row the panel touches
      const index_t p = pix / G.Q, q = pix % G.Q;
      const index_t seg = std::min<index_t>(nr - j, G.Q - q);
      for (index_t k = 0; k < kc; ++k) {
        const ColIndex& ci = idx[k0 + k];
        gather_row(x + ci.c * G.H * G.W, G, p * G.sh - G.ph + ci.dr, q * G.sw - G.pw + ci.ds,
                   seg, dst + k * NR + j, 1);
      }
      j += static_cast<int>(seg);
      pix += seg;
    }
    if (nr < NR)
      for (index_t k = 0; k < kc; ++k) std::fill(dst + k * NR + nr, dst + k * NR + NR, T(0));
  }
};

// B = im2col(x_n)^T: (P*Q) x (C*R*S). Packs pixels [k0,k0+kc) x columns crs [j0,j0+nr).
template <typename T>
struct Im2colTransB {
  const T* x;
  const ConvGeom* g;
  const ColIndex* idx;
  void operator()(index_t k0, index_t kc, index_t j0, int nr, T* dst) const {
    constexpr int NR = GemmBlocking<T>::NR;
    const ConvGeom& G = *g;
    for (int j = 0; j < nr; ++j) {
      const ColIndex& ci = idx[j0 + j];
      const T* plane = x + ci.c * G.H * G.W;
      index_t pix = k0, k = 0;
      while (k < kc) {
        const index_t p = pix / G.Q, q = pix % G.Q;
        const index_t seg = std::min<index_t>(kc - k, G.Q - q);
        gather_row(plane, G, p * G.sh - G.ph + ci.dr, q * G.sw - G.pw + ci.ds, seg,
                   dst + k * NR + j, NR);
        k += seg;
        pix += seg;
      }
    }
    for (int j = nr; j < NR; ++j)
      for (index_t k = 0; k < kc; ++k) dst[k * NR + j] = T(0);
  }
};

bool images_in_parallel(const ConvGeom& g) { return g.N >= get_num_threads(); }

double conv_flops(const ConvGeom& g) { return 2.0 * g.K * g.crs() * g.P * g.Q; }

}  // namespace

// x (N,C,H,W), w (K,C,R,S), b (K) or null -> y (N,K,P,Q)
template <typename T>
void conv2d_forward(const ConvGeom& g, const T* x, const T* w, const T* b, T* y) {
  FlushToZero ftz;
  const std::vector<ColIndex> idx = col_index(g);
  const index_t in_size = g.C * g.H * g.W, out_plane = g.P * g.Q, out_size = g.K * out_plane;
  const bool outer = images_in_parallel(g);
  const int inner_threads = outer ? 1 : threads_for(conv_flops(g), 1 << 18);
  const int outer_threads = outer ? threads_for(conv_flops(g) * g.N, 1 << 18) : 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(outer_threads) if (outer_threads > 1)
  for (index_t n = 0; n < g.N; ++n) {
    FlushToZero ftz_worker;
    const T* xn = x + n * in_size;
    T* yn = y + n * out_size;
    if (g.pointwise()) {
      gemm_packed<T>(false, g.K, out_plane, g.C, T(1), w, g.C, DenseB<T>{xn, out_plane, false},
                     T(0), yn, out_plane, inner_threads);
    } else {
      gemm_packed<T>(false, g.K, out_plane, g.crs(), T(1), w, g.crs(),
                     Im2colB<T>{xn, &g, idx.data()}, T(0), yn, out_plane, inner_threads);
    }
    if (b) {
      for (index_t k = 0; k < g.K; ++k) {
        T* row = yn + k * out_plane;
        const T bias = b[k];
        for (index_t i = 0; i < out_plane; ++i) row[i] += bias;
      }
    }
  }
}

// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)
template <typename T>
void conv2d_backward_data(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  FlushToZero ftz;
  const std::vector<ColIndex> idx = col_index(g);
  const index_t in_size = g.C * g.H * g.W, out_plane = g.P * g.Q, out_size = g.K * out_plane;
  const index_t crs = g.crs();
  // Column buffer of at most ~1 MiB per thread: a few output rows at a time.
  const index_t budget = std::max<index_t>(1, (index_t(1) << 20) / sizeof(T));
  const index_t rows_per_chunk = std::max<index_t>(1, budget / std::max<index_t>(1, crs * g.Q));
  const bool outer = images_in_parallel(g);
  const int inner_threads = outer ? 1 : threads_for(conv_flops(g), 1 << 18);
  const int outer_threads = outer ? threads_for(conv_flops(g) * g.N, 1 << 18) : 1;
#pragma omp parallel num_threads(outer_threads) if (outer_threads > 1)
  {
    FlushToZero ftz_worker;
    static thread_local Scratch<T> col;
    if (!g.pointwise()) col.resize(crs * std::min(rows_per_chunk, g.P) * g.Q);
#pragma omp for schedule(dynamic, 1)
    for (index_t n = 0; n < g.N; ++n) {
      const T* dyn = dy + n * out_size;
      T* dxn = dx + n * in_size;
      if (g.pointwise()) {
        gemm_packed<T>(true, g.C, out_plane, g.K, T(1), w, g.C, DenseB<T>{dyn, out_plane, false},
                       T(0), dxn, out_plane, inner_threads);
        continue;
      }
      std::fill(dxn, dxn + in_size, T(0));
      for (index_t p0 = 0; p0 < g.P; p0 += rows_per_chunk) {
        const index_t rows = std::min(rows_per_chunk, g.P - p0);
        const index_t ncols = rows * g.Q;
        T* cb = col.data();
        gemm_packed<T>(true, crs, ncols, g.K, T(1), w, crs,
                       DenseB<T>{dyn + p0 * g.Q, out_plane, false}, T(0), cb, ncols,
                       inner_threads);
        // col2im: scatter-add each column row back to the input plane it came from.
        for (index_t k = 0; k < crs; ++k) {
          const ColIndex& ci = idx[k];
          T* plane = dxn + ci.c * g.H * g.W;
          const T* src = cb + k * ncols;
          for (index_t pr = 0; pr < rows; ++pr) {
            const index_t h = (p0 + pr) * g.sh - g.ph + ci.dr;
            if (h < 0 || h >= g.H) continue;
            T* row = plane + h * g.W;
            const T* s = src + pr * g.Q;
            const index_t w0 = -g.pw + ci.ds;
            // Columns q with 0 <= w0 + q*sw < W.
            const index_t q_lo = w0 >= 0 ? 0 : ceil_div(-w0, g.sw);
            const index_t q_hi = std::min<index_t>(g.Q, w0 >= g.W ? 0 : ceil_div(g.W - w0, g.sw));
            if (g.sw == 1) {
              T* r = row + w0;
              for (index_t q = q_lo; q < q_hi; ++q) r[q] += s[q];
            } else {
              for (index_t q = q_lo; q < q_hi; ++q) row[w0 + q * g.sw] += s[q];
            }
          }
        }
      }
    }
  }
}

// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S)
template <typename T>
void conv2d_backward_weight(const ConvGeom& g, const T* dy, const T* x, T* dw) {
  FlushToZero ftz;
  const std::vector<ColIndex> idx = col_index(g);
  const index_t in_size = g.C * g.H * g.W, out_plane = g.P * g.Q, out_size = g.K * out_plane;
  const index_t crs = g.crs(), w_size = g.K * crs;
  auto accumulate = [&](index_t n, T beta, T* target, int threads) {
    const T* dyn = dy + n * out_size;
    const T* xn = x + n * in_size;
    if (g.pointwise()) {
      gemm_packed<T>(false, g.K, crs, out_plane, T(1), dyn, out_plane,
                     DenseB<T>{xn, out_plane, true}, beta, target, crs, threads);
    } else {
      gemm_packed<T>(false, g.K, crs, out_plane, T(1), dyn, out_plane,
                     Im2colTransB<T>{xn, &g, idx.data()}, beta, target, crs, threads);
    }
  };
  if (!images_in_parallel(g)) {
    const int threads = threads_for(conv_flops(g), 1 << 18);
    for (index_t n = 0; n < g.N; ++n) accumulate(n, n == 0 ? T(0) : T(1), dw, threads);
    if (g.N == 0) std::fill(dw, dw + w_size, T(0));
    return;
  }
  // Each thread sums its images into a private copy; the copies are added at the end.
  const int team = threads_for(conv_flops(g) * g.N, 1 << 18);
  std::vector<T> partial(static_cast<size_t>(team - 1) * w_size);
#pragma omp parallel num_threads(team) if (team > 1)
  {
    FlushToZero ftz_worker;
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    T* target = t == 0 ? dw : partial.data() + (t - 1) * w_size;
    bool first = true;
#pragma omp for schedule(static)
    for (index_t n = 0; n < g.N; ++n) {
      accumulate(n, first ? T(0) : T(1), target, 1);
      first = false;
    }
    if (first) std::fill(target, target + w_size, T(0));
#pragma omp barrier
#pragma omp for schedule(static)
    for (index_t i = 0; i < w_size; ++i)
      for (int p = 1; p < team; ++p) dw[i] += partial[(p - 1) * w_size + i];
  }
}

// dy (N,K,P,Q) -> db (K)
template <typename T>
void conv2d_backward_bias(const ConvGeom& g, const T* dy, T* db) {
  const index_t plane = g.P * g.Q;
  const int team = threads_for(double(g.N) * g.K * plane);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (index_t k = 0; k < g.K; ++k) {
    double acc = 0.0;
    for (index_t n = 0; n < g.N; ++n) {
      const T* src = dy + (n * g.K + k) * plane;
      T part = T(0);
#pragma omp simd reduction(+ : part)
      for (index_t i = 0; i < plane; ++i) part += src[i];
      acc += part;
    }
    db[k] = static_cast<T>(acc);
  }
}

#define INSTANTIATE(T)                                                                   \
  template void conv2d_forward<T>(const ConvGeom&, const T*, const T*, const T*, T*);    \
  template void conv2d_backward_data<T>(const ConvGeom&, const T*, const T*, T*);        \
  template void conv2d_backward_weight<T>(const ConvGeom&, const T*, const T*, T*);      \
  template void conv2d_backward_bias<T>(const ConvGeom&, const T*, T*);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace convnet
