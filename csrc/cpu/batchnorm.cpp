// Batch normalisation over x viewed as (N,C,L): per-channel statistics over N*L values.
// Sums are taken around a per-channel shift (the channel's first value) and added in
// double, so the one-pass variance does not cancel catastrophically in float32.
#include <cmath>
#include <vector>

#include "kernels.h"

namespace convnet {

namespace {

int bn_threads(index_t N, index_t C, index_t L) { return threads_for(double(N) * C * L, 1 << 15); }

// Per-channel sums over (N, L) of the pair (u, v) that `pair` makes from element i and the
// channel's shift, parallel over channels (L > 1) or over blocks of the batch (L == 1,
// where a channel's values are C apart). `row` sums one contiguous row of L elements:
// given the element index as an opaque lambda argument GCC gathers each lane and keeps the
// accumulators on the stack (8x slower than a plain pointer loop, measured).
template <typename T, typename Pair, typename Row>
void channel_sums(index_t N, index_t C, index_t L, const T* shift, double* s1, double* s2,
                  Pair&& pair, Row&& row) {
  const int team = bn_threads(N, C, L);
  if (L > 1) {
#pragma omp parallel for schedule(static) num_threads(team)
    for (index_t c = 0; c < C; ++c) {
      double a1 = 0.0, a2 = 0.0;
      for (index_t n = 0; n < N; ++n) {
        const index_t base = (n * C + c) * L;
        T p1 = T(0), p2 = T(0);
        row(base, L, shift[c], p1, p2);
        a1 += p1;
        a2 += p2;
      }
      s1[c] = a1;
      s2[c] = a2;
    }
    return;
  }
  for (index_t c = 0; c < C; ++c) s1[c] = s2[c] = 0.0;
  std::vector<double> part(static_cast<size_t>(team) * 2 * C, 0.0);
#pragma omp parallel num_threads(team)
  {
    const int t = thread_id();
    double* p1 = part.data() + static_cast<size_t>(t) * 2 * C;
    double* p2 = p1 + C;
#pragma omp for schedule(static)
    for (index_t n = 0; n < N; ++n)
#pragma omp simd
      for (index_t c = 0; c < C; ++c) {
        T u, v;
        pair(n * C + c, shift[c], u, v);
        p1[c] += u;
        p2[c] += v;
      }
  }
  for (int t = 0; t < team; ++t)
    for (index_t c = 0; c < C; ++c) {
      s1[c] += part[static_cast<size_t>(t) * 2 * C + c];
      s2[c] += part[static_cast<size_t>(t) * 2 * C + C + c];
    }
}

// y = x * scale[c] + offset[c]
template <typename T>
void affine(index_t N, index_t C, index_t L, const T* x, const T* scale, const T* offset, T* y) {
  const int team = bn_threads(N, C, L);
  if (L == 1) {  // (N, C): vectorise along the channels of each row
#pragma omp parallel for schedule(static) num_threads(team)
    for (index_t n = 0; n < N; ++n) {
      const T* src = x + n * C;
      T* dst = y + n * C;
#pragma omp simd
      for (index_t c = 0; c < C; ++c) dst[c] = src[c] * scale[c] + offset[c];
    }
    return;
  }
#pragma omp parallel for schedule(static) num_threads(team)
  for (index_t nc = 0; nc < N * C; ++nc) {
    const T a = scale[nc % C], b = offset[nc % C];
    const T* src = x + nc * L;
    T* dst = y + nc * L;
#pragma omp simd
    for (index_t l = 0; l < L; ++l) dst[l] = src[l] * a + b;
  }
}

}  // namespace

// x (N,C,L), weight/bias (C) -> y (N,C,L), mean/var(biased)/invstd (C)
template <typename T>
void batch_norm_forward_training(index_t N, index_t C, index_t L, const T* x, const T* weight,
                                 const T* bias, T* y, T* mean, T* var, T* invstd, double eps) {
  FlushToZero ftz;
  std::vector<T> shift(C), scale(C), offset(C);
  for (index_t c = 0; c < C; ++c) shift[c] = x[c * L];
  std::vector<double> s1(C), s2(C);
  channel_sums<T>(N, C, L, shift.data(), s1.data(), s2.data(),
                  [x](index_t i, T sh, T& u, T& v) {
                    u = x[i] - sh;
                    v = u * u;
                  },
                  [x](index_t base, index_t len, T sh, T& p1, T& p2) {
                    const T* xr = x + base;
                    T a1 = T(0), a2 = T(0);
#pragma omp simd reduction(+ : a1, a2)
                    for (index_t l = 0; l < len; ++l) {
                      const T u = xr[l] - sh;
                      a1 += u;
                      a2 += u * u;
                    }
                    p1 = a1;
                    p2 = a2;
                  });
  const double count = double(N) * L;
  for (index_t c = 0; c < C; ++c) {
    const double m = s1[c] / count;
    const double v = std::max(s2[c] / count - m * m, 0.0);
    const double is = 1.0 / std::sqrt(v + eps);
    mean[c] = static_cast<T>(m + shift[c]);
    var[c] = static_cast<T>(v);
    invstd[c] = static_cast<T>(is);
    scale[c] = static_cast<T>(is * weight[c]);
    offset[c] = static_cast<T>(bias[c] - (m + shift[c]) * is * weight[c]);
  }
  affine(N, C, L, x, scale.data(), offset.data(), y);
}

// x (N,C,L), weight/bias/running_mean/running_var (C) -> y (N,C,L)
template <typename T>
void batch_norm_forward_inference(index_t N, index_t C, index_t L, const T* x, const T* weight,
                                  const T* bias, const T* running_mean, const T* running_var,
                                  T* y, double eps) {
  FlushToZero ftz;
  std::vector<T> scale(C), offset(C);
  for (index_t c = 0; c < C; ++c) {
    const double is = 1.0 / std::sqrt(double(running_var[c]) + eps);
    scale[c] = static_cast<T>(is * weight[c]);
    offset[c] = static_cast<T>(bias[c] - running_mean[c] * is * weight[c]);
  }
  affine(N, C, L, x, scale.data(), offset.data(), y);
}

// dy, x (N,C,L), weight/mean/invstd (C) -> dx (N,C,L), dweight/dbias (C)
template <typename T>
void batch_norm_backward(index_t N, index_t C, index_t L, const T* dy, const T* x,
                         const T* weight, const T* mean, const T* invstd, T* dx, T* dweight,
                         T* dbias) {
  FlushToZero ftz;
  std::vector<double> sum_dy(C), sum_dy_xc(C);
  // sum(dy) and sum(dy * (x - mean)); xhat = (x - mean) * invstd.
  channel_sums<T>(N, C, L, mean, sum_dy.data(), sum_dy_xc.data(),
                  [dy, x](index_t i, T m, T& u, T& v) {
                    u = dy[i];
                    v = dy[i] * (x[i] - m);
                  },
                  [dy, x](index_t base, index_t len, T m, T& p1, T& p2) {
                    const T* gr = dy + base;
                    const T* xr = x + base;
                    T a1 = T(0), a2 = T(0);
#pragma omp simd reduction(+ : a1, a2)
                    for (index_t l = 0; l < len; ++l) {
                      a1 += gr[l];
                      a2 += gr[l] * (xr[l] - m);
                    }
                    p1 = a1;
                    p2 = a2;
                  });
  const double count = double(N) * L;
  // dx = w*is/M * (M*dy - sum_dy - xhat*sum(dy*xhat)) = a*dy + b*(x - mean) + k per
  // channel; keeping (x - mean) together avoids cancelling b*x against b*mean in float32.
  std::vector<T> ka(C), kb(C), kk(C);
  for (index_t c = 0; c < C; ++c) {
    const double is = invstd[c];
    dbias[c] = static_cast<T>(sum_dy[c]);
    dweight[c] = static_cast<T>(sum_dy_xc[c] * is);
    const double a = weight[c] * is;
    ka[c] = static_cast<T>(a);
    kb[c] = static_cast<T>(-a * is * is * sum_dy_xc[c] / count);
    kk[c] = static_cast<T>(-a * sum_dy[c] / count);
  }
  const int team = bn_threads(N, C, L);
  if (L == 1) {
#pragma omp parallel for schedule(static) num_threads(team)
    for (index_t n = 0; n < N; ++n) {
      const T* g = dy + n * C;
      const T* xs = x + n * C;
      T* out = dx + n * C;
#pragma omp simd
      for (index_t c = 0; c < C; ++c) out[c] = ka[c] * g[c] + kb[c] * (xs[c] - mean[c]) + kk[c];
    }
    return;
  }
#pragma omp parallel for schedule(static) num_threads(team)
  for (index_t nc = 0; nc < N * C; ++nc) {
    const index_t c = nc % C;
    const T a = ka[c], b = kb[c], k = kk[c], m = mean[c];
    const T* g = dy + nc * L;
    const T* xs = x + nc * L;
    T* out = dx + nc * L;
#pragma omp simd
    for (index_t l = 0; l < L; ++l) out[l] = a * g[l] + b * (xs[l] - m) + k;
  }
}

#define INSTANTIATE(T)                                                                         \
  template void batch_norm_forward_training<T>(index_t, index_t, index_t, const T*, const T*,  \
                                               const T*, T*, T*, T*, T*, double);              \
  template void batch_norm_forward_inference<T>(index_t, index_t, index_t, const T*, const T*, \
                                                const T*, const T*, const T*, T*, double);     \
  template void batch_norm_backward<T>(index_t, index_t, index_t, const T*, const T*,          \
                                       const T*, const T*, const T*, T*, T*, T*);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace convnet
