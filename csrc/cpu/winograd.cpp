// Winograd F(4x4, 3x3) convolution (Lavin & Gray 2016) on the packed GEMM of gemm.h.
//
// The tiles are processed in blocks (runs of whole GEMM panels), one per thread at a time:
// input transform of the block into V (36 x C x tiles), 36 GEMMs M = U^T V on one thread,
// output transform of M into y (winograd_tiles.h: the transforms, vectorised across the
// tiles of a block).
#include "winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gemm.h"
#include "winograd_tiles.h"

namespace convnet {

namespace {

using winograd_detail::Plan;

int initial_mode() {
  const char* env = std::getenv("CONVNET_CONV_ALGO");
  if (!env) return kWinogradAuto;
  const std::string v(env);
  if (v == "winograd") return kWinogradAlways;
  if (v == "gemm") return kWinogradNever;
  return kWinogradAuto;
}

int g_mode = initial_mode();

// The transformed filters as the GEMMs' A operand, already in the micro-kernel's panel
// order: U[xi][panel][c][MR] = (G w[k][c] G^T)[xi] for k = panel*MR + lane, zero past K.
// G = G'/24 with G' integer, so U is computed as G' w G'^T with integer coefficients and
// scaled by 1/576 once; MR filters at a time, which the compiler vectorises.
template <typename T, int MR>
void filter_transform(const ConvGeom& g, const T* w, T* U, int threads) {
  static const T Gi[6][3] = {{6, 0, 0}, {-4, -4, -4}, {-4, 4, -4}, {1, 2, 4}, {1, -2, 4}, {0, 0, 24}};
  const index_t panels = ceil_div(g.K, MR), slice = panels * g.C * MR;
  const T scale = T(1) / T(576);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (index_t ip = 0; ip < panels; ++ip)
    for (index_t c = 0; c < g.C; ++c) {
      T f[9][MR], t[6][3][MR];
      for (int lane = 0; lane < MR; ++lane) {
        const index_t k = ip * MR + lane;
        for (int e = 0; e < 9; ++e) f[e][lane] = k < g.K ? w[(k * g.C + c) * 9 + e] : T(0);
      }
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 3; ++j)
          for (int lane = 0; lane < MR; ++lane)
            t[i][j][lane] = Gi[i][0] * f[j][lane] + Gi[i][1] * f[3 + j][lane] +
                            Gi[i][2] * f[6 + j][lane];
      T* dst = U + (ip * g.C + c) * MR;
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j)
          for (int lane = 0; lane < MR; ++lane)
            dst[(i * 6 + j) * slice + lane] =
                (t[i][0][lane] * Gi[j][0] + t[i][1][lane] * Gi[j][1] + t[i][2][lane] * Gi[j][2]) *
                scale;
    }
}

// B = one slice of V, written by input_transform in the GEMM's panel order: packing is a
// copy.
template <typename T, int PNR>
struct PrepackedB {
  const T* v;  // [panel][depth][PNR]
  index_t depth, N;
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
  template <int NR>
  void pack(index_t k0, index_t kc, index_t jp, T* dst) const {
    static_assert(NR == PNR, "the GEMM runs with the tile V was laid out for");
    std::memcpy(dst, v + (jp * depth + k0) * NR, sizeof(T) * kc * NR);
  }
};

// A = one slice of the transformed filters, packed by filter_transform: a copy too.
template <typename T, int PMR>
struct PrepackedA {
  const T* u;  // [panel][depth][PMR]
  index_t depth;
  template <int MR>
  void pack(index_t i0, int rows, index_t k0, index_t kc, T* dst) const {
    static_assert(MR == PMR, "the GEMM runs with the tile the filters were packed for");
    (void)rows;
    std::memcpy(dst, u + ((i0 / MR) * depth + k0) * MR, sizeof(T) * kc * MR);
  }
};

