// 2-D convolution (cross-correlation, NCHW) as implicit GEMMs on the tiled main loop of
// tile_gemm.cuh. Mirrors csrc/cpu/conv2d.cpp. No im2col matrix is ever written: the
// loaders gather the operands straight from x, w and dy into shared memory, using the
// per-row index deltas of conv_table / dgrad_table (see kernels.cuh) so the inner loads
// do no division.
//
//   forward:         y (K x NPQ)  = w (K x CRS)       * im2col(x) (CRS x NPQ)
//   backward data:   dx (C x NHW) = w^T (C x KRS)     * gather(dy) (KRS x NHW)
//   backward weight: dw (K x CRS) = dy (K x NPQ)      * im2col(x)^T (NPQ x CRS), split-K
#include <algorithm>

#include "conv_dims.cuh"
#include "kernels.cuh"
#include "tile_gemm.cuh"

namespace convnet {
namespace cuda {

namespace {

// B of the forward pass: im2col(x)[crs][npq]. Each thread keeps one output column (npq)
// for the whole block, so its image, row and column origin are decoded once.
template <typename T, int BN, int BK, int THREADS>
struct Im2colCols {
  static_assert(THREADS % BN == 0, "one column per thread");
  static constexpr int REGS = BN * BK / THREADS, STEP = THREADS / BN;
  const T* x;
  const int4* table;
  Dims d;
  index_t NPQ;
  int col, orow, hb, wb;
  bool valid;
  index_t off;
  T r[REGS];

  __device__ void init(index_t n0, int tid) {
    col = tid % BN;
    orow = tid / BN;
    const index_t npq = n0 + col;
    valid = npq < NPQ;
    const index_t n = valid ? npq / d.PQ : 0;
    const int pq = valid ? int(npq - n * d.PQ) : 0, p = pq / d.Q, q = pq - p * d.Q;
    hb = p * d.sh - d.ph;
    wb = q * d.sw - d.pw;
    off = n * d.CHW + index_t(hb) * d.W + wb;
  }
  template <typename Stage>  // registers only: the next stage is not written here
  __device__ void load(index_t k0, index_t klim, Stage) {
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t crs = k0 + orow + v * STEP;
      T val = T(0);
      if (valid && crs < klim) {
        const int4 t = __ldg(table + crs);
        if (unsigned(hb + t.y) < unsigned(d.H) && unsigned(wb + t.z) < unsigned(d.W))
          val = x[off + t.x];
      }
      r[v] = val;
    }
  }
  template <int W>
  __device__ void store(T (*s)[W]) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) s[orow + v * STEP][col] = r[v];
  }
};

// y[n, k, pq] = acc + b[k]
template <typename T>
struct ForwardEpilogue {
  T* y;
  const T* b;
  index_t PQ;
  int K;
  template <int TM, int TN>
  __device__ void store(index_t m, index_t n, const T (&acc)[TM][TN], index_t M,
                        index_t N) const {
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const index_t npq = n + j;
      if (npq >= N) break;
      const index_t img = npq / PQ, pq = npq - img * PQ;
      T* out = y + img * K * PQ + pq;
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        if (m + i >= M) break;
        out[(m + i) * PQ] = acc[i][j] + (b ? b[m + i] : T(0));
      }
    }
  }
};

// A of the data gradient: w^T[c][krs] = w[k, c, r, s]; one input channel per thread.
template <typename T, int BM, int BK, int THREADS>
struct FilterRows {
  static_assert(THREADS % BM == 0, "one row per thread");
  static constexpr int REGS = BM * BK / THREADS, STEP = THREADS / BM;
  const T* w;
  const int4* table;
  int C;
  index_t RS;
  int col, orow;
  bool valid;
  index_t coff;
  T r[REGS];

  __device__ void init(index_t m0, int tid) {
    col = tid % BM;
    orow = tid / BM;
    valid = m0 + col < C;
    coff = (m0 + col) * RS;
  }
  template <typename Stage>  // registers only: the next stage is not written here
  __device__ void load(index_t k0, index_t klim, Stage) {
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t krs = k0 + orow + v * STEP;
      r[v] = (valid && krs < klim) ? w[__ldg(table + krs).w + coff] : T(0);
    }
  }
  template <int W>
  __device__ void store(T (*s)[W]) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) s[orow + v * STEP][col] = r[v];
  }
};

