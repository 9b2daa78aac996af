// Checks of the tensor-core building blocks (csrc/cuda/tc_ops.cuh, tc_gemm.cuh) against
// the PTX ISA's own statements, independently of the kernels that use them
// (tests/kernels/test_cuda_tc_emulated.py runs this program):
//
//   layout   one warp: ldmatrix(.trans) of known 16x16 / 16x8 tiles and mma.sync on
//            registers built from the ISA's fragment formulas (restated below, not taken
//            from the kernels); prints the lanes that disagree. The GEMM tests alone would
//            pass if the kernels and the emulator shared one wrong layout; this would not.
//   convert  float16 decode of all 65536 patterns and encode of edge and random floats
//            against the compiler's _Float16; bfloat16 and TF32 rounding against a
//            nearest-candidate reference (ties to even, resp. away from zero).
//   swizzle  every shared tile layout of tc_gemm.cuh is a permutation of its chunks, and
//            the 8 rows one ldmatrix matrix reads (and the rows a cp.async wave of 8
//            threads writes) fall in 8 distinct 16-byte bank groups: no bank conflicts.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cuda/tc_gemm.cuh"

namespace convnet {
namespace cuda {
int sm_count() { return 4; }
}  // namespace cuda
}  // namespace convnet

namespace {

using namespace convnet::cuda;

// The ISA's fragments (g = lane / 4, t = lane % 4), m16n8k16 with 16-bit A and B:
// a_i (i = 0..7): row g + 8 * ((i / 2) % 2), column 2t + (i % 2) + 8 * (i / 4), two per
// register (a0 in the low half of register 0); b_i (i = 0..3): row 2t + (i % 2) + 8 * (i / 2),
// column g; c_i (i = 0..3): row g + 8 * (i / 2), column 2t + (i % 2).
// m16n8k8 TF32: a_i (i = 0..3): row g + 8 * (i % 2), column t + 4 * (i / 2);
// b_i (i = 0..1): row t + 4 * i, column g.
__host__ __device__ inline float a_val(int r, int k) { return float((r * 16 + k) % 7 - 3); }
__host__ __device__ inline float b_val(int k, int n) { return float((k * 8 + n) % 5 - 2); }

std::uint32_t pack(f16 lo, f16 hi) { return std::uint32_t(lo.x) | (std::uint32_t(hi.x) << 16); }

__global__ void layout_kernel(std::uint32_t* regs, float* d16, float* d32) {
  __shared__ __align__(16) f16 a_rm[16][16];  // A row-major: the K-major tile
  __shared__ __align__(16) f16 a_km[16][16];  // A^T (rows k): the MN-major tile
  __shared__ __align__(16) f16 b_nm[8][16];   // B^T (rows n, k contiguous)
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  for (int i = lane; i < 256; i += 32) {
    a_rm[i / 16][i % 16] = from_float<f16>(a_val(i / 16, i % 16));
    a_km[i / 16][i % 16] = from_float<f16>(a_val(i % 16, i / 16));
  }
  for (int i = lane; i < 128; i += 32) b_nm[i / 16][i % 16] = from_float<f16>(b_val(i % 16, i / 16));
  __syncthreads();
  std::uint32_t r[4], q[4];
  ldsm_x4(r, &a_rm[lane % 16][(lane / 16) * 8]);
  const int mat = lane / 8, row = lane % 8;
  ldsm_x4_t(q, &a_km[(mat / 2) * 8 + row][(mat % 2) * 8]);
  std::uint32_t bq[4];
  ldsm_x4(bq, &b_nm[row][(mat % 2) * 8]);  // matrices 2, 3 repeat 0, 1
  for (int j = 0; j < 4; ++j) {
    regs[lane * 12 + j] = r[j];
    regs[lane * 12 + 4 + j] = q[j];
    regs[lane * 12 + 8 + j] = bq[j];
  }
  // mma on registers built from the ISA formulas
  std::uint32_t a[4], b[2];
  for (int j = 0; j < 4; ++j) {
    const int i0 = 2 * j, i1 = 2 * j + 1;
    auto ar = [&](int i) { return g + 8 * ((i / 2) % 2); };
    auto ac = [&](int i) { return 2 * t + (i % 2) + 8 * (i / 4); };
    a[j] = std::uint32_t(from_float<f16>(a_val(ar(i0), ac(i0))).x) |
           (std::uint32_t(from_float<f16>(a_val(ar(i1), ac(i1))).x) << 16);
  }
  for (int j = 0; j < 2; ++j) {
    const int i0 = 2 * j, i1 = 2 * j + 1;
    auto br = [&](int i) { return 2 * t + (i % 2) + 8 * (i / 2); };
    b[j] = std::uint32_t(from_float<f16>(b_val(br(i0), g)).x) |
           (std::uint32_t(from_float<f16>(b_val(br(i1), g)).x) << 16);
  }
  float d[4] = {0.f, 0.f, 0.f, 0.f};
  mma_16816<f16>(d, a, b);
  for (int i = 0; i < 4; ++i) d16[lane * 4 + i] = d[i];
  std::uint32_t a8[4], b8[2];
  for (int i = 0; i < 4; ++i) a8[i] = to_tf32(a_val(g + 8 * (i % 2), t + 4 * (i / 2)) + 0.25f);
  for (int i = 0; i < 2; ++i) b8[i] = to_tf32(b_val(t + 4 * i, g) - 0.5f);
  float e[4] = {1.f, 1.f, 1.f, 1.f};
  mma_1688_tf32(e, a8, b8);
  for (int i = 0; i < 4; ++i) d32[lane * 4 + i] = e[i];
}

int layout() {
  std::vector<std::uint32_t> regs(32 * 12);
  std::vector<float> d16(128), d32(128);
  CONVNET_LAUNCH(dim3(1), dim3(32), 0, nullptr, layout_kernel)(regs.data(), d16.data(),
                                                               d32.data());
  int bad = 0;
  auto h = [](float v) { return from_float<f16>(v); };
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int j = 0; j < 4; ++j) {  // A fragment register j: elements a_{2j}, a_{2j+1}
      const int r = g + 8 * (j % 2), c = 2 * t + 8 * (j / 2);
      const std::uint32_t want = pack(h(a_val(r, c)), h(a_val(r, c + 1)));
      if (regs[lane * 12 + j] != want) {
        std::printf("ldmatrix lane %d reg %d\n", lane, j);
        ++bad;
      }
      if (regs[lane * 12 + 4 + j] != want) {
        std::printf("ldmatrix.trans lane %d reg %d\n", lane, j);
        ++bad;
      }
      const int k = 2 * t + 8 * (j % 2);  // B fragment registers (repeated for j = 2, 3)
      const std::uint32_t wb = pack(h(b_val(k, g)), h(b_val(k + 1, g)));
      if (regs[lane * 12 + 8 + j] != wb) {
        std::printf("ldmatrix B lane %d reg %d\n", lane, j);
        ++bad;
      }
    }
    for (int i = 0; i < 4; ++i) {
      const int r = g + 8 * (i / 2), n = 2 * t + (i % 2);
      double s16 = 0.0, s32 = 1.0;
      for (int k = 0; k < 16; ++k) s16 += double(a_val(r, k)) * b_val(k, n);
      for (int k = 0; k < 8; ++k) s32 += (double(a_val(r, k)) + 0.25) * (b_val(k, n) - 0.5);
      if (d16[lane * 4 + i] != float(s16)) {
        std::printf("mma f16 lane %d c%d: %g vs %g\n", lane, i, d16[lane * 4 + i], s16);
        ++bad;
      }
      if (d32[lane * 4 + i] != float(s32)) {
        std::printf("mma tf32 lane %d c%d: %g vs %g\n", lane, i, d32[lane * 4 + i], s32);
        ++bad;
      }
    }
  }
  return bad;
}