// The blocks of tiles a convolution is cut into: `tiles` per block (the last one shorter).
// The forward pass and the data gradient take whole GEMM panels, as many as keep V and M
// (36 x (C + K) values a tile) within about 1 MiB, near L2: with 64 channels, blocks of
// 240 tiles spent a third of the time writing V to L3 and reading it back. The weight
// gradient sums over tiles, so its GEMM depth wants longer blocks.
struct Blocks {
  index_t total, tiles, count;
  Blocks(const ConvGeom& g, int threads, int nr, std::size_t elem, bool deep) {
    total = g.N * ceil_div(g.P, 4) * ceil_div(g.Q, 4);
    const index_t budget = index_t(1 << 20) / index_t(36 * (g.C + g.K) * elem);
    tiles = deep ? 4 * nr : std::min<index_t>(4 * nr, std::max<index_t>(nr, budget / nr * nr));
    while (tiles > nr && ceil_div(total, tiles) < 2 * threads) tiles -= nr;
    tiles = std::min(tiles, total);
    count = ceil_div(total, tiles);
  }
};

}  // namespace

void set_winograd_mode(int mode) {
  g_mode = mode < 0 ? kWinogradNever : (mode > 0 ? kWinogradAlways : kWinogradAuto);
}
int get_winograd_mode() { return g_mode; }

bool winograd_applies(const ConvGeom& g) {
  return g.R == 3 && g.S == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 && g.N > 0 &&
         g.P > 0 && g.Q > 0 && g.C > 0 && g.K > 0;
}

namespace {

// Measured rule (one thread, CPU time, Winograd against the implicit GEMM, ms): the 36
// GEMMs have K rows and depth C, and lose to the direct GEMM's depth 9*C when both are
// small (32x16x32x32, 16 filters: 3.0 against 2.6; 128x16x14x14: 3.9 against 2.6; VGG's
// C = 3 at 8x3x224x224: 65 against 51). The filter transform (36*K*C values) has to be
// amortised over enough tiles (8x512x7x7, 32 tiles: 20.4 against 20.3; 32x512x7x7, 128
// tiles: 49 against 97; 16x64x8x8, 64 tiles: 1.0 against 1.4), and tiles mostly past the
// output's edge waste their work. Wins: 32x32x16x16 2.1 against 5.1, ResNet 32x128x28x28
// 43-59 against 106-130.
bool winograd_rule(const ConvGeom& g) {
  const index_t tiles_h = ceil_div(g.P, 4), tiles_w = ceil_div(g.Q, 4);
  const index_t tiles = g.N * tiles_h * tiles_w;
  const bool edges_ok = 2 * g.P * g.Q >= 16 * tiles_h * tiles_w;
  return std::min(g.C, g.K) >= 16 && g.C + g.K >= 64 && tiles >= 64 && edges_ok;
}

// The flat stride-1 path of conv2d.cpp streams a padded image that stays in cache and
// beats the transforms until the channels are many and the planes large (2 threads, ms,
// flat / Winograd, forward and data gradient): ResNet-20's 128x32x14x14 3.5 / 4.0-4.7,
// 128x64x7x7 3.4-3.5 / 4.2-4.4, 128x32x28x28 12.5-11.5 / 16-17, 128x64x8x8 5.4 / 5.9-6.1,
// 64x64x14x14 5.9-6.3 / 5.9-7.3; Winograd wins at 32x64x28x28 12.7 / 10.4,
// 32x128x14x14 11-11.8 / 9.7-8.5 and above.
bool flat_preferred(const ConvGeom& g, std::size_t elem) {
  const index_t channels = std::min(g.C, g.K);
  return conv2d_flat_fits(g, elem) && channels < 128 &&
         !(channels >= 64 && g.P >= 16 && g.Q >= 16);
}

}  // namespace

bool winograd_selected(const ConvGeom& g, std::size_t elem) {
  if (g_mode == kWinogradNever || !winograd_applies(g)) return false;
  if (g_mode == kWinogradAlways) return true;
  return winograd_rule(g) && !flat_preferred(g, elem);
}

bool winograd_selected_backward_data(const ConvGeom& g, std::size_t elem) {
  const ConvGeom t{g.N, g.K, g.P, g.Q, g.C, g.R, g.S, g.H, g.W, 1, 1,
                   g.dh * (g.R - 1) - g.ph, g.dw * (g.S - 1) - g.pw, g.dh, g.dw};
  return g.sh == 1 && g.sw == 1 && winograd_selected(t, elem);
}

