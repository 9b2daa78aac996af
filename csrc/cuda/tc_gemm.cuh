// The tensor-core GEMM main loop shared by gemm_tc.cu and conv2d_tc.cu (the convolutions
// are implicit GEMMs: only their operand loaders and epilogues differ), for float16 and
// bfloat16 operands (mma m16n8k16) and float32 ones rounded to TF32 (mma m16n8k8), always
// with float32 accumulators.
//
// A block computes a BM x BN tile of C = A (M x K) * B (K x N) with 4 or 8 warps, each
// owning a WM x WN sub-tile of 16x8 mma tiles. K advances in BK-deep slices of 64 bytes per
// row (32 16-bit or 16 float values); STAGES slices are in flight in shared memory: the
// loads of slice t + STAGES - 1 (cp.async, or registers for gathered operands) are issued
// before the mma of slice t, so global latency hides behind STAGES - 1 slices of math.
//
// Shared tiles are arrays of 16-byte chunks. An operand whose reduction axis is contiguous
// in memory (A not transposed, B transposed, conv filters) is kept K-major (a row per m or
// n, 4 chunks along k) and read with ldmatrix; the other layout keeps a row per k (MN-major)
// and is read with ldmatrix.trans (TF32: 32-bit loads, since .trans swaps 16-bit halves).
// Chunks are XOR-swizzled within each row so that the 8 rows one ldmatrix matrix reads
// fall in 8 different bank groups, with no padding (3 stages of 128x32 16-bit A and B
// tiles are exactly the 48 KiB of static shared memory).
//
// A loader's load(k0, klim, stage) fetches the slice starting at k0 (zero outside the
// matrix and past klim), issuing cp.async copies into `stage` or keeping registers that
// store(stage) writes after the mma; an epilogue's put(m, n, v) receives each accumulator
// inside the M x N output.
#pragma once

#include "tc_ops.cuh"
#include "tile_gemm.cuh"  // cp_async16

namespace convnet {
namespace cuda {

// Chunk `chunk` of row `row` in a tile of RC chunks per row, swizzled.
template <int RC>
__host__ __device__ constexpr int swz(int row, int chunk) {
  return row * RC + (chunk ^ ((RC >= 8 ? row : row / (8 / RC)) % (RC < 8 ? RC : 8)));
}

// The shared tile of one operand: X rows (m or n) by BK values of k.
template <typename T, int X, int BK, bool KMAJOR>
struct TcTile {
  static constexpr int E = 16 / int(sizeof(T));  // values per chunk
  static constexpr int ROWS = KMAJOR ? X : BK;
  static constexpr int RC = (KMAJOR ? BK : X) / E;
  static constexpr int CHUNKS = ROWS * RC;
  static_assert(RC >= 4 && (RC & (RC - 1)) == 0, "power-of-two rows of 4 chunks or more");
  __device__ static T* at(uint4* tile, int x, int k) {
    const int row = KMAJOR ? x : k, col = KMAJOR ? k : x;
    return reinterpret_cast<T*>(tile + swz<RC>(row, col / E)) + col % E;
  }
  __device__ static const T* at(const uint4* tile, int x, int k) {
    return at(const_cast<uint4*>(tile), x, k);
  }
};

template <typename T, int BM_, int BN_, int WM_, int WN_, int STAGES_>
struct TcCfg {
  using value_type = T;
  static constexpr int E = 16 / int(sizeof(T));
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int BK = 4 * E;                       // 64 bytes of k per row
  static constexpr int KSTEP = 2 * E;                    // k of one mma (16, or 8 for TF32)
  static constexpr int WARPS_N = BN / WN, THREADS = 32 * (BM / WM) * (BN / WN);
  static constexpr int MI = WM / 16, NI = WN / 8;
  static_assert(WM % 16 == 0 && WN % 16 == 0 && STAGES >= 2, "warp tile of 16x16 steps");
};
template <typename T>
using TcBig = TcCfg<T, 128, 128, 64, 32, 3>;  // 8 warps; 48 KiB of shared memory
template <typename T>
using TcSmall = TcCfg<T, 64, 64, 32, 32, 3>;  // 4 warps, for grids that would idle SMs

// A row-major matrix read as a GEMM operand: KMAJOR, it is X rows of k (ld apart);
// otherwise K rows of x. `vec` (16-byte aligned base and ld a multiple of 16 bytes) lets
// cp.async copy whole chunks (zero-filled past the edge); otherwise values go through
// registers one at a time.
template <typename T, int X, int BK, int THREADS, bool KMAJOR>
struct TcDenseLoader {
  using Tile = TcTile<T, X, BK, KMAJOR>;
  static constexpr int E = Tile::E, RC = Tile::RC;
  static constexpr int NV = Tile::CHUNKS / THREADS;
  static_assert(Tile::CHUNKS % THREADS == 0, "whole chunks per thread");
  const T* p;
  index_t ld, xsize;
  bool vec;
  index_t x0;
  int tid;
  uint4 r[NV];

