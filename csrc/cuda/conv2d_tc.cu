// 2-D convolution (cross-correlation, NCHW) as implicit GEMMs on the tensor-core main loop
// of tc_gemm.cuh, for float16/bfloat16 (float32 accumulation) and TF32. The same three
// GEMMs, index tables and operand gathers as conv2d.cu (which runs them on CUDA cores):
//
//   forward:         y (K x NPQ)  = w (K x CRS)       * im2col(x) (CRS x NPQ)
//   backward data:   dx (C x NHW) = w^T (C x KRS)     * gather(dy) (KRS x NHW)
//   backward weight: dw (K x CRS) = dy (K x NPQ)      * im2col(x)^T (NPQ x CRS), split-K
//
// The filters of the forward pass are a dense K-major operand (cp.async when C*R*S is a
// whole number of 16-byte chunks); the gathered operands go through registers, loaded
// before the mma of the previous slice and stored after it.
#include <algorithm>
#include <cstdint>

#include "conv_dims.cuh"
#include "tc_gemm.cuh"
#include "tc_kernels.cuh"

namespace convnet {
namespace cuda {

namespace {

// B of the forward pass: im2col(x)[crs][npq]; one output column (npq) per thread, decoded
// once per block.
template <typename T, int BN, int BK, int THREADS>
struct TcIm2colCols {
  using Tile = TcTile<T, BN, BK, false>;
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
  __device__ void load(index_t k0, index_t klim, uint4*) {
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t crs = k0 + orow + v * STEP;
      T val{};
      if (valid && crs < klim) {
        const int4 t = table[crs];
        if (unsigned(hb + t.y) < unsigned(d.H) && unsigned(wb + t.z) < unsigned(d.W))
          val = x[off + t.x];
      }
      r[v] = val;
    }
  }
  __device__ void store(uint4* stage) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) *Tile::at(stage, col, orow + v * STEP) = r[v];
  }
};

// y[n, k, pq] = acc + b[k] (the bias in float32, whatever the operands)
template <typename T>
struct TcForwardEpilogue {
  T* y;
  const float* b;
  index_t PQ;
  int K;
  __device__ void put(index_t m, index_t npq, float v) const {
    const index_t img = npq / PQ, pq = npq - img * PQ;
    y[(img * K + m) * PQ + pq] = from_float<T>(b ? v + b[m] : v);
  }
};

// A of the data gradient: w^T[c][krs] = w[k, c, r, s]; one input channel per thread.
template <typename T, int BM, int BK, int THREADS>
struct TcFilterRows {
  using Tile = TcTile<T, BM, BK, false>;
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
  __device__ void load(index_t k0, index_t klim, uint4*) {
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t krs = k0 + orow + v * STEP;
      r[v] = (valid && krs < klim) ? w[table[krs].w + coff] : T{};
    }
  }
  __device__ void store(uint4* stage) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) *Tile::at(stage, col, orow + v * STEP) = r[v];
  }
};

// B of the data gradient: dy[n, k, p, q] for the input pixel (h, w) of this column, where
// h = p*sh - ph + r*dh; zero where no output pixel maps there.
template <typename T, int BN, int BK, int THREADS>
struct TcGradCols {
  using Tile = TcTile<T, BN, BK, false>;
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
  __device__ void load(index_t k0, index_t klim, uint4*) {
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t krs = k0 + orow + v * STEP;
      T val{};
      if (valid && krs < klim) {
        const int4 t = table[krs];
        int p = hp - t.y, q = wp - t.z;
        bool ok = p >= 0 && q >= 0 && p % d.sh == 0 && q % d.sw == 0;
        p /= d.sh;
        q /= d.sw;
        if (ok && p < d.P && q < d.Q) val = dy[off + t.x + index_t(p) * d.Q + q];
      }
      r[v] = val;
    }
  }
  __device__ void store(uint4* stage) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) *Tile::at(stage, col, orow + v * STEP) = r[v];
  }
};

// dx[n, c, hw] = acc
template <typename T>
struct TcDataEpilogue {
  T* dx;
  index_t HW;
  int C;
  __device__ void put(index_t c, index_t nhw, float v) const {
    const index_t img = nhw / HW, hw = nhw - img * HW;
    dx[(img * C + c) * HW + hw] = from_float<T>(v);
  }
};