// The representable value nearest to v among two candidates (lo <= v <= hi, as floats),
// ties to the even pattern or away from zero.
std::uint32_t nearest(float v, std::uint32_t lo, std::uint32_t hi, std::uint32_t lsb,
                      bool ties_even) {
  float fl, fh;
  std::memcpy(&fl, &lo, 4);
  std::memcpy(&fh, &hi, 4);
  const double dl = std::fabs(double(v) - fl), dh = std::fabs(double(fh) - v);
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return ties_even ? ((lo & lsb) ? hi : lo) : hi;
}

int convert() {
  int bad = 0;
  for (std::uint32_t p = 0; p < 65536; ++p) {
    _Float16 ref;
    const std::uint16_t bits = std::uint16_t(p);
    std::memcpy(&ref, &bits, 2);
    const float got = to_float(f16{bits}), want = float(ref);
    if (!(got == want || (got != got && want != want)) ||
        std::signbit(got) != std::signbit(want)) {
      if (bad++ < 5) std::printf("f16 decode %04x: %g vs %g\n", p, got, want);
    }
  }
  std::mt19937 rng(1);
  std::vector<float> vals = {0.f, -0.f, 65504.f, 65519.99f, 65520.f, 1e-8f, 2.98e-8f,
                             2.9802322e-8f, 5.96e-8f, 6.1e-5f, 6.097555e-5f, 1.f / 3, -2.5f,
                             INFINITY, -INFINITY, NAN, 3.4e38f, 1e-45f};
  for (int i = 0; i < 2000000; ++i) {
    std::uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    vals.push_back(f);
    vals.push_back(std::ldexp(float(rng() % 4096) / 4096.f + 1.f, int(rng() % 44) - 28));
  }
  for (float v : vals) {
    const _Float16 ref = _Float16(v);
    std::uint16_t want;
    std::memcpy(&want, &ref, 2);
    const std::uint16_t got = from_float<f16>(v).x;
    const bool nan = (want & 0x7c00) == 0x7c00 && (want & 0x3ff);
    if (got != want && !(nan && (got & 0x7c00) == 0x7c00 && (got & 0x3ff))) {
      if (bad++ < 10) std::printf("f16 encode %.9g: %04x vs %04x\n", v, got, want);
    }
    std::uint32_t u;
    std::memcpy(&u, &v, 4);
    if (std::isfinite(v) && std::fabs(v) < 3.38e38f) {  // below the last bf16 before inf
      const std::uint32_t lo = u & 0xffff0000u;
      const std::uint32_t w = nearest(v, lo, lo + 0x10000u, 0x10000u, true) >> 16;
      if (from_float<bf16>(v).x != w) {
        if (bad++ < 10) std::printf("bf16 encode %.9g: %04x vs %04x\n", v, from_float<bf16>(v).x, w);
      }
      const std::uint32_t tlo = u & 0xffffe000u;
      const std::uint32_t tw = nearest(v, tlo, tlo + 0x2000u, 0x2000u, false);
      if (to_tf32(v) != tw && std::isfinite(v) && std::fabs(v) < 3.4e38f) {
        if (bad++ < 10) std::printf("tf32 %.9g: %08x vs %08x\n", v, to_tf32(v), tw);
      }
    }
  }
  // the edges the sweep skips: round to infinity past the largest bfloat16, NaN stays NaN
  if (from_float<bf16>(3.4028235e38f).x != 0x7f80 || from_float<bf16>(-3.4e38f).x != 0xff80 ||
      from_float<bf16>(3.3895e38f).x != 0x7f7f || (from_float<bf16>(NAN).x & 0x7fff) <= 0x7f80 ||
      from_float<bf16>(INFINITY).x != 0x7f80) {
    std::printf("bf16 encode: edge cases\n");
    ++bad;
  }
  return bad;
}

