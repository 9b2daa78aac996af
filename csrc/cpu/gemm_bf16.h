// 16-bit GEMM core: bfloat16 (and float16) operands, float32 accumulation and float32 C.
//
// The loops are gemm.h's (BLIS/GotoBLAS blocking, each thread packing its own panels), fed
// by the same packers instantiated on uint16_t (the 16-bit patterns), so a convolution can
// gather its im2col matrix straight into the panels as in float32. A packed panel is then
// turned into what the micro-kernel reads, by one of three paths:
//
//   avx512bf16  pairs of k interleaved (one 32-bit lane = a(i,k), a(i,k+1)), multiplied and
//               accumulated in float32 by vdpbf16ps (_mm512_dpbf16_ps): 32 products per
//               instruction, twice the float32 FMA's 16. Chosen at run time when the CPU
//               has AVX512-BF16 (compiled in every AVX-512 build, guarded by cpuid).
//   emulated    the same pair kernel with vdpbf16ps written as two AVX-512F FMAs (the odd
//               element first, as the instruction does). Never the default: it lets the
//               tests run the pair packing and the tiling on a CPU without AVX512-BF16.
//   convert     the panel converted to float32 and gemm.h's float32 micro-kernel. Where
//               there is no AVX512-BF16; float16 always takes it (F16C conversion: float16
//               is storage only, the arithmetic is float32's).
//
// Exactness: a bfloat16 value is the top half of a float32, so every product of two is
// exact in float32 and the sums are float32 sums (vdpbf16ps flushes denormal inputs and
// results to zero, as the kernels' FlushToZero does on the other paths).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "gemm.h"

// The pair kernels need the AVX-512 build's tile (NR a multiple of 16 float32 lanes).
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__AVX512F__)
#include <immintrin.h>
#define CONVNET_BF16_PAIRS 1
#endif

namespace convnet {

enum class Bf16Path : int { avx512bf16 = 0, emulated = 1, convert = 2 };

const char* bf16_path_name(Bf16Path p);
bool bf16_path_available(Bf16Path p);  // compiled in and supported by this CPU
Bf16Path bf16_path();                  // the path bfloat16 GEMMs take now
void set_bf16_path(Bf16Path p);        // tests: force a path (must be available)

// The 16-bit formats, as the bits they are stored in.
enum class Half16 : int { bfloat16 = 0, float16 = 1 };

inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even; a NaN stays a (quiet) NaN.
inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

// n values of a 16-bit format to float32 and back (rounding to nearest even).
void half16_to_float(Half16 fmt, const std::uint16_t* src, float* dst, index_t n, int nthreads);
void float_to_half16(Half16 fmt, const float* src, std::uint16_t* dst, index_t n, int nthreads);
bool half16_supported(Half16 fmt);  // float16 needs F16C at build time

namespace bf16_detail {

// The register tile, the same on every path (the float32 general tile), so one plain
// packing serves them all: MR rows x NR columns, NR = NV vectors of 16 float32.
using Tile16 = TileGeneral<float>;
constexpr int MR = Tile16::MR, NR = Tile16::NR;

// Plain panel [kc][W] of 16-bit values -> pairs [ceil(kc/2)][W] of 32-bit lanes (low half
// k even, high half k odd; an odd kc gets a zero high half).
template <int W>
inline void interleave_pairs(const std::uint16_t* plain, index_t kc, std::uint32_t* pairs) {
  const index_t full = kc / 2;
  for (index_t p = 0; p < full; ++p) {
    const std::uint16_t* r0 = plain + 2 * p * W;
    const std::uint16_t* r1 = r0 + W;
    std::uint32_t* out = pairs + p * W;
#pragma omp simd
    for (int j = 0; j < W; ++j) out[j] = std::uint32_t(r0[j]) | (std::uint32_t(r1[j]) << 16);
  }
  if (kc & 1) {
    const std::uint16_t* r0 = plain + (kc - 1) * W;
    std::uint32_t* out = pairs + full * W;
#pragma omp simd
    for (int j = 0; j < W; ++j) out[j] = r0[j];
  }
}

// n 16-bit values -> float32 (a packed panel).
void widen_panel(Half16 fmt, const std::uint16_t* src, float* dst, index_t n);

#if defined(CONVNET_BF16_PAIRS)
static_assert(NR % 16 == 0, "the pair kernels store whole zmm vectors");
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,fma")

struct DotNative {
  static inline __m512 dot(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
  }
};

// vdpbf16ps as two FMAs: dst = src + a_odd*b_odd, then + a_even*b_even (Intel's order).
struct DotEmulated {
  static inline __m512 dot(__m512 acc, __m512i a, __m512i b) {
    const __m512i hi = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
    const __m512 a_odd = _mm512_castsi512_ps(_mm512_and_si512(a, hi));
    const __m512 b_odd = _mm512_castsi512_ps(_mm512_and_si512(b, hi));
    const __m512 a_even = _mm512_castsi512_ps(_mm512_slli_epi32(a, 16));
    const __m512 b_even = _mm512_castsi512_ps(_mm512_slli_epi32(b, 16));
    acc = _mm512_fmadd_ps(a_odd, b_odd, acc);
    return _mm512_fmadd_ps(a_even, b_even, acc);
  }
};

// C[0:mr, 0:nr] = alpha * sum over kp pairs of Ap Bp + beta * C (beta == 0 never reads C).
// Ap: kp x MR pairs, Bp: kp x NR pairs.
template <typename Dot>
__attribute__((noinline)) void micro_pairs(index_t kp, const std::uint32_t* __restrict ap,
                                           const std::uint32_t* __restrict bp, float* c,
                                           index_t ldc, float alpha, float beta, int mr, int nr) {
  constexpr int NV = NR / 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; j += 16) __builtin_prefetch(c + i * ldc + j, 1, 3);
  for (index_t p = 0; p < kp; ++p) {
    __m512i bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = _mm512_loadu_si512(bp + j * 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi32(static_cast<int>(ap[i]));
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = Dot::dot(acc[i][j], av, bv[j]);
    }
    ap += MR;
    bp += NR;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (mr == MR && nr == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        float* dst = c + i * ldc + j * 16;
        __m512 r = _mm512_mul_ps(acc[i][j], va);
        if (beta != 0.0f) r = _mm512_fmadd_ps(_mm512_loadu_ps(dst), vb, r);
        _mm512_storeu_ps(dst, r);
      }
    return;
  }
  alignas(64) float tile[MR * NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) _mm512_store_ps(tile + i * NR + j * 16, acc[i][j]);
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      float r = alpha * tile[i * NR + j];
      if (beta != 0.0f) r += beta * c[i * ldc + j];
      c[i * ldc + j] = r;
    }
}

