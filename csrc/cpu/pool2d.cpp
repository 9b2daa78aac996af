// Max and average pooling (NCHW), one (n, c) plane per task, parallel over planes.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "convnet/kernel_math.h"
#include "kernels.h"

namespace convnet {

namespace {

int pool_threads(const PoolGeom& g) { return threads_for(double(g.N) * g.C * g.H * g.W, 1 << 15); }

// The windows of every output along one axis (math::pool_window, tabulated once).
struct Span {
  std::vector<math::PoolWindow<index_t>> w;
  std::vector<index_t> lo, hi;
  Span(index_t out, index_t in, index_t k, index_t stride, index_t pad)
      : w(out), lo(out), hi(out) {
    for (index_t o = 0; o < out; ++o) {
      w[o] = math::pool_window(o, in, k, stride, pad);
      lo[o] = w[o].lo;
      hi[o] = w[o].hi;
    }
  }
};

// 1 / divisor for every output of a plane (the same for all planes).
template <typename T>
std::vector<T> avg_scales(const PoolGeom& g, const Span& rows, const Span& cols, bool cip) {
  std::vector<T> inv(g.P * g.Q);
  for (index_t p = 0; p < g.P; ++p)
    for (index_t q = 0; q < g.Q; ++q)
      inv[p * g.Q + q] = T(1) / T(math::pool_divisor(rows.w[p], cols.w[q], cip));
  return inv;
}

}  // namespace

namespace {

// One window tap (a fixed offset inside every window) over a run of outputs of one row:
// branch-free selects, so the loop vectorises instead of mispredicting on every new max.
template <typename T, int kStride>
inline void max_tap(const T* src, index_t stride, index_t first_index, index_t n, T* best,
                    std::int64_t* best_i) {
  const index_t st = kStride > 0 ? kStride : stride;
#pragma omp simd
  for (index_t t = 0; t < n; ++t) {
    const T v = src[t * st];
    const bool take = v > best[t] || v != v;  // first maximum wins; NaN wins (the last one)
    best[t] = take ? v : best[t];
    best_i[t] = take ? first_index + t * st : best_i[t];
  }
}

// Outputs q whose window column q*stride - pad + tap falls inside [0, in).
inline void valid_range(index_t offset, index_t stride, index_t in, index_t out, index_t& lo,
                        index_t& hi) {
  lo = offset >= 0 ? 0 : ceil_div(-offset, stride);
  hi = offset >= in ? 0 : std::min<index_t>(out, ceil_div(in - offset, stride));
  if (hi < lo) hi = lo;
}

}  // namespace

// x (N,C,H,W) -> y (N,C,P,Q), indices (N,C,P,Q)
template <typename T>
void max_pool2d_forward(const PoolGeom& g, const T* x, T* y, std::int64_t* indices) {
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
  const Span cols(g.Q, g.W, g.kw, g.sw, g.pw);
#pragma omp parallel for schedule(static) num_threads(pool_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_plane;
    for (index_t p = 0; p < g.P; ++p) {
      T* best = y + pl * out_plane + p * g.Q;
      std::int64_t* best_i = indices + pl * out_plane + p * g.Q;
      const index_t hs = p * g.sh - g.ph, h0 = std::max<index_t>(hs, 0);
      // PyTorch starts from -inf at the window's first real element.
      for (index_t q = 0; q < g.Q; ++q) {
        best[q] = -std::numeric_limits<T>::infinity();
        best_i[q] = h0 * g.W + cols.lo[q];
      }
      // Taps in row-major window order keep each output's scan order.
      for (index_t i = 0; i < g.kh; ++i) {
        const index_t h = hs + i;
        if (h < 0 || h >= g.H) continue;
        for (index_t j = 0; j < g.kw; ++j) {
          index_t lo, hi;
          valid_range(j - g.pw, g.sw, g.W, g.Q, lo, hi);
          const index_t first = h * g.W + j - g.pw + lo * g.sw;
          if (g.sw == 1)
            max_tap<T, 1>(xp + first, 1, first, hi - lo, best + lo, best_i + lo);
          else if (g.sw == 2)
            max_tap<T, 2>(xp + first, 2, first, hi - lo, best + lo, best_i + lo);
          else
            max_tap<T, 0>(xp + first, g.sw, first, hi - lo, best + lo, best_i + lo);
        }
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

// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void avg_pool2d_forward(const PoolGeom& g, const T* x, T* y, bool count_include_pad) {
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
  const Span rows(g.P, g.H, g.kh, g.sh, g.ph), cols(g.Q, g.W, g.kw, g.sw, g.pw);
  const std::vector<T> inv = avg_scales<T>(g, rows, cols, count_include_pad);
  // Every window inside its row (no padding, none clipped): the row sums vectorise across
  // windows. LeNet's 2x2/2 pooling spent 16% of a training step in the scalar window loop.
  const bool inside = g.pw == 0 && (g.Q - 1) * g.sw + g.kw <= g.W;
#pragma omp parallel num_threads(pool_threads(g))
  {
    // Window sums are separable: first along each input row, then down the columns.
    std::vector<T> row_sums(static_cast<size_t>(g.H) * g.Q);
#pragma omp for schedule(static)
    for (index_t pl = 0; pl < planes; ++pl) {
      const T* xp = x + pl * in_plane;
      T* yp = y + pl * out_plane;
      for (index_t h = 0; h < g.H; ++h) {
        const T* row = xp + h * g.W;
        T* rs = row_sums.data() + h * g.Q;
        if (inside) {  // the same sums in the same order, a vector of windows at a time
          for (index_t q = 0; q < g.Q; ++q) rs[q] = T(0);
          for (index_t j = 0; j < g.kw; ++j) {
            const T* src = row + j;
#pragma omp simd
            for (index_t q = 0; q < g.Q; ++q) rs[q] += src[q * g.sw];
          }
          continue;
        }
        for (index_t q = 0; q < g.Q; ++q) {
          T sum = T(0);
          for (index_t w = cols.lo[q]; w < cols.hi[q]; ++w) sum += row[w];
          rs[q] = sum;
        }
      }
      for (index_t p = 0; p < g.P; ++p) {
        T* out = yp + p * g.Q;
        for (index_t q = 0; q < g.Q; ++q) out[q] = T(0);
        for (index_t h = rows.lo[p]; h < rows.hi[p]; ++h) {
          const T* rs = row_sums.data() + h * g.Q;
#pragma omp simd
          for (index_t q = 0; q < g.Q; ++q) out[q] += rs[q];
        }
        const T* sc = inv.data() + p * g.Q;
#pragma omp simd
        for (index_t q = 0; q < g.Q; ++q) out[q] *= sc[q];
      }
    }
  }
}

// dy (N,C,P,Q) -> dx (N,C,H,W)
template <typename T>
void avg_pool2d_backward(const PoolGeom& g, const T* dy, T* dx, bool count_include_pad) {
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
  const Span rows(g.P, g.H, g.kh, g.sh, g.ph), cols(g.Q, g.W, g.kw, g.sw, g.pw);
  const std::vector<T> inv = avg_scales<T>(g, rows, cols, count_include_pad);
  // As in the forward pass; a pixel in at most two windows gets the same two additions
  // (0 + a + b either way round), so the result is the scalar loop's bit for bit.
  const bool inside = g.pw == 0 && (g.Q - 1) * g.sw + g.kw <= g.W && g.kw <= 2 * g.sw;
#pragma omp parallel num_threads(pool_threads(g))
  {
    // The transpose of the forward pass: spread down the rows, then along each row.
    std::vector<T> share(static_cast<size_t>(g.H) * g.Q);
#pragma omp for schedule(static)
    for (index_t pl = 0; pl < planes; ++pl) {
      T* dxp = dx + pl * in_plane;
      const T* dyp = dy + pl * out_plane;
      std::fill(share.begin(), share.end(), T(0));
      for (index_t p = 0; p < g.P; ++p) {
        const T* d = dyp + p * g.Q;
        const T* sc = inv.data() + p * g.Q;
        for (index_t h = rows.lo[p]; h < rows.hi[p]; ++h) {
          T* sh = share.data() + h * g.Q;
#pragma omp simd
          for (index_t q = 0; q < g.Q; ++q) sh[q] += d[q] * sc[q];
        }
      }
      std::fill(dxp, dxp + in_plane, T(0));
      for (index_t h = 0; h < g.H; ++h) {
        T* row = dxp + h * g.W;
        const T* sh = share.data() + h * g.Q;
        if (inside) {
          for (index_t j = 0; j < g.kw; ++j) {
            T* dst = row + j;
#pragma omp simd
            for (index_t q = 0; q < g.Q; ++q) dst[q * g.sw] += sh[q];
          }
          continue;
        }
        for (index_t q = 0; q < g.Q; ++q) {
          const T v = sh[q];
          for (index_t w = cols.lo[q]; w < cols.hi[q]; ++w) row[w] += v;
        }
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
