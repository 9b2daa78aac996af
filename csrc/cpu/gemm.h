// Packed, cache-blocked GEMM core (the BLIS/GotoBLAS five loops around a register-blocked
// micro-kernel), shared by gemm.cpp and the convolutions. B is read through a "packer" so a
// convolution can pack its im2col matrix straight into the GEMM's panels (implicit GEMM)
// without ever materialising the column buffer.
#pragma once

#include <algorithm>
#include <cstring>

#include "kernels.h"

namespace convnet {

// One SIMD register as a GCC vector: the compiler emits zmm (AVX-512), ymm (AVX2+FMA)
// or xmm (portable SSE/NEON) instructions for the same source, picked by -march.
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr int kRegisters = 32;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
constexpr int kRegisters = 16;
#else
constexpr int kVecBytes = 16;
constexpr int kRegisters = 16;
#endif

template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef float type __attribute__((vector_size(kVecBytes)));
};
template <>
struct Vec<double> {
  typedef double type __attribute__((vector_size(kVecBytes)));
};

template <typename T>
struct GemmBlocking {
  using V = typename Vec<T>::type;
  static constexpr int kLanes = kVecBytes / sizeof(T);
  static constexpr int kNV = 2;                    // vectors per row of the C tile
  static constexpr int NR = kNV * kLanes;          // columns of the C tile
  // Rows of the C tile: accumulators MR*kNV plus kNV B vectors and a broadcast fit the file.
  static constexpr int MR = kRegisters == 32 ? 14 : 6;
#ifndef CONVNET_GEMM_KC
#define CONVNET_GEMM_KC 256
#define CONVNET_GEMM_MCR 12
#define CONVNET_GEMM_NC 3072
#endif
  static constexpr index_t KC = CONVNET_GEMM_KC;                // B micro-panel KC x NR in L1
  static constexpr index_t MC = MR * CONVNET_GEMM_MCR;          // A block MC x KC in L2
  static constexpr index_t NC = CONVNET_GEMM_NC;                // B panel KC x NC in L3
};

// C[0:mr, 0:nr] = alpha * Ap^T Bp + beta * C, Ap: KC x MR packed, Bp: KC x NR packed.
// beta == 0 never reads C (it may hold NaN).
template <typename T>
inline void micro_kernel(index_t kc, const T* __restrict ap, const T* __restrict bp, T* c,
                         index_t ldc, T alpha, T beta, int mr, int nr) {
  using B = GemmBlocking<T>;
  using V = typename B::V;
  constexpr int MR = B::MR, NV = B::kNV, L = B::kLanes, NR = B::NR;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  for (index_t k = 0; k < kc; ++k) {
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = *reinterpret_cast<const V*>(bp + j * L);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      V av = ap[i] - V{};  // x - (+0) is exact for every x, so this is a pure broadcast
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] += av * bv[j];
    }
    ap += MR;
    bp += NR;
  }
  if (mr == MR && nr == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        T* dst = c + i * ldc + j * L;
        V r = acc[i][j] * alpha;
        if (beta != T(0)) {
          V old;
          std::memcpy(&old, dst, sizeof(V));
          r += old * beta;
        }
        std::memcpy(dst, &r, sizeof(V));
      }
    }
  } else {
    alignas(64) T tile[MR * NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) std::memcpy(tile + i * NR + j * L, &acc[i][j], sizeof(V));
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < nr; ++j) {
        T r = alpha * tile[i * NR + j];
        if (beta != T(0)) r += beta * c[i * ldc + j];
        c[i * ldc + j] = r;
      }
  }
}

// Packs rows [i0, i0+mc) x depth [k0, k0+kc) of op(A) into MR-row panels (zero padded).
template <typename T>
void pack_a(const T* a, index_t lda, bool trans, index_t i0, index_t mc, index_t k0, index_t kc,
            T* dst) {
  constexpr int MR = GemmBlocking<T>::MR;
  for (index_t ip = 0; ip < mc; ip += MR) {
    const int rows = static_cast<int>(std::min<index_t>(MR, mc - ip));
    T* panel = dst + ip * kc;
    if (!trans) {
      for (int i = 0; i < rows; ++i) {
        const T* src = a + (i0 + ip + i) * lda + k0;
        for (index_t k = 0; k < kc; ++k) panel[k * MR + i] = src[k];
      }
      for (int i = rows; i < MR; ++i)
        for (index_t k = 0; k < kc; ++k) panel[k * MR + i] = T(0);
    } else {
      for (index_t k = 0; k < kc; ++k) {
        const T* src = a + (k0 + k) * lda + i0 + ip;
        T* out = panel + k * MR;
        int i = 0;
        for (; i < rows; ++i) out[i] = src[i];
        for (; i < MR; ++i) out[i] = T(0);
      }
    }
  }
}

