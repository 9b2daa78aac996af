// Packed, cache-blocked GEMM core (the BLIS/GotoBLAS loops around a register-blocked
// micro-kernel), shared by gemm.cpp and the convolutions.
//
// Both operands are read through packers, so a convolution can gather its im2col matrix
// straight into the packed panels (implicit GEMM) and span a whole batch of images in one
// GEMM. The B packer also says where each NR-column panel of C lives, which lets one GEMM
// write the (N, K, P*Q) output of a convolution image by image.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels.h"

namespace convnet {

// One SIMD register as a GCC vector: the compiler emits zmm (AVX-512), ymm (AVX2+FMA)
// or xmm (portable SSE/NEON) instructions for the same source, picked by -march.
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
constexpr bool kManyRegisters = true;  // 32 vector registers
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
constexpr bool kManyRegisters = false;
#else
constexpr int kVecBytes = 16;
constexpr bool kManyRegisters = false;
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

// The C tile held in registers: MR rows x NV vectors. Accumulators + NV B vectors + one
// broadcast must fit the register file.
template <typename T, int MR_, int NV_>
struct Tile {
  using V = typename Vec<T>::type;
  static constexpr int MR = MR_;
  static constexpr int NV = NV_;
  static constexpr int L = kVecBytes / int(sizeof(T));
  static constexpr int NR = NV * L;
};

// Tiles: 8x3 vectors is the general one; 6x4 suits M=6 (LeNet's first layer).
template <typename T>
using TileGeneral = Tile<T, kManyRegisters ? 8 : 6, kManyRegisters ? 3 : 2>;
template <typename T>
using TileShort = Tile<T, kManyRegisters ? 6 : 4, kManyRegisters ? 4 : 3>;

#ifndef CONVNET_GEMM_KC  // overridable for tuning experiments
#define CONVNET_GEMM_KC 256
#endif
#ifndef CONVNET_GEMM_MC
#define CONVNET_GEMM_MC 192
#endif
#ifndef CONVNET_GEMM_NC
#define CONVNET_GEMM_NC 3072
#endif
constexpr index_t kKC = CONVNET_GEMM_KC;  // depth of a packed block: B micro-panel KC x NR in L1
constexpr index_t kMC = CONVNET_GEMM_MC;  // rows of A per block: MC x KC in L2
constexpr index_t kNC = CONVNET_GEMM_NC;  // columns of B per block: KC x NC in L2/L3

// The plain store of a C tile; cpu/epilogue.h has the one that adds a bias and an activation.
struct NoEpilogue {
  static constexpr bool active = false;
};

// C[0:mr, 0:nr] = alpha * Ap^T Bp + beta * C, Ap: KC x MR packed, Bp: KC x NR packed.
// beta == 0 never reads C (it may hold NaN). An active epilogue `ep` then transforms the
// tile in registers; row0/col0 locate it in C for the epilogue (col0: the panel's c_offset).
template <typename T, typename Sh, typename Ep = NoEpilogue>
inline void micro_kernel(index_t kc, const T* __restrict ap, const T* __restrict bp, T* c,
                         index_t ldc, T alpha, T beta, int mr, int nr, const Ep& ep = Ep{},
                         index_t row0 = 0, index_t col0 = 0) {
  using V = typename Sh::V;
  constexpr int MR = Sh::MR, NV = Sh::NV, L = Sh::L, NR = Sh::NR;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  // Fetch the C tile for writing while the multiply-adds run: its cache misses would
  // otherwise stall the store at the end of every call.
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; j += 64 / int(sizeof(T))) __builtin_prefetch(c + i * ldc + j, 1, 3);
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
        if constexpr (Ep::active) r = ep.vec(r, row0 + i, col0 + j * L, L);
        std::memcpy(dst, &r, sizeof(V));
      }
    }
  } else if constexpr (Ep::active) {
    for (int i = 0; i < mr; ++i)
      for (int j = 0; j < NV && j * L < nr; ++j) {
        const int lanes = std::min(L, nr - j * L);
        T* dst = c + i * ldc + j * L;
        V r = acc[i][j] * alpha;
        if (beta != T(0)) {
          V old{};
          std::memcpy(&old, dst, sizeof(T) * lanes);
          r += old * beta;
        }
        r = ep.vec(r, row0 + i, col0 + j * L, lanes);
        std::memcpy(dst, &r, sizeof(T) * lanes);
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

// A as an ordinary strided matrix; op(A) is M x K.
template <typename T>
struct DenseA {
  const T* a;
  index_t lda;
  bool trans;
  // Packs rows [i0, i0+rows) x depth [k0, k0+kc) as one MR-row panel (zero padded).
  template <int MR>
  void pack(index_t i0, int rows, index_t k0, index_t kc, T* dst) const {
    if (!trans) {
      for (int i = 0; i < rows; ++i) {
        const T* src = a + (i0 + i) * lda + k0;
        for (index_t k = 0; k < kc; ++k) dst[k * MR + i] = src[k];
      }
    } else {
      for (index_t k = 0; k < kc; ++k) {
        const T* src = a + (k0 + k) * lda + i0;
        for (int i = 0; i < rows; ++i) dst[k * MR + i] = src[i];
      }
    }
    for (int i = rows; i < MR; ++i)
      for (index_t k = 0; k < kc; ++k) dst[k * MR + i] = T(0);
  }
};

// B as an ordinary strided matrix, op(B) K x N, with C's panels at consecutive columns.
template <typename T>
struct DenseB {
  const T* b;
  index_t ldb;
  bool trans;
  index_t N;
  template <int NR>
  index_t panels() const {
    return ceil_div(N, NR);
  }
  template <int NR>
  int cols(index_t jp) const {
    return static_cast<int>(std::min<index_t>(NR, N - jp * NR));
  }
  template <int NR>
  index_t c_offset(index_t jp) const {
    return jp * NR;
  }
  // Packs depth [k0, k0+kc) x the columns of panel jp (zero padded to NR).
  template <int NR>
  void pack(index_t k0, index_t kc, index_t jp, T* dst) const {
    const index_t j0 = jp * NR;
    const int nr = cols<NR>(jp);
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

// The packed copy of A that the threads of one GEMM share (see gemm_packed): one per value
// type, kept across calls so its pages are touched once; a call that finds it in use (a
// concurrent GEMM from another Python thread) packs into a buffer of its own.
template <typename T>
struct SharedPackA {
  std::mutex lock;
  Scratch<T> values;
  std::unique_ptr<std::atomic<int>[]> state;  // per micro-panel: kFree, kPacking, kReady
  std::size_t n_state = 0;
  static SharedPackA& instance() {
    static SharedPackA pool;
    return pool;
  }
  void reserve(std::size_t n_values, std::size_t n_panels) {
    values.resize(n_values);
    if (n_panels > n_state) {
      state.reset(new std::atomic<int>[n_panels]);
      n_state = n_panels;
    }
    for (std::size_t i = 0; i < n_panels; ++i) state[i].store(0, std::memory_order_relaxed);
  }
};

// C (M rows, ldc; panel jp at column offset pb.c_offset(jp)) = alpha * op(A) op(B) + beta*C,
// with depth K, on `nthreads` threads (1 when called from inside an outer parallel loop),
// then the epilogue `ep` on each tile of C after its last depth block.
//
// The threads never wait for each other inside the GEMM: a barrier costs a whole scheduler
// tick whenever another process holds a core. When C is wide, the column panels are cut
// into chunks that the threads claim from a shared counter (a thread that loses its core
// leaves its share to the others), each thread packs the B rows of its chunk, and A is packed
// once for all: every MR-row micro-panel of A has a state that the first thread to need it
// claims (kFree -> kPacking), packs into the shared buffer and publishes (kReady); a thread
// that finds a panel being packed by another packs a private copy instead of waiting. The
// threads start their sweep over A's panels at different offsets so that each packs its own
// share. When C is narrow (few column panels), each thread owns a range of row panels.
template <typename T, typename Sh, typename PackA, typename PackB, typename Ep = NoEpilogue>
void gemm_packed(index_t M, index_t K, T alpha, const PackA& pa, const PackB& pb, T beta, T* c,
                 index_t ldc, int nthreads, const Ep& ep = Ep{}) {
  constexpr int MR = Sh::MR, NR = Sh::NR;
  const index_t n_panels = pb.template panels<NR>();
  if (M <= 0 || n_panels <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    for (index_t jp = 0; jp < n_panels; ++jp) {
      T* cp = c + pb.template c_offset<NR>(jp);
      const int nr = pb.template cols<NR>(jp);
      for (index_t i = 0; i < M; ++i)
        for (int j = 0; j < nr; ++j) cp[i * ldc + j] = beta == T(0) ? T(0) : beta * cp[i * ldc + j];
      if constexpr (Ep::active)
        for (index_t i = 0; i < M; ++i)
          ep.apply_row(cp + i * ldc, nr, i, pb.template c_offset<NR>(jp));
    }
    return;
  }
  const index_t m_panels = ceil_div(M, MR);
  const index_t kc_max = std::min<index_t>(kKC, K);
  // A block of B holds about KC x NC values whatever the depth, so shallow GEMMs (few input
  // channels) take wide blocks.
  const index_t panels_per_block = std::max<index_t>(1, kKC * kNC / (kc_max * NR));
  const index_t panels_per_mc = std::max<index_t>(1, kMC / MR);
  int team = std::max(1, nthreads);
  const bool split_columns = n_panels >= 2 * team || n_panels >= m_panels;
  if (std::min(split_columns ? n_panels : m_panels, index_t(team)) < team)
    team = static_cast<int>(split_columns ? n_panels : m_panels);

  if (team > 1 && split_columns) {
    // About four chunks per thread: enough for the others to absorb a thread that loses its
    // core, few enough that each chunk's sweep over the packed A stays cheap.
    const index_t chunk =
        std::min(panels_per_block, std::max<index_t>(1, ceil_div(n_panels, 4 * index_t(team))));
    const index_t n_chunks = ceil_div(n_panels, chunk);
    // The last `team` chunks are also cut by rows, in `team` parts or MC blocks: whole
    // chunks alone leave up to one chunk of imbalance at the end (11 panels on 2 threads:
    // 6 and 5). Each part packs its chunk's B again, which costs little for so few.
    const index_t tail_rows = std::min(panels_per_mc, ceil_div(m_panels, index_t(team)));
    const index_t m_parts = ceil_div(m_panels, tail_rows);
    const index_t n_whole = n_chunks - std::min<index_t>(team, n_chunks);
    const index_t n_items = n_whole + (n_chunks - n_whole) * m_parts;
    const index_t k_blocks = ceil_div(K, kKC);
    const index_t m_pad = m_panels * MR;
    SharedPackA<T>& pool = SharedPackA<T>::instance();
    std::unique_lock<std::mutex> own(pool.lock, std::try_to_lock);
    SharedPackA<T> local;
    SharedPackA<T>& shared = own.owns_lock() ? pool : local;
    shared.reserve(std::size_t(m_pad * K), std::size_t(m_panels * k_blocks));
    T* a_all = shared.values.data();
    std::atomic<int>* a_state = shared.state.get();
    std::atomic<index_t> next_item{0};
#pragma omp parallel num_threads(team)
    {
      FlushToZero ftz;
      const int t = thread_id(), size = team_size();
      static thread_local Scratch<T> a_buf, b_buf;
      static thread_local std::vector<const T*> a_ptr;
      a_buf.resize(panels_per_mc * MR * kc_max);
      b_buf.resize(chunk * NR * kc_max);
      a_ptr.resize(panels_per_mc);
      T* ap_own = a_buf.data();
      T* bp_all = b_buf.data();
      for (index_t it = next_item.fetch_add(1, std::memory_order_relaxed); it < n_items;
           it = next_item.fetch_add(1, std::memory_order_relaxed)) {
        const bool whole = it < n_whole;
        const index_t ch = whole ? it : n_whole + (it - n_whole) / m_parts;
        const index_t i_lo = whole ? 0 : (it - n_whole) % m_parts * tail_rows;
        const index_t i_hi = whole ? m_panels : std::min(m_panels, i_lo + tail_rows);
        const index_t jb = ch * chunk;
        const index_t nb = std::min(chunk, n_panels - jb);
        for (index_t pb_i = 0; pb_i < k_blocks; ++pb_i) {
          const index_t pc = pb_i * kKC;
          const index_t kc = std::min<index_t>(kKC, K - pc);
          const T beta_eff = pc == 0 ? beta : T(1);
          const bool last = pb_i + 1 == k_blocks;
          for (index_t jp = 0; jp < nb; ++jp) pb.template pack<NR>(pc, kc, jb + jp, bp_all + jp * NR * kc);
          for (index_t ib = i_lo; ib < i_hi; ib += panels_per_mc) {
            const index_t mb = std::min(panels_per_mc, i_hi - ib);
            const index_t first = mb * t / size;
            for (index_t q = 0; q < mb; ++q) {
              const index_t ip = (first + q) % mb;
              const index_t row = (ib + ip) * MR;
              const int rows = static_cast<int>(std::min<index_t>(MR, M - row));
              std::atomic<int>& st = a_state[pb_i * m_panels + ib + ip];
              T* dst = a_all + pc * m_pad + (ib + ip) * MR * kc;
              int s = st.load(std::memory_order_acquire);
              if (s == 0 && st.compare_exchange_strong(s, 1, std::memory_order_acquire)) {
                pa.template pack<MR>(row, rows, pc, kc, dst);
                st.store(2, std::memory_order_release);
                a_ptr[ip] = dst;
              } else if (s == 2) {
                a_ptr[ip] = dst;
              } else {  // another thread is packing it right now: do not wait for it
                pa.template pack<MR>(row, rows, pc, kc, ap_own + ip * MR * kc);
                a_ptr[ip] = ap_own + ip * MR * kc;
              }
            }
            for (index_t jp = 0; jp < nb; ++jp) {
              const int nr = pb.template cols<NR>(jb + jp);
              T* cp = c + pb.template c_offset<NR>(jb + jp);
              const T* bp = bp_all + jp * NR * kc;
              for (index_t ip = 0; ip < mb; ++ip) {
                const index_t row = (ib + ip) * MR;
                const int mr = static_cast<int>(std::min<index_t>(MR, M - row));
                if (Ep::active && last)
                  micro_kernel<T, Sh, Ep>(kc, a_ptr[ip], bp, cp + row * ldc, ldc, alpha, beta_eff,
                                          mr, nr, ep, row, pb.template c_offset<NR>(jb + jp));
                else
                  micro_kernel<T, Sh>(kc, a_ptr[ip], bp, cp + row * ldc, ldc, alpha, beta_eff,
                                      mr, nr);
              }
            }
          }
        }
      }
    }
    return;
  }

#pragma omp parallel num_threads(team) if (team > 1)
  {
    FlushToZero ftz;
    const int t = thread_id(), size = team_size();
    const index_t lo = m_panels * t / size, hi = m_panels * (t + 1) / size;
    const index_t j_begin = 0, j_end = n_panels;
    const index_t i_begin = lo, i_end = hi;
    // Packing buffers per thread, kept across calls so that repeated GEMMs reuse their pages.
    static thread_local Scratch<T> a_buf, b_buf;
    a_buf.resize(std::min(panels_per_mc, i_end - i_begin) * MR * kc_max);
    b_buf.resize(std::min(panels_per_block, std::max<index_t>(j_end - j_begin, 1)) * NR * kc_max);
    T* ap_all = a_buf.data();
    T* bp_all = b_buf.data();
    for (index_t jb = j_begin; jb < j_end; jb += panels_per_block) {
      const index_t nb = std::min(panels_per_block, j_end - jb);
      for (index_t pc = 0; pc < K; pc += kKC) {
        const index_t kc = std::min<index_t>(kKC, K - pc);
        const T beta_eff = pc == 0 ? beta : T(1);
        const bool last = pc + kc >= K;
        for (index_t jp = 0; jp < nb; ++jp) pb.template pack<NR>(pc, kc, jb + jp, bp_all + jp * NR * kc);
        for (index_t ib = i_begin; ib < i_end; ib += panels_per_mc) {
          const index_t mb = std::min(panels_per_mc, i_end - ib);
          for (index_t ip = 0; ip < mb; ++ip) {
            const index_t row = (ib + ip) * MR;
            const int rows = static_cast<int>(std::min<index_t>(MR, M - row));
            pa.template pack<MR>(row, rows, pc, kc, ap_all + ip * MR * kc);
          }
          for (index_t jp = 0; jp < nb; ++jp) {
            const int nr = pb.template cols<NR>(jb + jp);
            T* cp = c + pb.template c_offset<NR>(jb + jp);
            const T* bp = bp_all + jp * NR * kc;
            for (index_t ip = 0; ip < mb; ++ip) {
              const index_t row = (ib + ip) * MR;
              const int mr = static_cast<int>(std::min<index_t>(MR, M - row));
              if (Ep::active && last)
                micro_kernel<T, Sh, Ep>(kc, ap_all + ip * MR * kc, bp, cp + row * ldc, ldc, alpha,
                                        beta_eff, mr, nr, ep, row,
                                        pb.template c_offset<NR>(jb + jp));
              else
                micro_kernel<T, Sh>(kc, ap_all + ip * MR * kc, bp, cp + row * ldc, ldc, alpha,
                                    beta_eff, mr, nr);
            }
          }
        }
      }
    }
  }
}

// Runs gemm_packed with the register tile that wastes least for M rows.
template <typename T, typename PackA, typename PackB, typename Ep = NoEpilogue>
void gemm_auto(index_t M, index_t K, T alpha, const PackA& pa, const PackB& pb, T beta, T* c,
               index_t ldc, int nthreads, const Ep& ep = Ep{}) {
  using G = TileGeneral<T>;
  using S = TileShort<T>;
  const double waste_g = double(round_up(M, G::MR) - M) / round_up(M, G::MR);
  const double waste_s = double(round_up(M, S::MR) - M) / round_up(M, S::MR);
  if (waste_s + 0.05 < waste_g)
    gemm_packed<T, S>(M, K, alpha, pa, pb, beta, c, ldc, nthreads, ep);
  else
    gemm_packed<T, G>(M, K, alpha, pa, pb, beta, c, ldc, nthreads, ep);
}

}  // namespace convnet
