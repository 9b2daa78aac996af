// The tiled GEMM main loop shared by gemm.cu and conv2d.cu (the convolutions are implicit
// GEMMs: only their operand loaders and epilogues differ).
//
// A block computes a BM x BN tile of C = A (M x K) * B (K x N). Each K step stages a
// BK-deep slice of A and B in shared memory, stored k-major (As[k][m], Bs[k][n]) so the
// inner loop reads each thread's TM values of A and TN values of B as 128-bit vectors and
// does TM*TN FMAs from registers. Double buffering: the next slice is fetched from global
// memory into registers while the current one is multiplied, then written to the other
// shared-memory stage, so one __syncthreads per step suffices. Operands that need no
// transpose on their way to shared memory (A^T, B) and are 16-byte aligned skip the
// registers: cp.async copies them straight into the next stage while the FMAs run.
//
// A loader's load(k0, klim, next_stage) fetches the slice starting at k0 (zero outside the
// matrix and past `klim`) into its registers, or issues cp.async copies into next_stage;
// store(stage) writes the registers into a [BK][BX + PAD] shared tile (nothing for
// cp.async). An epilogue receives each thread's TM x TN accumulators with their global
// (row, column) origin.
#pragma once

#include "convnet/cuda_utils.cuh"

namespace convnet {
namespace cuda {

template <typename T>
struct Vec16;
template <>
struct Vec16<float> {
  using type = float4;
  static constexpr int W = 4;
};
template <>
struct Vec16<double> {
  using type = double2;
  static constexpr int W = 2;
};

// 16-byte global -> shared copy that bypasses the registers (cp.async, sm_80+): the bytes
// past src_bytes are zero-filled, so tiles at the matrix edge need no branch. Older
// targets copy through registers. The test emulator queues the copy until the wait.
__device__ inline void cp_async16(void* smem, const void* gmem, int src_bytes) {
#if defined(CONVNET_CUDA_EMULATE)
  ::convnet_emu::cp_async16(smem, gmem, src_bytes);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem),
               "r"(src_bytes));
#else
  const char* src = static_cast<const char*>(gmem);
  char* d = static_cast<char*>(smem);
  for (int i = 0; i < 16; ++i) d[i] = i < src_bytes ? src[i] : char(0);
#endif
}

// Waits for this thread's cp.async copies; a __syncthreads after it publishes them.
__device__ inline void cp_async_wait_all() {
#if defined(CONVNET_CUDA_EMULATE)
  ::convnet_emu::cp_async_wait_all();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::);
#endif
}

template <typename T, int BM_, int BN_, int BK_, int TM_, int TN_, int MIN_BLOCKS_ = 1>
struct TileCfg {
  using value_type = T;
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  // Blocks per SM the register allocation must allow (__launch_bounds__).
  static constexpr int MIN_BLOCKS = MIN_BLOCKS_;
  static constexpr int THREADS = (BM / TM) * (BN / TN);
  // Rows stay 16-byte aligned; the shift spreads transposed stores over the banks.
  static constexpr int PAD = 16 / int(sizeof(T));
  static_assert((TM * int(sizeof(T))) % 16 == 0 && (TN * int(sizeof(T))) % 16 == 0,
                "fragments are read as 128-bit vectors");
};

// Tuned for fp32 on Hopper/Ampere: 8x8 outputs per thread (256 threads, 128x128 tile).
using CfgF32Big = TileCfg<float, 128, 128, 8, 8, 8, 2>;
// For narrow problems (few filters, small batches) where 128x128 tiles would idle the chip.
using CfgF32Small = TileCfg<float, 64, 64, 16, 4, 4>;
// Few rows but many columns (convolutions with 64 filters or fewer over a large batch):
// 8x8 outputs per thread still, on 64x128 tiles of 128 threads.
using CfgF32Wide = TileCfg<float, 64, 128, 8, 8, 8, 2>;
// fp64 is there for gradient checks, not speed: a tile that fits the register file.
using CfgF64 = TileCfg<double, 64, 64, 8, 4, 4>;

template <class Cfg, class LoadA, class LoadB, class Epilogue>
__global__ void __launch_bounds__(Cfg::THREADS, Cfg::MIN_BLOCKS)
    tile_gemm_kernel(LoadA la, LoadB lb, Epilogue epi, index_t M, index_t N, index_t K,
                     index_t k_per_split) {
  using T = typename Cfg::value_type;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int PAD = Cfg::PAD;
  using V = typename Vec16<T>::type;
  constexpr int VW = Vec16<T>::W;
  __shared__ __align__(16) T As[2][BK][BM + PAD];
  __shared__ __align__(16) T Bs[2][BK][BN + PAD];

  const int tid = threadIdx.x;
  const index_t m0 = index_t(blockIdx.y) * BM, n0 = index_t(blockIdx.x) * BN;
  const index_t kb = index_t(blockIdx.z) * k_per_split;
  const index_t ke = kb + k_per_split < K ? kb + k_per_split : K;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);

  la.init(m0, tid);
  lb.init(n0, tid);
  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  const index_t tiles = ke > kb ? ceil_div(ke - kb, BK) : 0;
  if (tiles > 0) {
    la.load(kb, ke, As[0]);
    lb.load(kb, ke, Bs[0]);
    la.store(As[0]);
    lb.store(Bs[0]);
    cp_async_wait_all();
    __syncthreads();
    for (index_t t = 0; t < tiles; ++t) {
      const int cur = int(t & 1);
      const bool more = t + 1 < tiles;
      if (more) {
        // Global loads (or cp.async copies into the other stage, last read in step t-1
        // before the barrier that ended it) in flight while the FMAs below run.
        la.load(kb + (t + 1) * BK, ke, As[cur ^ 1]);
        lb.load(kb + (t + 1) * BK, ke, Bs[cur ^ 1]);
      }
#pragma unroll
      for (int k = 0; k < BK; ++k) {
        V av[TM / VW], bv[TN / VW];  // vector-typed, so 16-byte aligned wherever they live
#pragma unroll
        for (int i = 0; i < TM / VW; ++i)
          av[i] = *reinterpret_cast<const V*>(&As[cur][k][ty * TM + i * VW]);
#pragma unroll
        for (int j = 0; j < TN / VW; ++j)
          bv[j] = *reinterpret_cast<const V*>(&Bs[cur][k][tx * TN + j * VW]);
        const T* a = reinterpret_cast<const T*>(av);
        const T* b = reinterpret_cast<const T*>(bv);
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
      }
      if (more) {
        la.store(As[cur ^ 1]);
        lb.store(Bs[cur ^ 1]);
      }
      cp_async_wait_all();
      __syncthreads();
    }
  }
  epi.template store<TM, TN>(m0 + ty * TM, n0 + tx * TN, acc, M, N);
}