  __device__ void init(index_t x0_, int tid_) {
    x0 = x0_;
    tid = tid_;
  }
  __device__ void load(index_t k0, index_t klim, uint4* stage) {
#pragma unroll
    for (int v = 0; v < NV; ++v) {
      const int e = tid + v * THREADS, row = e / RC, cc = e % RC;
      const index_t grow = (KMAJOR ? x0 : k0) + row, gcol = (KMAJOR ? k0 : x0) + cc * E;
      const index_t rlim = KMAJOR ? xsize : klim, clim = KMAJOR ? klim : xsize;
      index_t valid = grow < rlim ? clim - gcol : 0;
      valid = valid < 0 ? 0 : (valid > E ? E : valid);
      if (vec) {
        cp_async16(stage + swz<RC>(row, cc), valid > 0 ? p + grow * ld + gcol : p,
                   int(valid) * int(sizeof(T)));
      } else {
        T* d = reinterpret_cast<T*>(&r[v]);
#pragma unroll
        for (int j = 0; j < E; ++j) d[j] = j < valid ? p[grow * ld + gcol + j] : T{};
      }
    }
  }
  __device__ void store(uint4* stage) const {
    if (vec) return;  // already on its way by cp.async
#pragma unroll
    for (int v = 0; v < NV; ++v) {
      const int e = tid + v * THREADS;
      stage[swz<RC>(e / RC, e % RC)] = r[v];
    }
  }
};

// The fragments of one mma k-step `s` of a slice, for this lane.
template <class Cfg, bool KMAJOR>
__device__ inline void load_a(std::uint32_t (&a)[Cfg::MI][4], const uint4* tile, int wm0, int s,
                              int lane) {
  using T = typename Cfg::value_type;
  using Tile = TcTile<T, Cfg::BM, Cfg::BK, KMAJOR>;
  constexpr bool TF32 = sizeof(T) == 4;
#pragma unroll
  for (int i = 0; i < Cfg::MI; ++i) {
    const int m = wm0 + i * 16;
    if constexpr (KMAJOR) {
      ldsm_x4(a[i], tile + swz<Tile::RC>(m + lane % 16, 2 * s + lane / 16));
    } else if constexpr (!TF32) {
      const int mat = lane / 8, r = lane % 8;
      ldsm_x4_t(a[i], tile + swz<Tile::RC>(s * Cfg::KSTEP + (mat / 2) * 8 + r,
                                           m / Cfg::E + mat % 2));
    } else {
      const int g = lane / 4, t = lane % 4, k = s * Cfg::KSTEP + t;
      a[i][0] = float_bits(*Tile::at(tile, m + g, k));
      a[i][1] = float_bits(*Tile::at(tile, m + g + 8, k));
      a[i][2] = float_bits(*Tile::at(tile, m + g, k + 4));
      a[i][3] = float_bits(*Tile::at(tile, m + g + 8, k + 4));
    }
    if constexpr (TF32)
#pragma unroll
      for (int q = 0; q < 4; ++q) a[i][q] = to_tf32(bits_float(a[i][q]));
  }
}

template <class Cfg, bool KMAJOR>
__device__ inline void load_b(std::uint32_t (&b)[Cfg::NI][2], const uint4* tile, int wn0, int s,
                              int lane) {
  using T = typename Cfg::value_type;
  using Tile = TcTile<T, Cfg::BN, Cfg::BK, KMAJOR>;
  constexpr bool TF32 = sizeof(T) == 4;
  const int mat = lane / 8, r = lane % 8;
#pragma unroll
  for (int j = 0; j < Cfg::NI; j += 2) {
    std::uint32_t q[4];
    if constexpr (KMAJOR) {
      ldsm_x4(q, tile + swz<Tile::RC>(wn0 + (j + mat / 2) * 8 + r, 2 * s + mat % 2));
    } else if constexpr (!TF32) {
      ldsm_x4_t(q, tile + swz<Tile::RC>(s * Cfg::KSTEP + (mat % 2) * 8 + r,
                                        (wn0 + (j + mat / 2) * 8) / Cfg::E));
    } else {
      const int g = lane / 4, t = lane % 4, k = s * Cfg::KSTEP + t;
      q[0] = float_bits(*Tile::at(tile, wn0 + j * 8 + g, k));
      q[1] = float_bits(*Tile::at(tile, wn0 + j * 8 + g, k + 4));
      q[2] = float_bits(*Tile::at(tile, wn0 + j * 8 + 8 + g, k));
      q[3] = float_bits(*Tile::at(tile, wn0 + j * 8 + 8 + g, k + 4));
    }
    if constexpr (TF32)
#pragma unroll
      for (int u = 0; u < 4; ++u) q[u] = to_tf32(bits_float(q[u]));
    b[j][0] = q[0];
    b[j][1] = q[1];
    b[j + 1][0] = q[2];
    b[j + 1][1] = q[3];
  }
}

template <class Cfg, bool A_KMAJOR, bool B_KMAJOR, class LoadA, class LoadB, class Epilogue>
__global__ void __launch_bounds__(Cfg::THREADS, 1)
    tc_gemm_kernel(LoadA la, LoadB lb, Epilogue epi, index_t M, index_t N, index_t K,
                   index_t k_per_split) {
  using T = typename Cfg::value_type;
  constexpr int S = Cfg::STAGES, BK = Cfg::BK, MI = Cfg::MI, NI = Cfg::NI;
  constexpr int ACH = TcTile<T, Cfg::BM, BK, A_KMAJOR>::CHUNKS;
  constexpr int BCH = TcTile<T, Cfg::BN, BK, B_KMAJOR>::CHUNKS;
  __shared__ __align__(128) uint4 As[Cfg::STAGES * ACH];
  __shared__ __align__(128) uint4 Bs[Cfg::STAGES * BCH];

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm0 = (warp / Cfg::WARPS_N) * Cfg::WM, wn0 = (warp % Cfg::WARPS_N) * Cfg::WN;
  const index_t m0 = index_t(blockIdx.y) * Cfg::BM, n0 = index_t(blockIdx.x) * Cfg::BN;
  la.init(m0, tid);
  lb.init(n0, tid);
  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // This block's part of the reduction (split-K: blockIdx.z), in whole slices.
  const index_t kb = index_t(blockIdx.z) * k_per_split;
  const index_t ke = kb + k_per_split < K ? kb + k_per_split : K;
  const index_t tiles = ke > kb ? ceil_div(ke - kb, BK) : 0;
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < tiles) {
      la.load(kb + s * BK, ke, As + s * ACH);
      lb.load(kb + s * BK, ke, Bs + s * BCH);
      la.store(As + s * ACH);
      lb.store(Bs + s * BCH);
    }
    cp_async_commit();  // one group per slice, empty or not, so the count below holds
  }
  for (index_t t = 0; t < tiles; ++t) {
    cp_async_wait<S - 2>();  // slice t has landed (this thread's copies) ...
    __syncthreads();         // ... and everyone's; slice t - 1's stage is free again
    const index_t nt = t + S - 1;
    const int ns = int(nt % S), cs = int(t % S);
    if (nt < tiles) {
      la.load(kb + nt * BK, ke, As + ns * ACH);
      lb.load(kb + nt * BK, ke, Bs + ns * BCH);
    }
    cp_async_commit();
    const uint4* at = As + cs * ACH;
    const uint4* bt = Bs + cs * BCH;
#pragma unroll
    for (int s = 0; s < BK / Cfg::KSTEP; ++s) {
      std::uint32_t af[MI][4], bfr[NI][2];
      load_a<Cfg, A_KMAJOR>(af, at, wm0, s, lane);
      load_b<Cfg, B_KMAJOR>(bfr, bt, wn0, s, lane);
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) {
          if constexpr (sizeof(T) == 4)
            mma_1688_tf32(acc[i][j], af[i], bfr[j]);
          else
            mma_16816<T>(acc[i][j], af[i], bfr[j]);
        }
    }
    if (nt < tiles) {  // registers of gathered operands, after the math that hid them
      la.store(As + ns * ACH);
      lb.store(Bs + ns * BCH);
    }
  }
  cp_async_wait<0>();  // no copy may outlive the block (only empty groups remain)

  const int g = lane / 4, tq = lane % 4;
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const index_t m = m0 + wm0 + i * 16 + g + 8 * (e / 2);
        const index_t n = n0 + wn0 + j * 8 + 2 * tq + e % 2;
        if (m < M && n < N) epi.put(m, n, acc[i][j][e]);
      }
}