// B given as an ordinary strided matrix, op(B) is K x N.
template <typename T>
struct DenseB {
  const T* b;
  index_t ldb;
  bool trans;
  // Packs depth [k0, k0+kc) x columns [j0, j0+nr) into one NR-wide panel (zero padded).
  void operator()(index_t k0, index_t kc, index_t j0, int nr, T* dst) const {
    constexpr int NR = GemmBlocking<T>::NR;
    if (!trans) {
      for (index_t k = 0; k < kc; ++k) {
        const T* src = b + (k0 + k) * ldb + j0;
        T* out = dst + k * NR;
        if (nr == NR) {
          std::memcpy(out, src, sizeof(T) * NR);
        } else {
          int j = 0;
          for (; j < nr; ++j) out[j] = src[j];
          for (; j < NR; ++j) out[j] = T(0);
        }
      }
    } else {
      for (int j = 0; j < nr; ++j) {
        const T* src = b + (j0 + j) * ldb + k0;
        for (index_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
      }
      for (int j = nr; j < NR; ++j)
        for (index_t k = 0; k < kc; ++k) dst[k * NR + j] = T(0);
    }
  }
};

// C (M x N, ldc) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C, on `nthreads` threads
// (1 when called from inside an outer parallel loop).
template <typename T, typename PackB>
void gemm_packed(bool trans_a, index_t M, index_t N, index_t K, T alpha, const T* a, index_t lda,
                 const PackB& pack_b, T beta, T* c, index_t ldc, int nthreads) {
  using Bk = GemmBlocking<T>;
  constexpr int MR = Bk::MR, NR = Bk::NR;
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  const index_t kc_max = std::min<index_t>(Bk::KC, K);
  const index_t nc_max = std::min<index_t>(Bk::NC, round_up(N, NR));
  const index_t m_pad = round_up(M, MR);
  // The A block and B panel packed for one (jc, pc) step, shared by the team; kept per
  // calling thread so that repeated calls do not pay for fresh pages.
  static thread_local Scratch<T> a_buf, b_buf;
  a_buf.resize(m_pad * kc_max);
  b_buf.resize(nc_max * kc_max);
  T* ap_all = a_buf.data();
  T* bp_all = b_buf.data();

  // Row blocks of at most MC rows, as many per thread for every thread.
  const index_t per_thread = ceil_div(M, index_t(nthreads) * Bk::MC);
  const index_t mc = round_up(ceil_div(M, index_t(nthreads) * per_thread), MR);
  const index_t mc_blocks = ceil_div(M, mc);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
  {
    FlushToZero ftz;
    for (index_t jc = 0; jc < N; jc += Bk::NC) {
      const index_t nc = std::min<index_t>(Bk::NC, N - jc);
      const index_t n_panels = ceil_div(nc, NR);
      for (index_t pc = 0; pc < K; pc += Bk::KC) {
        const index_t kc = std::min<index_t>(Bk::KC, K - pc);
        const T beta_eff = pc == 0 ? beta : T(1);
#pragma omp for schedule(static) nowait
        for (index_t jp = 0; jp < n_panels; ++jp) {
          const int nr = static_cast<int>(std::min<index_t>(NR, nc - jp * NR));
          pack_b(pc, kc, jc + jp * NR, nr, bp_all + jp * NR * kc);
        }
#pragma omp for schedule(static)
        for (index_t ip = 0; ip < m_pad / MR; ++ip) {
          const index_t rows = std::min<index_t>(MR, M - ip * MR);
          pack_a(a, lda, trans_a, ip * MR, rows, pc, kc, ap_all + ip * MR * kc);
        }
        // Split the C block over (row block, column chunk) tasks so that small-M GEMMs
        // (a convolution with few filters) still use every thread.
        const int team = 1
#ifdef _OPENMP
                         * omp_get_num_threads()
#endif
            ;
        const index_t col_chunks =
            (mc_blocks % team == 0) ? 1 : std::min<index_t>(n_panels, team);
        const index_t tasks = mc_blocks * col_chunks;
#pragma omp for schedule(static)
        for (index_t t = 0; t < tasks; ++t) {
          const index_t ib = t / col_chunks, cb = t % col_chunks;
          const index_t i_begin = ib * mc, i_end = std::min<index_t>(M, i_begin + mc);
          const index_t jp_begin = n_panels * cb / col_chunks;
          const index_t jp_end = n_panels * (cb + 1) / col_chunks;
          for (index_t jp = jp_begin; jp < jp_end; ++jp) {
            const int nr = static_cast<int>(std::min<index_t>(NR, nc - jp * NR));
            const T* bp = bp_all + jp * NR * kc;
            for (index_t i = i_begin; i < i_end; i += MR) {
              const int mr = static_cast<int>(std::min<index_t>(MR, M - i));
              micro_kernel<T>(kc, ap_all + i * kc, bp, c + i * ldc + jc + jp * NR, ldc, alpha,
                              beta_eff, mr, nr);
            }
          }
        }
      }
    }
  }
}

}  // namespace convnet