// A of the weight gradient: dy[n, k, pq] as a (K x NPQ) matrix, K-major; one reduction
// index (npq) per thread, decoded once per slice.
template <typename T, int BM, int BK, int THREADS>
struct TcGradRows {
  using Tile = TcTile<T, BM, BK, true>;
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
  __device__ void load(index_t k0, index_t klim, uint4*) {
    const index_t npq = k0 + col;
    const bool valid = npq < klim;
    const index_t n = valid ? npq / d.PQ : 0;
    const index_t off = n * d.KPQ + (npq - n * d.PQ);
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t k = m0 + orow + v * STEP;
      r[v] = (valid && k < d.K) ? dy[off + k * d.PQ] : T{};
    }
  }
  __device__ void store(uint4* stage) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) *Tile::at(stage, orow + v * STEP, col) = r[v];
  }
};

// B of the weight gradient: im2col(x)^T[npq][crs], K-major (a row per crs).
template <typename T, int BN, int BK, int THREADS>
struct TcIm2colRows {
  using Tile = TcTile<T, BN, BK, true>;
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
  __device__ void load(index_t k0, index_t klim, uint4*) {
    const index_t npq = k0 + col;
    const bool valid = npq < klim;
    const index_t n = valid ? npq / d.PQ : 0;
    const int pq = valid ? int(npq - n * d.PQ) : 0, p = pq / d.Q, q = pq - p * d.Q;
    const int hb = p * d.sh - d.ph, wb = q * d.sw - d.pw;
    const index_t off = n * d.CHW + index_t(hb) * d.W + wb;
#pragma unroll
    for (int v = 0; v < REGS; ++v) {
      const index_t crs = n0 + orow + v * STEP;
      T val{};
      if (valid && crs < d.CRS) {
        const int4 t = table[crs];
        if (unsigned(hb + t.y) < unsigned(d.H) && unsigned(wb + t.z) < unsigned(d.W))
          val = x[off + t.x];
      }
      r[v] = val;
    }
  }
  __device__ void store(uint4* stage) const {
#pragma unroll
    for (int v = 0; v < REGS; ++v) *Tile::at(stage, orow + v * STEP, col) = r[v];
  }
};

// dw[k, crs] = acc (one split), or acc added atomically to a float32 sum (several).
template <typename T>
struct TcWeightEpilogue {
  T* dw;  // T: the output type
  float* sum;  // null: one split, written straight to dw
  index_t CRS;
  __device__ void put(index_t k, index_t crs, float v) const {
    if (sum)
      atomicAdd(sum + k * CRS + crs, v);
    else
      dw[k * CRS + crs] = from_float<T>(v);
  }
};

template <typename T>
__global__ void round_kernel(const float* __restrict__ src, T* __restrict__ dst, index_t n) {
  for (index_t i = index_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    dst[i] = from_float<T>(src[i]);
}

}  // namespace

// x (N,C,H,W), w (K,C,R,S), b (K) or null -> y (N,K,P,Q)
template <typename T>
void conv2d_forward_tc(const ConvGeom& g, const T* x, const T* w, const float* b, T* y,
                       const int4* conv_table, cudaStream_t stream) {
  const Dims d = dims_of(g);
  const index_t M = g.K, N = g.N * g.P * g.Q, K = g.crs();
  with_tc_cfg<T>(M, N, [&](auto cfg) {
    using Cfg = decltype(cfg);
    TcDenseLoader<T, Cfg::BM, Cfg::BK, Cfg::THREADS, true> la{};
    la.p = w;
    la.ld = K;
    la.xsize = M;
    la.vec = reinterpret_cast<std::uintptr_t>(w) % 16 == 0 && K % Cfg::E == 0;
    TcIm2colCols<T, Cfg::BN, Cfg::BK, Cfg::THREADS> lb{};
    lb.x = x;
    lb.table = conv_table;
    lb.d = d;
    lb.NPQ = N;
    TcForwardEpilogue<T> epi{y, b, d.PQ, d.K};
    launch_tc_gemm<Cfg, true, false>(la, lb, epi, M, N, K, stream);
  });
}

// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)
template <typename T>
void conv2d_backward_data_tc(const ConvGeom& g, const T* dy, const T* w, T* dx,
                             const int4* dgrad_table, cudaStream_t stream) {
  const Dims d = dims_of(g);
  const index_t M = g.C, N = g.N * g.H * g.W, K = g.K * g.R * g.S;
  with_tc_cfg<T>(M, N, [&](auto cfg) {
    using Cfg = decltype(cfg);
    TcFilterRows<T, Cfg::BM, Cfg::BK, Cfg::THREADS> la{};
    la.w = w;
    la.table = dgrad_table;
    la.C = d.C;
    la.RS = g.R * g.S;
    TcGradCols<T, Cfg::BN, Cfg::BK, Cfg::THREADS> lb{};
    lb.dy = dy;
    lb.table = dgrad_table;
    lb.d = d;
    lb.NHW = N;
    TcDataEpilogue<T> epi{dx, d.HW, d.C};
    launch_tc_gemm<Cfg, false, false>(la, lb, epi, M, N, K, stream);
  });
}

// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S)
template <typename T, typename TO>
void conv2d_backward_weight_tc(const ConvGeom& g, const T* dy, const T* x, TO* dw,
                               const int4* conv_table, float* work, cudaStream_t stream) {
  const Dims d = dims_of(g);
  const index_t M = g.K, N = g.crs(), K = g.N * g.P * g.Q;
  with_tc_cfg<T>(M, N, [&](auto cfg) {
    using Cfg = decltype(cfg);
    // Split the long NPQ reduction until there are about two blocks per SM, keeping at
    // least 16 slices per split so the atomics stay a small part of the work.
    const index_t blocks = ceil_div(M, Cfg::BM) * ceil_div(N, Cfg::BN);
    const index_t steps = ceil_div(K, Cfg::BK);
    index_t splits = ceil_div(2 * index_t(sm_count()), blocks);
    splits = std::min<index_t>({splits, std::max<index_t>(steps / 16, 1), 256});
    splits = std::max<index_t>(splits, 1);
    splits = ceil_div(steps, ceil_div(steps, splits));  // none of them empty
    float* sum = nullptr;
    if (splits > 1) {
      sum = std::is_same<TO, float>::value ? reinterpret_cast<float*>(dw) : work;
      if (sum == nullptr) throw std::invalid_argument("work: null, but the reduction is split");
      CUDA_CHECK(cudaMemsetAsync(sum, 0, sizeof(float) * M * N, stream));
    }
    TcGradRows<T, Cfg::BM, Cfg::BK, Cfg::THREADS> la{};
    la.dy = dy;
    la.d = d;
    TcIm2colRows<T, Cfg::BN, Cfg::BK, Cfg::THREADS> lb{};
    lb.x = x;
    lb.table = conv_table;
    lb.d = d;
    TcWeightEpilogue<TO> epi{dw, sum, N};
    launch_tc_gemm<Cfg, true, true>(la, lb, epi, M, N, K, stream, int(splits));
    if (sum != nullptr && !std::is_same<TO, float>::value) {
      CONVNET_LAUNCH(grid_for(M * N, 256), 256, 0, stream, round_kernel<TO>)(sum, dw, M * N);
      CUDA_CHECK_LAUNCH();
    }
  });
}

#define INSTANTIATE(T)                                                                      \
  template void conv2d_forward_tc<T>(const ConvGeom&, const T*, const T*, const float*, T*, \
                                     const int4*, cudaStream_t);                            \
  template void conv2d_backward_data_tc<T>(const ConvGeom&, const T*, const T*, T*,         \
                                           const int4*, cudaStream_t);                      \
  template void conv2d_backward_weight_tc<T, T>(const ConvGeom&, const T*, const T*, T*,    \
                                                const int4*, float*, cudaStream_t);
INSTANTIATE(f16)
INSTANTIATE(bf16)
INSTANTIATE(float)
#undef INSTANTIATE
template void conv2d_backward_weight_tc<f16, float>(const ConvGeom&, const f16*, const f16*,
                                                    float*, const int4*, float*, cudaStream_t);
template void conv2d_backward_weight_tc<bf16, float>(const ConvGeom&, const bf16*, const bf16*,
                                                     float*, const int4*, float*, cudaStream_t);

}  // namespace cuda
}  // namespace convnet