// B of the data gradient: dy[n, k, p, q] for the input pixel (h, w) of this column, where
// h = p*sh - ph + r*dh; zero where no output pixel maps there.
template <typename T, int BN, int BK, int THREADS, bool UNIT_STRIDE>
struct GradCols {
  static_assert(THREADS % BN == 0, "one column per thread");
  static constexpr int REGS = BN * BK / THREADS, STEP = THREADS / BN;
  const T* dy;
  const int4* table;
  Dims d;
  index_t NHW;
  int col, orow, hp, wp;
  bool valid;
  index_t off;
  T r[REGS];

  __device__ void init(index_t n0, int tid) {
    col = tid % BN;
    orow = tid / BN;
    const index_t nhw = n0 + col;
    valid = nhw < NHW;
    const index_t n = valid ? nhw / d.HW : 0;
    const int hw = valid ? int(nhw - n * d.HW) : 0, h = hw / d.W, w = hw - h * d.W;
    hp = h + d.ph;
    wp = w + d.pw;
    off = n * d.KPQ;
  }
  template <typename Stage>  // registers only: the next stage is not written here
  __device__ void load(index_t k0, index_t klim, Stage) {
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t krs = k0 + orow + v * STEP;
      T val = T(0);
      if (valid && krs < klim) {
        const int4 t = __ldg(table + krs);
        int p = hp - t.y, q = wp - t.z;
        bool ok = p >= 0 && q >= 0;
        if (!UNIT_STRIDE) {
          ok = ok && p % d.sh == 0 && q % d.sw == 0;
          p /= d.sh;
          q /= d.sw;
        }
        if (ok && p < d.P && q < d.Q) val = dy[off + t.x + index_t(p) * d.Q + q];
      }
      r[v] = val;
    }
  }
  template <int W>
  __device__ void store(T (*s)[W]) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) s[orow + v * STEP][col] = r[v];
  }
};

// dx[n, c, hw] = acc
template <typename T>
struct DataEpilogue {
  T* dx;
  index_t HW;
  int C;
  template <int TM, int TN>
  __device__ void store(index_t m, index_t n, const T (&acc)[TM][TN], index_t M,
                        index_t N) const {
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const index_t nhw = n + j;
      if (nhw >= N) break;
      const index_t img = nhw / HW, hw = nhw - img * HW;
      T* out = dx + img * C * HW + hw;
#pragma unroll
      for (int i = 0; i < TM; ++i) {
        if (m + i >= M) break;
        out[(m + i) * HW] = acc[i][j];
      }
    }
  }
};

// A of the weight gradient: dy[n, k, pq] as a (K x NPQ) matrix. Each thread keeps one
// reduction index (npq) per step, decoded once per step.
template <typename T, int BM, int BK, int THREADS>
struct GradRows {
  static_assert(THREADS % BK == 0, "one reduction index per thread");
  static constexpr int REGS = BM * BK / THREADS, STEP = THREADS / BK;
  const T* dy;
  Dims d;
  index_t m0;
  int col, orow;
  T r[REGS];

  __device__ void init(index_t m0_, int tid) {
    m0 = m0_;
    col = tid % BK;
    orow = tid / BK;
  }
  template <typename Stage>  // registers only: the next stage is not written here
  __device__ void load(index_t k0, index_t klim, Stage) {
    const index_t npq = k0 + col;
    const bool valid = npq < klim;
    const index_t n = valid ? npq / d.PQ : 0;
    const index_t off = n * d.KPQ + (npq - n * d.PQ);
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t k = m0 + orow + v * STEP;
      r[v] = (valid && k < d.K) ? dy[off + k * d.PQ] : T(0);
    }
  }
  template <int W>
  __device__ void store(T (*s)[W]) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) s[col][orow + v * STEP] = r[v];
  }
};

// B of the weight gradient: im2col(x)^T[npq][crs].
template <typename T, int BN, int BK, int THREADS>
struct Im2colRows {
  static_assert(THREADS % BK == 0, "one reduction index per thread");
  static constexpr int REGS = BN * BK / THREADS, STEP = THREADS / BK;
  const T* x;
  const int4* table;
  Dims d;
  index_t n0;
  int col, orow;
  T r[REGS];