// Bank group (16-byte slot of a 128-byte row of banks) of a chunk index.
int group(int chunk) { return chunk % 8; }

template <int RC, int ROWS>
int check_layout(const char* name, bool kmajor_ldmatrix) {
  int bad = 0;
  std::set<int> seen;
  for (int r = 0; r < ROWS; ++r)
    for (int c = 0; c < RC; ++c) seen.insert(swz<RC>(r, c));
  if (int(seen.size()) != RC * ROWS || *seen.begin() != 0 || *seen.rbegin() != RC * ROWS - 1) {
    std::printf("%s: not a permutation\n", name);
    ++bad;
  }
  // ldmatrix: 8 consecutive rows (from a multiple of 8), one logical chunk
  for (int r0 = 0; r0 < ROWS; r0 += 8)
    for (int c = 0; c < RC; ++c) {
      std::set<int> groups;
      for (int r = r0; r < r0 + 8; ++r) groups.insert(group(swz<RC>(r, c)));
      if (groups.size() != 8) {
        std::printf("%s: ldmatrix rows %d.. chunk %d hit %zu bank groups\n", name, r0, c,
                    groups.size());
        ++bad;
      }
    }
  (void)kmajor_ldmatrix;
  // cp.async / register stores: 8 consecutive threads write 8 consecutive logical chunks
  for (int e0 = 0; e0 < RC * ROWS; e0 += 8) {
    std::set<int> groups;
    for (int e = e0; e < e0 + 8; ++e) groups.insert(group(swz<RC>(e / RC, e % RC)));
    if (groups.size() != 8) {
      std::printf("%s: stores of chunks %d.. hit %zu bank groups\n", name, e0, groups.size());
      ++bad;
    }
  }
  return bad;
}

int swizzle() {
  // K-major tiles: 4 chunks (64 bytes of k) per row of m or n; MN-major: BM or BN values of
  // 2 or 4 bytes per row of k.
  return check_layout<4, 128>("K-major 128 rows", true) +
         check_layout<4, 64>("K-major 64 rows", true) +
         check_layout<16, 32>("MN-major 16-bit 128", false) +
         check_layout<8, 32>("MN-major 16-bit 64", false) +
         check_layout<32, 16>("MN-major float 128", false) +
         check_layout<16, 16>("MN-major float 64", false);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    int bad = -1;
    if (mode == "layout") bad = layout();
    if (mode == "convert") bad = convert();
    if (mode == "swizzle") bad = swizzle();
    if (bad < 0) {
      std::printf("unknown mode %s\n", mode.c_str());
      return 2;
    }
    std::printf("%s: %d mismatches\n", mode.c_str(), bad);
    return bad == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("error %s\n", e.what());
    return 1;
  }
}
