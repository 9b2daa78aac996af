// Nearest and bilinear upsampling (NCHW) with PyTorch's coordinate rules, one (n, c) plane
// per task, parallel over planes. The source index/weight of every output row and column
// is computed once per call into small tables shared by all planes.
//
// PyTorch's rules (ATen UpSample.h), which these follow to the rounding (written once, for
// the CUDA kernels too, in convnet/kernel_math.h):
//   step = 1 / scale_factor when the user gave one (the scale argument > 0), else in / out;
//   nearest:  src = min(floor(dst * step), in - 1), in float32 whatever the data type, with
//             out == in copying and out == 2 * in halving the index exactly;
//   bilinear: align_corners: src = dst * (in - 1) / (out - 1) (0 for out == 1);
//             otherwise src = max(step * (dst + 0.5) - 0.5, 0); then i0 = min(floor(src),
//             in - 1), i1 = i0 + 1 clamped, weight of i1 = clamp(src - i0, 0, 1);
//             out == in copies. Arithmetic in T (float for float32, double for float64).
#include <algorithm>
#include <cmath>
#include <vector>

#include "convnet/kernel_math.h"
#include "kernels.h"

namespace convnet {

namespace {

int upsample_threads(const UpsampleGeom& g) {
  return threads_for(double(g.N) * g.C * (g.P * g.Q + g.H * g.W), 1 << 15);
}

std::vector<index_t> nearest_table(index_t in, index_t out, double scale) {
  std::vector<index_t> src(out);
  const float step = math::nearest_step(in, out, scale);
  for (index_t d = 0; d < out; ++d) src[d] = math::nearest_source(d, in, out, step);
  return src;
}

template <typename T>
struct LinearTable {
  std::vector<index_t> i0, i1;
  std::vector<T> l0, l1;  // weights of i0 and i1
  LinearTable(index_t in, index_t out, bool align_corners, double scale)
      : i0(out), i1(out), l0(out), l1(out) {
    const T step = math::linear_step<T>(in, out, align_corners, scale);
    for (index_t d = 0; d < out; ++d) {
      const auto s = math::linear_source(d, in, out, step, align_corners);
      i0[d] = s.i0;
      i1[d] = s.i1;
      l0[d] = s.l0;
      l1[d] = s.l1;
    }
  }
};

}  // namespace

// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void upsample_nearest2d_forward(const UpsampleGeom& g, const T* x, T* y, double scale_h,
                                double scale_w) {
  FlushToZero ftz;
  const auto rows = nearest_table(g.H, g.P, scale_h);
  const auto cols = nearest_table(g.W, g.Q, scale_w);
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(upsample_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_plane;
    T* yp = y + pl * out_plane;
    for (index_t p = 0; p < g.P; ++p) {
      const T* xr = xp + rows[p] * g.W;
      T* yr = yp + p * g.Q;
      for (index_t q = 0; q < g.Q; ++q) yr[q] = xr[cols[q]];
    }
  }
}

// dy (N,C,P,Q) -> dx (N,C,H,W): each dy value adds to the input pixel it copied
template <typename T>
void upsample_nearest2d_backward(const UpsampleGeom& g, const T* dy, T* dx, double scale_h,
                                 double scale_w) {
  FlushToZero ftz;
  const auto rows = nearest_table(g.H, g.P, scale_h);
  const auto cols = nearest_table(g.W, g.Q, scale_w);
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(upsample_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* dyp = dy + pl * out_plane;
    T* dxp = dx + pl * in_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    for (index_t p = 0; p < g.P; ++p) {
      T* dxr = dxp + rows[p] * g.W;
      const T* dyr = dyp + p * g.Q;
      for (index_t q = 0; q < g.Q; ++q) dxr[cols[q]] += dyr[q];
    }
  }
}

// x (N,C,H,W) -> y (N,C,P,Q)
template <typename T>
void upsample_bilinear2d_forward(const UpsampleGeom& g, const T* x, T* y, bool align_corners,
                                 double scale_h, double scale_w) {
  FlushToZero ftz;
  const LinearTable<T> rows(g.H, g.P, align_corners, scale_h);
  const LinearTable<T> cols(g.W, g.Q, align_corners, scale_w);
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(upsample_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* xp = x + pl * in_plane;
    T* yp = y + pl * out_plane;
    for (index_t p = 0; p < g.P; ++p) {
      const T* r0 = xp + rows.i0[p] * g.W;
      const T* r1 = xp + rows.i1[p] * g.W;
      const T h0 = rows.l0[p], h1 = rows.l1[p];
      T* yr = yp + p * g.Q;
      for (index_t q = 0; q < g.Q; ++q) {
        const index_t a = cols.i0[q], b = cols.i1[q];
        const T w0 = cols.l0[q], w1 = cols.l1[q];
        yr[q] = h0 * (w0 * r0[a] + w1 * r0[b]) + h1 * (w0 * r1[a] + w1 * r1[b]);
      }
    }
  }
}

// dy (N,C,P,Q) -> dx (N,C,H,W): each dy value goes back to its four source pixels
template <typename T>
void upsample_bilinear2d_backward(const UpsampleGeom& g, const T* dy, T* dx, bool align_corners,
                                  double scale_h, double scale_w) {
  FlushToZero ftz;
  const LinearTable<T> rows(g.H, g.P, align_corners, scale_h);
  const LinearTable<T> cols(g.W, g.Q, align_corners, scale_w);
  const index_t planes = g.N * g.C, in_plane = g.H * g.W, out_plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(upsample_threads(g))
  for (index_t pl = 0; pl < planes; ++pl) {
    const T* dyp = dy + pl * out_plane;
    T* dxp = dx + pl * in_plane;
    std::fill(dxp, dxp + in_plane, T(0));
    for (index_t p = 0; p < g.P; ++p) {
      T* r0 = dxp + rows.i0[p] * g.W;
      T* r1 = dxp + rows.i1[p] * g.W;
      const T h0 = rows.l0[p], h1 = rows.l1[p];
      const T* dyr = dyp + p * g.Q;
      for (index_t q = 0; q < g.Q; ++q) {
        const index_t a = cols.i0[q], b = cols.i1[q];
        const T w0 = cols.l0[q], w1 = cols.l1[q], d = dyr[q];
        r0[a] += h0 * w0 * d;
        r0[b] += h0 * w1 * d;
        r1[a] += h1 * w0 * d;
        r1[b] += h1 * w1 * d;
      }
    }
  }
}

#define INSTANTIATE(T)                                                                     \
  template void upsample_nearest2d_forward<T>(const UpsampleGeom&, const T*, T*, double,   \
                                              double);                                     \
  template void upsample_nearest2d_backward<T>(const UpsampleGeom&, const T*, T*, double,  \
                                               double);                                    \
  template void upsample_bilinear2d_forward<T>(const UpsampleGeom&, const T*, T*, bool,    \
                                               double, double);                            \
  template void upsample_bilinear2d_backward<T>(const UpsampleGeom&, const T*, T*, bool,   \
                                                double, double);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace convnet