// A row-major matrix read as a GEMM operand. CONTIG_K: the reduction axis is the
// contiguous one (A not transposed, B transposed), so a vector spans k and the store to
// the k-major shared tile transposes; otherwise a vector spans the BX axis and is stored
// as is. `vec` (16-byte aligned base and leading dimension) enables 128-bit loads; tiles
// that cross the matrix edge fall back to element loads there.
template <typename T, int BX, int BK, int THREADS, bool CONTIG_K>
struct DenseLoader {
  using V = typename Vec16<T>::type;
  static constexpr int VW = Vec16<T>::W;
  static constexpr int LC = CONTIG_K ? BK : BX;  // tile extent along the contiguous axis
  static constexpr int NV = BX * BK / (THREADS * VW);
  static_assert(NV >= 1 && (BX * BK) % (THREADS * VW) == 0 && LC % VW == 0, "tile mapping");

  const T* p;
  index_t ld, xsize;  // leading dimension; extent along the BX axis (M for A, N for B)
  bool vec;
  index_t x0;
  int tid;
  V r[NV];

  __device__ void init(index_t x0_, int tid_) {
    x0 = x0_;
    tid = tid_;
  }
  // The aligned, untransposed case goes through cp.async.
  __device__ bool async() const { return !CONTIG_K && vec; }

  template <int W>
  __device__ void load(index_t k0, index_t klim, T (*next)[W]) {
#pragma unroll
    for (int v = 0; v < NV; ++v) {
      const int e = tid + v * THREADS;
      const int o = e / (LC / VW), c = (e % (LC / VW)) * VW;
      const index_t row = (CONTIG_K ? x0 : k0) + o, col = (CONTIG_K ? k0 : x0) + c;
      const index_t rlim = CONTIG_K ? xsize : klim, clim = CONTIG_K ? klim : xsize;
      T* d = reinterpret_cast<T*>(&r[v]);
      if (async()) {
        // Leading in-range elements only; the rest of the 16 bytes is zero-filled.
        const index_t valid = row < rlim ? (clim - col < VW ? clim - col : VW) : 0;
        const T* src = valid > 0 ? p + row * ld + col : p;
        cp_async16(&next[o][c], src, valid > 0 ? int(valid) * int(sizeof(T)) : 0);
      } else if (vec && row < rlim && col + VW <= clim) {
        r[v] = __ldg(reinterpret_cast<const V*>(p + row * ld + col));
      } else {
#pragma unroll
        for (int j = 0; j < VW; ++j)
          d[j] = (row < rlim && col + j < clim) ? p[row * ld + col + j] : T(0);
      }
    }
  }
  template <int W>
  __device__ void store(T (*s)[W]) const {
    if (async()) return;  // already on its way by cp.async
#pragma unroll
    for (int v = 0; v < NV; ++v) {
      const int e = tid + v * THREADS;
      const int o = e / (LC / VW), c = (e % (LC / VW)) * VW;
      const T* d = reinterpret_cast<const T*>(&r[v]);
      if (CONTIG_K) {
#pragma unroll
        for (int j = 0; j < VW; ++j) s[c + j][o] = d[j];
      } else {
        *reinterpret_cast<V*>(&s[o][c]) = r[v];
      }
    }
  }
};

// Launch geometry of tile_gemm_kernel for an M x N output and a K-long reduction split
// into `splits` slices of whole BK steps.
template <class Cfg>
inline dim3 tile_grid(index_t M, index_t N, int splits) {
  return dim3(static_cast<unsigned>(ceil_div(N, Cfg::BN)),
              static_cast<unsigned>(ceil_div(M, Cfg::BM)), static_cast<unsigned>(splits));
}

template <class Cfg>
inline index_t split_length(index_t K, int splits) {
  return ceil_div(ceil_div(K, Cfg::BK), splits) * Cfg::BK;
}

template <class Cfg, class LoadA, class LoadB, class Epilogue>
void launch_tile_gemm(const LoadA& la, const LoadB& lb, const Epilogue& epi, index_t M,
                      index_t N, index_t K, int splits, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  if (ceil_div(M, Cfg::BM) > 65535)
    throw std::invalid_argument("matrix too tall for one launch (more than 65535 row tiles)");
  const index_t klen = split_length<Cfg>(K, splits);
  CONVNET_LAUNCH(tile_grid<Cfg>(M, N, splits), Cfg::THREADS, 0, stream, tile_gemm_kernel<Cfg>)(
      la, lb, epi, M, N, K, klen);
  CUDA_CHECK_LAUNCH();
}

}  // namespace cuda
}  // namespace convnet
