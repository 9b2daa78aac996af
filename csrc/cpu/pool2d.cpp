// Max and average pooling (NCHW), one (n, c) plane per task, parallel over planes.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels.h"

namespace convnet {

namespace {
int pool_threads(const PoolGeom& g) { return threads_for(double(g.N) * g.C * g.H * g.W, 1 << 15); }
}  // namespace

// x (N,C,H,W) -> y (N,C,P,Q), indices (N,C,P,Q)
template <typename T>
void max_pool2d_forward(const PoolGeom& g, const T* x, T* y, std::int64_t* indices) {
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(pool_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_plane;
    T* yp = y + pl * out_plane;
    std::int64_t* ip = indices + pl * out_plane;
    for (index_t p = 0; p < g.P; ++p) {
      const index_t h0 = std::max<index_t>(p * g.sh - g.ph, 0);
      const index_t h1 = std::min<index_t>(p * g.sh - g.ph + g.kh, g.H);
      for (index_t q = 0; q < g.Q; ++q) {
        const index_t w0 = std::max<index_t>(q * g.sw - g.pw, 0);
        const index_t w1 = std::min<index_t>(q * g.sw - g.pw + g.kw, g.W);
        // As PyTorch: the first maximum wins, and a NaN wins over everything (the last one).
        T best = -std::numeric_limits<T>::infinity();
        index_t best_i = h0 * g.W + w0;
        for (index_t h = h0; h < h1; ++h)
          for (index_t w = w0; w < w1; ++w) {
            const T v = xp[h * g.W + w];
            if (v > best || std::isnan(v)) {
              best = v;
              best_i = h * g.W + w;
            }
          }
        yp[p * g.Q + q] = best;
        ip[p * g.Q + q] = best_i;
      }
    }
  }
}

// dy (N,C,P,Q), indices (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void max_pool2d_backward(const PoolGeom& g, const T* dy, const std::int64_t* indices, T* dx) {
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(pool_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    T* dxp = dx + pl * in_plane;
    const T* dyp = dy + pl * out_plane;
    const std::int64_t* ip = indices + pl * out_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    for (index_t i = 0; i < out_plane; ++i) dxp[ip[i]] += dyp[i];
  }
}

namespace {
// PyTorch's divisor (ceil_mode off): the window clipped to the padded input when padding
// counts, to the input itself otherwise.
inline index_t avg_divisor(const PoolGeom& g, index_t p, index_t q, bool count_include_pad) {
  index_t hs = p * g.sh - g.ph, ws = q * g.sw - g.pw;
  index_t he = std::min(hs + g.kh, g.H + g.ph), we = std::min(ws + g.kw, g.W + g.pw);
  if (count_include_pad) return (he - hs) * (we - ws);
  hs = std::max<index_t>(hs, 0);
  ws = std::max<index_t>(ws, 0);
  he = std::min(he, g.H);
  we = std::min(we, g.W);
  return (he - hs) * (we - ws);
}
}  // namespace

// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void avg_pool2d_forward(const PoolGeom& g, const T* x, T* y, bool count_include_pad) {
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(pool_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_plane;
    T* yp = y + pl * out_plane;
    for (index_t p = 0; p < g.P; ++p) {
      const index_t h0 = std::max<index_t>(p * g.sh - g.ph, 0);
      const index_t h1 = std::min<index_t>(p * g.sh - g.ph + g.kh, g.H);
      for (index_t q = 0; q < g.Q; ++q) {
        const index_t w0 = std::max<index_t>(q * g.sw - g.pw, 0);
        const index_t w1 = std::min<index_t>(q * g.sw - g.pw + g.kw, g.W);
        T sum = T(0);
        for (index_t h = h0; h < h1; ++h)
          for (index_t w = w0; w < w1; ++w) sum += xp[h * g.W + w];
        yp[p * g.Q + q] = sum / T(avg_divisor(g, p, q, count_include_pad));
      }
    }
  }
}

// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void avg_pool2d_backward(const PoolGeom& g, const T* dy, T* dx, bool count_include_pad) {
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(pool_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    T* dxp = dx + pl * in_plane;
    const T* dyp = dy + pl * out_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    for (index_t p = 0; p < g.P; ++p) {
      const index_t h0 = std::max<index_t>(p * g.sh - g.ph, 0);
      const index_t h1 = std::min<index_t>(p * g.sh - g.ph + g.kh, g.H);
      for (index_t q = 0; q < g.Q; ++q) {
        const index_t w0 = std::max<index_t>(q * g.sw - g.pw, 0);
        const index_t w1 = std::min<index_t>(q * g.sw - g.pw + g.kw, g.W);
        const T share = dyp[p * g.Q + q] / T(avg_divisor(g, p, q, count_include_pad));
        for (index_t h = h0; h < h1; ++h)
          for (index_t w = w0; w < w1; ++w) dxp[h * g.W + w] += share;
      }
    }
  }
}

#define INSTANTIATE(T)                                                                          \
  template void max_pool2d_forward<T>(const PoolGeom&, const T*, T*, std::int64_t*);            \
  template void max_pool2d_backward<T>(const PoolGeom&, const T*, const std::int64_t*, T*);     \
  template void avg_pool2d_forward<T>(const PoolGeom&, const T*, T*, bool);                     \
  template void avg_pool2d_backward<T>(const PoolGeom&, const T*, T*, bool);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace convnet