#pragma GCC pop_options
#endif

}  // namespace bf16_detail

// C (M rows, ldc; panel jp at pb.c_offset(jp), float32) = alpha * op(A) op(B) + beta * C
// with depth K, A and B given by packers over uint16_t patterns of `fmt` (the packers of
// gemm.h and conv2d.cpp instantiated on uint16_t), on `nthreads` threads.
template <typename PackA, typename PackB>
void gemm16_packed(Half16 fmt, index_t M, index_t K, float alpha, const PackA& pa,
                   const PackB& pb, float beta, float* c, index_t ldc, int nthreads) {
  using namespace bf16_detail;
  const Bf16Path path = fmt == Half16::bfloat16 ? bf16_path() : Bf16Path::convert;
  const index_t n_panels = pb.template panels<NR>();
  if (M <= 0 || n_panels <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    for (index_t jp = 0; jp < n_panels; ++jp) {
      float* cp = c + pb.template c_offset<NR>(jp);
      const int nr = pb.template cols<NR>(jp);
      for (index_t i = 0; i < M; ++i)
        for (int j = 0; j < nr; ++j) cp[i * ldc + j] = beta == 0.0f ? 0.0f : beta * cp[i * ldc + j];
    }
    return;
  }
  const index_t m_panels = ceil_div(M, MR);
  const index_t kc_max = std::min<index_t>(kKC, K);
  const index_t kp_max = (kc_max + 1) / 2;
  const index_t panels_per_block = std::max<index_t>(1, kKC * kNC / (kc_max * NR));
  const index_t panels_per_mc = std::max<index_t>(1, kMC / MR);
  int team = std::max(1, nthreads);
  const bool split_columns = n_panels >= 2 * team || n_panels >= m_panels;
  if (std::min(split_columns ? n_panels : m_panels, index_t(team)) < team)
    team = static_cast<int>(split_columns ? n_panels : m_panels);

#pragma omp parallel num_threads(team) if (team > 1)
  {
    FlushToZero ftz;
    const int t = thread_id(), size = team_size();
    const index_t parts = split_columns ? n_panels : m_panels;
    const index_t lo = parts * t / size, hi = parts * (t + 1) / size;
    const index_t j_begin = split_columns ? lo : 0, j_end = split_columns ? hi : n_panels;
    const index_t i_begin = split_columns ? 0 : lo, i_end = split_columns ? m_panels : hi;
    const index_t a_panels = std::min(panels_per_mc, i_end - i_begin);
    const index_t b_panels = std::min(panels_per_block, std::max<index_t>(j_end - j_begin, 1));
    // plain 16-bit panels, then the micro-kernel's form: pairs (uint32) or float32
    static thread_local Scratch<std::uint16_t> plain_buf;
    static thread_local Scratch<std::uint32_t> a_buf, b_buf;
    plain_buf.resize(std::max<index_t>(MR, NR) * (kc_max + 1));
    a_buf.resize(a_panels * MR * kp_max * 2);  // 2 lanes per pair: room for float32 too
    b_buf.resize(b_panels * NR * kp_max * 2);
    std::uint16_t* plain = plain_buf.data();
    for (index_t jb = j_begin; jb < j_end; jb += panels_per_block) {
      const index_t nb = std::min(panels_per_block, j_end - jb);
      for (index_t pc = 0; pc < K; pc += kKC) {
        const index_t kc = std::min<index_t>(kKC, K - pc), kp = (kc + 1) / 2;
        const float beta_eff = pc == 0 ? beta : 1.0f;
        // panel strides in 32-bit words: pairs kp*W, float32 kc*W (<= 2*kp*W)
        const index_t b_stride = NR * 2 * kp, a_stride = MR * 2 * kp;
        for (index_t jp = 0; jp < nb; ++jp) {
          pb.template pack<NR>(pc, kc, jb + jp, plain);
          std::uint32_t* dst = b_buf.data() + jp * b_stride;
          if (path == Bf16Path::convert)
            widen_panel(fmt, plain, reinterpret_cast<float*>(dst), kc * NR);
          else
            interleave_pairs<NR>(plain, kc, dst);
        }
        for (index_t ib = i_begin; ib < i_end; ib += panels_per_mc) {
          const index_t mb = std::min(panels_per_mc, i_end - ib);
          for (index_t ip = 0; ip < mb; ++ip) {
            const index_t row = (ib + ip) * MR;
            const int rows = static_cast<int>(std::min<index_t>(MR, M - row));
            pa.template pack<MR>(row, rows, pc, kc, plain);
            std::uint32_t* dst = a_buf.data() + ip * a_stride;
            if (path == Bf16Path::convert)
              widen_panel(fmt, plain, reinterpret_cast<float*>(dst), kc * MR);
            else
              interleave_pairs<MR>(plain, kc, dst);
          }
          for (index_t jp = 0; jp < nb; ++jp) {
            const int nr = pb.template cols<NR>(jb + jp);
            float* cp = c + pb.template c_offset<NR>(jb + jp);
            const std::uint32_t* bp = b_buf.data() + jp * b_stride;
            for (index_t ip = 0; ip < mb; ++ip) {
              const index_t row = (ib + ip) * MR;
              const int mr = static_cast<int>(std::min<index_t>(MR, M - row));
              const std::uint32_t* ap = a_buf.data() + ip * a_stride;
              float* ct = cp + row * ldc;
              switch (path) {
#if defined(CONVNET_BF16_PAIRS)
                case Bf16Path::avx512bf16:
                  micro_pairs<DotNative>(kp, ap, bp, ct, ldc, alpha, beta_eff, mr, nr);
                  break;
                case Bf16Path::emulated:
                  micro_pairs<DotEmulated>(kp, ap, bp, ct, ldc, alpha, beta_eff, mr, nr);
                  break;
#endif
                default:
                  micro_kernel<float, Tile16>(kc, reinterpret_cast<const float*>(ap),
                                              reinterpret_cast<const float*>(bp), ct, ldc,
                                              alpha, beta_eff, mr, nr);
              }
            }
          }
        }
      }
    }
  }
}

// a: op(A) (M,K), b: op(B) (K,N) in `fmt`; c: (M,N) float32, row-major.
void gemm16(Half16 fmt, bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
            const std::uint16_t* a, index_t lda, const std::uint16_t* b, index_t ldb, float beta,
            float* c, index_t ldc, int nthreads);

}  // namespace convnet

namespace convnet {

// 16-bit convolutions (conv2d.cpp): inputs in `fmt`, float32 accumulation and outputs
// (the caller rounds them). Same geometry and layouts as the float32 kernels.
// x (N,C,H,W), w (K,C,R,S) -> y (N,K,P,Q), without bias
void conv2d_forward16(Half16 fmt, const ConvGeom& g, const std::uint16_t* x,
                      const std::uint16_t* w, float* y);
// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)
void conv2d_backward_data16(Half16 fmt, const ConvGeom& g, const std::uint16_t* dy,
                            const std::uint16_t* w, float* dx);
// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S)
void conv2d_backward_weight16(Half16 fmt, const ConvGeom& g, const std::uint16_t* dy,
                              const std::uint16_t* x, float* dw);

}  // namespace convnet
