// GEMM on tensor cores: C = alpha * op(A) op(B) + beta * C (row-major) for float16 and
// bfloat16 operands, or float32 ones rounded to TF32, with float32 accumulation, on the
// main loop of tc_gemm.cuh. The 16-bit gemm of csrc/cpu (bfloat16) has the same shape.
#include <cstdint>

#include "tc_gemm.cuh"
#include "tc_kernels.cuh"

namespace convnet {
namespace cuda {

namespace {

// c[m, n] = alpha * acc + beta * c[m, n], computed in float and rounded once to TC;
// beta == 0 never reads c (it may hold NaN).
template <typename TC>
struct TcGemmEpilogue {
  TC* c;
  index_t ldc;
  float alpha, beta;
  __device__ void put(index_t m, index_t n, float v) const {
    TC* p = c + m * ldc + n;
    float r = alpha * v;
    if (beta != 0.f) r += beta * to_float(*p);
    *p = from_float<TC>(r);
  }
};

bool chunk_aligned(const void* p, index_t ld, int values_per_chunk) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0 && ld % values_per_chunk == 0;
}

template <class Cfg, bool TA, bool TB, typename T, typename TC>
void run(index_t M, index_t N, index_t K, float alpha, const T* a, index_t lda, const T* b,
         index_t ldb, float beta, TC* c, index_t ldc, cudaStream_t stream) {
  // op(A) = A (M x K, k contiguous: K-major) or A^T with A (K x M); B (K x N) or B^T.
  constexpr bool AK = !TA, BK = TB;
  TcDenseLoader<T, Cfg::BM, Cfg::BK, Cfg::THREADS, AK> la{};
  la.p = a;
  la.ld = lda;
  la.xsize = M;
  la.vec = chunk_aligned(a, lda, Cfg::E);
  TcDenseLoader<T, Cfg::BN, Cfg::BK, Cfg::THREADS, BK> lb{};
  lb.p = b;
  lb.ld = ldb;
  lb.xsize = N;
  lb.vec = chunk_aligned(b, ldb, Cfg::E);
  TcGemmEpilogue<TC> epi{c, ldc, alpha, beta};
  launch_tc_gemm<Cfg, AK, BK>(la, lb, epi, M, N, K, stream);
}

}  // namespace

// a: op(A) (M,K), b: op(B) (K,N), c: (M,N)
template <typename T, typename TC>
void gemm_tc(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
             const T* a, index_t lda, const T* b, index_t ldb, float beta, TC* c, index_t ldc,
             cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  with_tc_cfg<T>(M, N, [&](auto cfg) {
    using Cfg = decltype(cfg);
    if (!trans_a && !trans_b)
      run<Cfg, false, false>(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
    else if (!trans_a && trans_b)
      run<Cfg, false, true>(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
    else if (trans_a && !trans_b)
      run<Cfg, true, false>(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
    else
      run<Cfg, true, true>(M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, stream);
  });
}

#define INSTANTIATE(T, TC)                                                                   \
  template void gemm_tc<T, TC>(bool, bool, index_t, index_t, index_t, float, const T*, index_t, \
                               const T*, index_t, float, TC*, index_t, cudaStream_t);
INSTANTIATE(f16, f16)
INSTANTIATE(f16, float)
INSTANTIATE(bf16, bf16)
INSTANTIATE(bf16, float)
INSTANTIATE(float, float)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace convnet
