// The tensor-core building blocks of tc_gemm.cuh, each behind a small wrapper so that the
// test emulator (tests/kernels/cuda_emu) can supply a CPU version with the exact warp
// fragment layouts of the PTX ISA:
//
//   ldmatrix.sync.aligned.m8n8.x{2,4}[.trans].shared.b16   (ldsm_x2/x4, ldsm_x2_t/x4_t)
//   mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32   (mma_16816<T>)
//   mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32      (mma_1688_tf32)
//   cvt.rna.tf32.f32                                        (to_tf32)
//   cp.async.commit_group / cp.async.wait_group N           (cp_async_commit/_wait<N>)
//
// plus the 16-bit storage types (f16, bf16: raw bits, so that the same code compiles with
// nvcc, with g++ in the emulator and in the host binding) and their conversions, written
// out in integer arithmetic (round to nearest even) so that both builds round alike.
// Everything needs sm_80 or later; older targets trap.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "convnet/cuda_utils.cuh"

namespace convnet {
namespace cuda {

struct f16 {
  std::uint16_t x;
};
struct bf16 {
  std::uint16_t x;
};

__host__ __device__ inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
__host__ __device__ inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

__host__ __device__ inline float to_float(bf16 h) { return bits_float(std::uint32_t(h.x) << 16); }
__host__ __device__ inline float to_float(f16 h) {
  const std::uint32_t sign = std::uint32_t(h.x & 0x8000u) << 16;
  const std::uint32_t e = (h.x >> 10) & 0x1fu, m = h.x & 0x3ffu;
  if (e == 0x1f) return bits_float(sign | 0x7f800000u | (m << 13));
  if (e == 0) {  // zero or subnormal: m * 2^-24, exact in float
    const float v = float(m) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}
__host__ __device__ inline float to_float(float v) { return v; }

template <typename T>
__host__ __device__ inline T from_float(float v);
template <>
__host__ __device__ inline float from_float<float>(float v) {
  return v;
}
template <>
__host__ __device__ inline bf16 from_float<bf16>(float v) {
  const std::uint32_t u = float_bits(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{std::uint16_t((u >> 16) | 0x40u)};  // NaN
  return bf16{std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}
template <>
__host__ __device__ inline f16 from_float<f16>(float v) {
  const std::uint32_t u = float_bits(v);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return f16{std::uint16_t(sign | 0x7e00u)};  // NaN
  if (a >= 0x477ff000u) return f16{std::uint16_t(sign | 0x7c00u)};  // >= 65520: infinity
  if (a < 0x38800000u) {  // below 2^-14: a subnormal half, m = round(|v| * 2^24) exactly
    const float s = bits_float(a) * 16777216.0f;
    std::uint32_t m = std::uint32_t(s);
    const float rest = s - float(m);
    if (rest > 0.5f || (rest == 0.5f && (m & 1u))) ++m;  // m == 1024 is the smallest normal
    return f16{std::uint16_t(sign | m)};
  }
  const std::uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
  return f16{std::uint16_t(sign | ((r - 0x38000000u) >> 13))};
}

}  // namespace cuda
}  // namespace convnet

#if defined(__CUDACC__) || defined(CONVNET_CUDA_EMULATE)
namespace convnet {
namespace cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && !defined(CONVNET_CUDA_EMULATE)
#define CONVNET_TC_PTX 1
__device__ inline unsigned smem_u32(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
#endif

// Four 8x8 matrices of 16-bit elements; lanes 8j..8j+7 give the row addresses of matrix j
// (16 bytes each), and lane l receives in r[j] the elements (l/4, 2(l%4)) and
// (l/4, 2(l%4)+1) of matrix j (transposed: (2(l%4), l/4) and (2(l%4)+1, l/4)).
__device__ inline void ldsm_x4(std::uint32_t (&r)[4], const void* smem) {
#if defined(CONVNET_CUDA_EMULATE)
  ::convnet_emu::ldmatrix(r, 4, false, smem);
#elif defined(CONVNET_TC_PTX)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem)));
#else
  __trap();
#endif
}
__device__ inline void ldsm_x4_t(std::uint32_t (&r)[4], const void* smem) {
#if defined(CONVNET_CUDA_EMULATE)
  ::convnet_emu::ldmatrix(r, 4, true, smem);
#elif defined(CONVNET_TC_PTX)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(smem)));
#else
  __trap();
#endif
}

// d += a * b on a 16x8x16 tile, float accumulators. Fragments (g = lane/4, t = lane%4):
// a[0] = A(g, 2t..2t+1), a[1] = A(g+8, ..), a[2] = A(g, 2t+8..), a[3] = A(g+8, 2t+8..);
// b[0] = B(2t..2t+1, g), b[1] = B(2t+8.., g); d[0..1] = D(g, 2t..2t+1), d[2..3] = D(g+8, ..).
template <typename T>
__device__ inline void mma_16816(float (&d)[4], const std::uint32_t (&a)[4],
                                 const std::uint32_t (&b)[2]) {
  static_assert(sizeof(T) == 2, "f16 or bf16");
#if defined(CONVNET_CUDA_EMULATE)
  ::convnet_emu::mma_16816(std::is_same<T, bf16>::value ? 1 : 0, d, a, b);
#elif defined(CONVNET_TC_PTX)
  if constexpr (std::is_same<T, bf16>::value)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

// d += a * b on a 16x8x8 tile of TF32 values: a[0] = A(g, t), a[1] = A(g+8, t),
// a[2] = A(g, t+4), a[3] = A(g+8, t+4); b[0] = B(t, g), b[1] = B(t+4, g); d as above.
__device__ inline void mma_1688_tf32(float (&d)[4], const std::uint32_t (&a)[4],
                                     const std::uint32_t (&b)[2]) {
#if defined(CONVNET_CUDA_EMULATE)
  ::convnet_emu::mma_1688_tf32(d, a, b);
#elif defined(CONVNET_TC_PTX)
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

// float -> TF32 (10-bit mantissa), rounded to nearest with ties away from zero.
__device__ inline std::uint32_t to_tf32(float v) {
#if defined(CONVNET_TC_PTX)
  std::uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
  return r;
#else
  const std::uint32_t u = float_bits(v);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;  // inf and NaN as they are
  return (u + 0x1000u) & 0xffffe000u;
#endif
}

// Closes the group of cp.async copies issued since the last commit.
__device__ inline void cp_async_commit() {
#if defined(CONVNET_CUDA_EMULATE)
  ::convnet_emu::cp_async_commit();
#elif defined(CONVNET_TC_PTX)
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Waits until at most N committed groups of this thread are still in flight.
template <int N>
__device__ inline void cp_async_wait() {
#if defined(CONVNET_CUDA_EMULATE)
  ::convnet_emu::cp_async_wait_group(N);
#elif defined(CONVNET_TC_PTX)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace cuda
}  // namespace convnet
#endif  // __CUDACC__ || CONVNET_CUDA_EMULATE
