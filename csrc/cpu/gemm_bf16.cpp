// 16-bit GEMM entry point, the path choice and the 16-bit <-> float32 conversions
// (the loops are in gemm_bf16.h).
#include "gemm_bf16.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace convnet {

namespace {

bool cpu_supports(Bf16Path p) {
  switch (p) {
#if defined(CONVNET_BF16_PAIRS)
    case Bf16Path::avx512bf16:
      return __builtin_cpu_supports("avx512bf16");
    case Bf16Path::emulated:
      return __builtin_cpu_supports("avx512f");
#endif
    case Bf16Path::convert:
      return true;
    default:
      return false;
  }
}

Bf16Path best_path() {
  return cpu_supports(Bf16Path::avx512bf16) ? Bf16Path::avx512bf16 : Bf16Path::convert;
}

std::atomic<int> g_path{static_cast<int>(best_path())};

}  // namespace

const char* bf16_path_name(Bf16Path p) {
  switch (p) {
    case Bf16Path::avx512bf16:
      return "avx512bf16";
    case Bf16Path::emulated:
      return "emulated";
    default:
      return "convert";
  }
}

bool bf16_path_available(Bf16Path p) { return cpu_supports(p); }

Bf16Path bf16_path() { return static_cast<Bf16Path>(g_path.load(std::memory_order_relaxed)); }

void set_bf16_path(Bf16Path p) {
  if (cpu_supports(p)) g_path.store(static_cast<int>(p), std::memory_order_relaxed);
}

bool half16_supported(Half16 fmt) {
#if defined(__F16C__)
  return true;
#else
  return fmt == Half16::bfloat16;
#endif
}

namespace bf16_detail {

void widen_panel(Half16 fmt, const std::uint16_t* src, float* dst, index_t n) {
  if (fmt == Half16::bfloat16) {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) {
      const std::uint32_t u = std::uint32_t(src[i]) << 16;
      std::memcpy(dst + i, &u, 4);
    }
    return;
  }
#if defined(__F16C__)
  index_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
#endif
}

}  // namespace bf16_detail

void half16_to_float(Half16 fmt, const std::uint16_t* src, float* dst, index_t n, int nthreads) {
  const index_t chunk = 1 << 16;
  const index_t chunks = ceil_div(n, chunk);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && chunks > 1)
  for (index_t b = 0; b < chunks; ++b) {
    const index_t lo = b * chunk;
    bf16_detail::widen_panel(fmt, src + lo, dst + lo, std::min(chunk, n - lo));
  }
}

void float_to_half16(Half16 fmt, const float* src, std::uint16_t* dst, index_t n, int nthreads) {
  const index_t chunk = 1 << 16;
  const index_t chunks = ceil_div(n, chunk);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && chunks > 1)
  for (index_t b = 0; b < chunks; ++b) {
    const index_t lo = b * chunk, hi = std::min(n, lo + chunk);
    if (fmt == Half16::bfloat16) {
      for (index_t i = lo; i < hi; ++i) dst[i] = float_to_bf16(src[i]);
      continue;
    }
#if defined(__F16C__)
    index_t i = lo;
    for (; i + 8 <= hi; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                       _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < hi; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
#endif
  }
}

// a: op(A) (M,K), b: op(B) (K,N), c: (M,N) float32
void gemm16(Half16 fmt, bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
            const std::uint16_t* a, index_t lda, const std::uint16_t* b, index_t ldb, float beta,
            float* c, index_t ldc, int nthreads) {
  FlushToZero ftz;
  gemm16_packed(fmt, M, K, alpha, DenseA<std::uint16_t>{a, lda, trans_a},
                DenseB<std::uint16_t>{b, ldb, trans_b, N}, beta, c, ldc, nthreads);
}

}  // namespace convnet