template <class Cfg, bool A_KMAJOR, bool B_KMAJOR, class LoadA, class LoadB, class Epilogue>
void launch_tc_gemm(const LoadA& la, const LoadB& lb, const Epilogue& epi, index_t M, index_t N,
                    index_t K, cudaStream_t stream, int splits = 1) {
  if (M <= 0 || N <= 0) return;
  if (ceil_div(M, Cfg::BM) > 65535)
    throw std::invalid_argument("matrix too tall for one launch (more than 65535 row tiles)");
  const dim3 grid(static_cast<unsigned>(ceil_div(N, Cfg::BN)),
                  static_cast<unsigned>(ceil_div(M, Cfg::BM)), static_cast<unsigned>(splits));
  const index_t k_per_split = ceil_div(ceil_div(K, Cfg::BK), splits) * Cfg::BK;
  CONVNET_LAUNCH(grid, Cfg::THREADS, 0, stream, tc_gemm_kernel<Cfg, A_KMAJOR, B_KMAJOR>)(
      la, lb, epi, M, N, K, k_per_split);
  CUDA_CHECK_LAUNCH();
}

// Big tiles once they still give about one block per SM; smaller ones before.
template <typename T, typename F>
void with_tc_cfg(index_t M, index_t N, F&& f) {
  if (ceil_div(M, 128) * ceil_div(N, 128) >= sm_count())
    f(TcBig<T>{});
  else
    f(TcSmall<T>{});
}

}  // namespace cuda
}  // namespace convnet