// x (N,C,H,W), w (K,C,3,3) -> y (N,K,P,Q) = ep(conv(x, w))
template <typename T>
void conv2d_forward_winograd(const ConvGeom& g, const T* x, const T* w, const Epilogue<T>& ep,
                             T* y) {
  FlushToZero ftz;
  const int threads = threads_for(2.0 * g.N * g.K * g.crs() * g.P * g.Q, 1 << 18);
  const Blocks bl(g, threads, TileGeneral<T>::NR, sizeof(T), false);
  const Plan<T> plan(g, bl.tiles);
  using Sh = TileGeneral<T>;
  const index_t u_slice = round_up(g.K, Sh::MR) * g.C;
  static thread_local Scratch<T> U;  // kept across calls: no page faults on every call
  U.resize(static_cast<size_t>(36) * u_slice);
  // Inside the parallel regions `U` would name each worker's own (empty) buffer: a pointer.
  const T* const u = U.data();
  filter_transform<T, Sh::MR>(g, w, U.data(), threads);
  const int team = static_cast<int>(std::min<index_t>(threads, bl.count));
#pragma omp parallel num_threads(team) if (team > 1)
  {
    FlushToZero ftz_worker;
    static thread_local Scratch<T> v_buf, m_buf, work_buf;
    const size_t v_size = plan.v_size(g.C);
    const size_t m_size = static_cast<size_t>(36) * g.K * plan.ldv;
    const size_t w_size = plan.work_size();
    v_buf.resize(v_size);
    m_buf.resize(m_size);
    work_buf.resize(w_size);
    // The slack past each row is read by full vectors (never used): keep it finite.
    std::fill(v_buf.data(), v_buf.data() + v_size, T(0));
    std::fill(m_buf.data(), m_buf.data() + m_size, T(0));
    std::fill(work_buf.data(), work_buf.data() + w_size, T(0));
#pragma omp for schedule(dynamic, 1)
    for (index_t blk = 0; blk < bl.count; ++blk) {
      const index_t t0 = blk * bl.tiles, t1 = std::min(bl.total, t0 + bl.tiles), nt = t1 - t0;
      plan.input_transform(x, t0, t1, v_buf.data(), work_buf.data(), true);
      for (int xi = 0; xi < 36; ++xi)
        gemm_packed<T, Sh>(g.K, g.C, T(1), PrepackedA<T, Sh::MR>{u + xi * u_slice, g.C},
                     PrepackedB<T, Sh::NR>{v_buf.data() + xi * g.C * plan.vpan, g.C, nt}, T(0),
                     m_buf.data() + xi * g.K * plan.ldv, plan.ldv, 1);
      plan.output_transform(m_buf.data(), ep, t0, t1, y, work_buf.data());
    }
  }
}

// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,3,3)
// dW[k][c] = G^T Z[k][c] G with Z[xi] = sum over tiles of D[xi] V[xi]^T: per block, 36
// GEMMs (K x tiles times tiles x C) accumulate into each thread's own Z.
template <typename T>
void conv2d_backward_weight_winograd(const ConvGeom& g, const T* dy, const T* x, T* dw) {
  FlushToZero ftz;
  const int threads = threads_for(2.0 * g.N * g.K * g.crs() * g.P * g.Q, 1 << 18);
  const Blocks bl(g, threads, TileGeneral<T>::NR, sizeof(T), true);
  const Plan<T> plan(g, bl.tiles);
  const int team = static_cast<int>(std::min<index_t>(threads, bl.count));
  const size_t z_size = static_cast<size_t>(36) * g.K * g.C;
  static thread_local Scratch<T> z_all;
  z_all.resize(z_size * team);
  T* const z_sums = z_all.data();  // the workers' `z_all` would be their own, empty ones
  std::fill(z_sums, z_sums + z_size * team, T(0));
#pragma omp parallel num_threads(team) if (team > 1)
  {
    FlushToZero ftz_worker;
    static thread_local Scratch<T> v_buf, d_buf, work_buf;
    const size_t v_size = plan.v_size(g.C);
    const size_t d_size = static_cast<size_t>(36) * g.K * plan.ldv;
    const size_t w_size = plan.work_size();
    v_buf.resize(v_size);
    d_buf.resize(d_size);
    work_buf.resize(w_size);
    std::fill(v_buf.data(), v_buf.data() + v_size, T(0));
    std::fill(d_buf.data(), d_buf.data() + d_size, T(0));
    std::fill(work_buf.data(), work_buf.data() + w_size, T(0));
    T* z = z_sums + z_size * thread_id();
    // Static: each thread sums its own blocks into its own Z, in a fixed order.
#pragma omp for schedule(static)
    for (index_t blk = 0; blk < bl.count; ++blk) {
      const index_t t0 = blk * bl.tiles, t1 = std::min(bl.total, t0 + bl.tiles), nt = t1 - t0;
      plan.input_transform(x, t0, t1, v_buf.data(), work_buf.data(), false);
      plan.grad_transform(dy, t0, t1, d_buf.data(), work_buf.data());
      for (int xi = 0; xi < 36; ++xi)
        gemm_auto<T>(g.K, nt, T(1), DenseA<T>{d_buf.data() + xi * g.K * plan.ldv, plan.ldv, false},
                     DenseB<T>{v_buf.data() + xi * g.C * plan.ldv, plan.ldv, true, g.C}, T(1),
                     z + xi * g.K * g.C, g.C, 1);
    }
  }
  // Threads' sums added, then dW = G^T Z G, in double (the 1/6 and 1/24 of G are inexact).
  static const double G[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                 {-1.0 / 6, 1.0 / 6, -1.0 / 6}, {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                 {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  const index_t KC = g.K * g.C;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (index_t kc = 0; kc < KC; ++kc) {
    double zt[36], t[3][6];
    for (int xi = 0; xi < 36; ++xi) {
      double sum = 0;
      for (int p = 0; p < team; ++p) sum += z_sums[z_size * p + xi * KC + kc];
      zt[xi] = sum;
    }
    for (int r = 0; r < 3; ++r)
      for (int j = 0; j < 6; ++j) {
        double acc = 0;
        for (int i = 0; i < 6; ++i) acc += G[i][r] * zt[i * 6 + j];
        t[r][j] = acc;
      }
    for (int r = 0; r < 3; ++r)
      for (int s = 0; s < 3; ++s) {
        double acc = 0;
        for (int j = 0; j < 6; ++j) acc += t[r][j] * G[j][s];
        dw[kc * 9 + r * 3 + s] = static_cast<T>(acc);
      }
  }
}

bool winograd_selected_backward_weight(const ConvGeom& g, std::size_t elem) {
  // Its GEMMs are K x C wide: with C = 16 a third of each 48-column panel is used, and it
  // loses (32x16x32x32, 64 filters: 13.8 ms against 11.2; with C = 64, K = 16: 13.8
  // against 18.5).
  if (g_mode == kWinogradNever || !winograd_applies(g)) return false;
  if (g_mode == kWinogradAlways) return true;
  // The flat path's dot products (conv2d.cpp) win below 64 channels and on planes of 12 or
  // more below 128 (2 threads, best of 7, ms, flat / Winograd: 128x32x14x14 4.6 / 11.2,
  // 128x32x28x28 14.2 / 25.9, 64x64x14x14 7.8 / 10.4); Winograd keeps 128x64x7x7 (6.5 /
  // 5.4), 128x64x8x8 (7.0 / 6.5) and 128 channels (32x128x14x14 23 / 14.8).
  const index_t channels = std::min(g.C, g.K);
  const bool flat = conv2d_flat_weight_fits(g, elem) &&
                    (channels < 64 || (channels < 128 && g.P >= 12 && g.Q >= 12));
  return winograd_rule(g) && g.C >= 32 && !flat;
}

template void conv2d_backward_weight_winograd<float>(const ConvGeom&, const float*, const float*,
                                                     float*);
template void conv2d_backward_weight_winograd<double>(const ConvGeom&, const double*,
                                                      const double*, double*);
template void conv2d_forward_winograd<float>(const ConvGeom&, const float*, const float*,
                                             const Epilogue<float>&, float*);
template void conv2d_forward_winograd<double>(const ConvGeom&, const double*, const double*,
                                              const Epilogue<double>&, double*);

}  // namespace convnet