  __device__ void init(index_t n0_, int tid) {
    n0 = n0_;
    col = tid % BK;
    orow = tid / BK;
  }
  template <typename Stage>  // registers only: the next stage is not written here
  __device__ void load(index_t k0, index_t klim, Stage) {
    const index_t npq = k0 + col;
    const bool valid = npq < klim;
    const index_t n = valid ? npq / d.PQ : 0;
    const int pq = valid ? int(npq - n * d.PQ) : 0, p = pq / d.Q, q = pq - p * d.Q;
    const int hb = p * d.sh - d.ph, wb = q * d.sw - d.pw;
    const index_t off = n * d.CHW + index_t(hb) * d.W + wb;
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t crs = n0 + orow + v * STEP;
      T val = T(0);
      if (valid && crs < d.CRS) {
        const int4 t = __ldg(table + crs);
        if (unsigned(hb + t.y) < unsigned(d.H) && unsigned(wb + t.z) < unsigned(d.W))
          val = x[off + t.x];
      }
      r[v] = val;
    }
  }
  template <int W>
  __device__ void store(T (*s)[W]) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) s[col][orow + v * STEP] = r[v];
  }
};

// dw[k, crs] = acc, or += acc when the reduction is split over several blocks.
template <typename T>
struct WeightEpilogue {
  T* dw;
  index_t CRS;
  bool accumulate;
  template <int TM, int TN>
  __device__ void store(index_t m, index_t n, const T (&acc)[TM][TN], index_t M,
                        index_t N) const {
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      if (m + i >= M) break;
      T* row = dw + (m + i) * CRS;
#pragma unroll
      for (int j = 0; j < TN; ++j) {
        if (n + j >= N) break;
        if (accumulate)
          atomicAdd(row + n + j, acc[i][j]);
        else
          row[n + j] = acc[i][j];
      }
    }
  }
};

bool aligned16(const void* p, index_t ld, int vw) {
  return (reinterpret_cast<std::uintptr_t>(p) % 16 == 0) && (ld % vw == 0);
}

// Calls f with the tile configuration for an M x N output: 128x128 tiles only where
// there are enough of them to fill the device and M is not small; 64x128 ones for few
// rows over many columns.
template <typename T, typename F>
void with_cfg(index_t M, index_t N, F&& f) {
  if constexpr (sizeof(T) == 8) {
    f(CfgF64{});
  } else {
    if (M > 64 && ceil_div(M, 128) * ceil_div(N, 128) >= sm_count())
      f(CfgF32Big{});
    else if (M <= 64 && ceil_div(N, 128) >= 2 * index_t(sm_count()))
      f(CfgF32Wide{});
    else
      f(CfgF32Small{});
  }
}

}  // namespace

// x (N,C,H,W), w (K,C,R,S), b (K) or null -> y (N,K,P,Q)
template <typename T>
void conv2d_forward(const ConvGeom& g, const T* x, const T* w, const T* b, T* y,
                    const int4* conv_table, cudaStream_t stream) {
  const Dims d = dims_of(g);
  const index_t M = g.K, N = g.N * g.P * g.Q, K = g.crs();
  with_cfg<T>(M, N, [&](auto cfg) {
    using Cfg = decltype(cfg);
    DenseLoader<T, Cfg::BM, Cfg::BK, Cfg::THREADS, true> la{};
    la.p = w;
    la.ld = K;
    la.xsize = M;
    la.vec = aligned16(w, K, Vec16<T>::W);
    Im2colCols<T, Cfg::BN, Cfg::BK, Cfg::THREADS> lb{};
    lb.x = x;
    lb.table = conv_table;
    lb.d = d;
    lb.NPQ = N;
    ForwardEpilogue<T> epi{y, b, d.PQ, d.K};
    launch_tile_gemm<Cfg>(la, lb, epi, M, N, K, 1, stream);
  });
}

// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)
template <typename T>
void conv2d_backward_data(const ConvGeom& g, const T* dy, const T* w, T* dx,
                          const int4* dgrad_table, cudaStream_t stream) {
  const Dims d = dims_of(g);
  const index_t M = g.C, N = g.N * g.H * g.W, K = g.K * g.R * g.S;
  const bool unit = g.sh == 1 && g.sw == 1;
  with_cfg<T>(M, N, [&](auto cfg) {
    using Cfg = decltype(cfg);
    FilterRows<T, Cfg::BM, Cfg::BK, Cfg::THREADS> la{};
    la.w = w;
    la.table = dgrad_table;
    la.C = d.C;
    la.RS = g.R * g.S;
    DataEpilogue<T> epi{dx, d.HW, d.C};
    auto run = [&](auto lb) {
      lb.dy = dy;
      lb.table = dgrad_table;
      lb.d = d;
      lb.NHW = N;
      launch_tile_gemm<Cfg>(la, lb, epi, M, N, K, 1, stream);
    };
    if (unit)
      run(GradCols<T, Cfg::BN, Cfg::BK, Cfg::THREADS, true>{});
    else
      run(GradCols<T, Cfg::BN, Cfg::BK, Cfg::THREADS, false>{});
  });
}

// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S)
template <typename T>
void conv2d_backward_weight(const ConvGeom& g, const T* dy, const T* x, T* dw,
                            const int4* conv_table, cudaStream_t stream) {
  const Dims d = dims_of(g);
  const index_t M = g.K, N = g.crs(), K = g.N * g.P * g.Q;
  with_cfg<T>(M, N, [&](auto cfg) {
    using Cfg = decltype(cfg);
    // Split the long NPQ reduction until there are about two blocks per SM, keeping at
    // least 16 steps per split so the atomics stay a small part of the work.
    const index_t blocks = ceil_div(M, Cfg::BM) * ceil_div(N, Cfg::BN);
    const index_t steps = ceil_div(K, Cfg::BK);
    index_t splits = ceil_div(2 * index_t(sm_count()), blocks);
    splits = std::min<index_t>({splits, std::max<index_t>(steps / 16, 1), 256});
    splits = std::max<index_t>(splits, 1);
    // Whole BK steps per split: recompute the count so that none is empty.
    splits = ceil_div(steps, ceil_div(steps, splits));
    if (splits > 1) CUDA_CHECK(cudaMemsetAsync(dw, 0, sizeof(T) * M * N, stream));
    GradRows<T, Cfg::BM, Cfg::BK, Cfg::THREADS> la{};
    la.dy = dy;
    la.d = d;
    Im2colRows<T, Cfg::BN, Cfg::BK, Cfg::THREADS> lb{};
    lb.x = x;
    lb.table = conv_table;
    lb.d = d;
    WeightEpilogue<T> epi{dw, N, splits > 1};
    launch_tile_gemm<Cfg>(la, lb, epi, M, N, K, int(splits), stream);
  });
}

namespace {

// One block per filter: db[k] = sum over n, pq of dy[n, k, pq], added in double.
template <typename T>
__global__ void bias_grad_kernel(const T* __restrict__ dy, T* __restrict__ db, index_t N,
                                 index_t K, index_t PQ) {
  __shared__ double shared[32];
  const index_t k = blockIdx.x;
  double acc = 0.0;
  for (index_t n = 0; n < N; ++n) {
    const T* src = dy + (n * K + k) * PQ;
    for (index_t i = threadIdx.x; i < PQ; i += blockDim.x) acc += double(src[i]);
  }
  acc = block_reduce_sum(acc, shared);
  if (threadIdx.x == 0) db[k] = T(acc);
}

}  // namespace

// dy (N,K,P,Q) -> db (K)
template <typename T>
void conv2d_backward_bias(const ConvGeom& g, const T* dy, T* db, cudaStream_t stream) {
  if (g.K <= 0) return;
  const index_t PQ = g.P * g.Q;
  const int threads = PQ >= 256 ? 256 : (PQ >= 64 ? 64 : 32);
  const unsigned grid = static_cast<unsigned>(g.K);
  CONVNET_LAUNCH(grid, threads, 0, stream, bias_grad_kernel<T>)(dy, db, g.N, g.K, PQ);
  CUDA_CHECK_LAUNCH();
}

#define INSTANTIATE(T)                                                                      \
  template void conv2d_forward<T>(const ConvGeom&, const T*, const T*, const T*, T*,        \
                                  const int4*, cudaStream_t);                               \
  template void conv2d_backward_data<T>(const ConvGeom&, const T*, const T*, T*,            \
                                        const int4*, cudaStream_t);                         \
  template void conv2d_backward_weight<T>(const ConvGeom&, const T*, const T*, T*,          \
                                          const int4*, cudaStream_t);                       \
  template void conv2d_backward_bias<T>(const ConvGeom&, const T*, T*, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace convnet
