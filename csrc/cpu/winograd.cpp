// Winograd F(4x4, 3x3) convolution (Lavin & Gray 2016) on the packed GEMM of gemm.h.
//
// The tiles are processed in blocks (runs of whole GEMM panels), one per thread at a time:
// input transform of the block into V (36 x C x tiles), 36 GEMMs M = U^T V on one thread,
// output transform of M into y. The transforms are vectorised across all the tiles of a
// block: each input row is split into the six column phases of its tiles (column 4u + s of
// tile u in phase s), laid end to end for the block's rows, so that every stage is a
// linear combination of contiguous vectors; the output tiles are interleaved back the
// same way.
#include "winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gemm.h"

namespace convnet {

namespace {

int initial_mode() {
  const char* env = std::getenv("CONVNET_CONV_ALGO");
  if (!env) return kWinogradAuto;
  const std::string v(env);
  if (v == "winograd") return kWinogradAlways;
  if (v == "gemm") return kWinogradNever;
  return kWinogradAuto;
}

int g_mode = initial_mode();

// Input transform B^T d (one axis): six values of a 6-tap line -> six transformed values.
template <typename V>
inline void input_line(const V d[6], V r[6]) {
  const V a = d[4] - d[2] * 4, b = d[3] - d[1] * 4;  // shared by rows 1 and 2
  const V c = d[4] - d[2], e = (d[3] - d[1]) * 2;    // shared by rows 3 and 4
  r[0] = d[0] * 4 - d[2] * 5 + d[4];
  r[1] = a + b;
  r[2] = a - b;
  r[3] = c + e;
  r[4] = c - e;
  r[5] = d[1] * 4 - d[3] * 5 + d[5];
}

// Output transform A^T m (one axis): six sums -> four outputs.
template <typename V>
inline void output_line(const V m[6], V o[4]) {
  const V s12 = m[1] + m[2], d12 = m[1] - m[2];
  const V s34 = m[3] + m[4], d34 = m[3] - m[4];
  o[0] = m[0] + s12 + s34;
  o[1] = d12 + d34 * 2;
  o[2] = s12 + s34 * 4;
  o[3] = d12 + d34 * 8 + m[5];
}

// Transposed output transform A e (one axis), for the weight gradient: 4 values -> 6.
template <typename V>
inline void grad_line(const V e[4], V m[6]) {
  const V s02 = e[0] + e[2], s13 = e[1] + e[3];
  const V t02 = e[0] + e[2] * 4, t13 = (e[1] + e[3] * 4) * 2;
  m[0] = e[0];
  m[1] = s02 + s13;
  m[2] = s02 - s13;
  m[3] = t02 + t13;
  m[4] = t02 - t13;
  m[5] = e[3];
}

template <typename V>
inline V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V>
inline void store(void* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// The transformed filters as the GEMMs' A operand, already in the micro-kernel's panel
// order: U[xi][panel][c][MR] = (G w[k][c] G^T)[xi] for k = panel*MR + lane, zero past K.
// G = G'/24 with G' integer, so U is computed exactly-ish as G' w G'^T and scaled by 1/576
// once; MR filters at a time, which the compiler vectorises.
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

// A = one slice of the transformed filters, packed by filter_transform: packing is a copy.
// B = one slice of V, written by input_transform in the GEMM's panel order: a copy too.
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

template <typename T>
struct Plan {
  using V = typename Vec<T>::type;
  static constexpr int L = kVecBytes / int(sizeof(T));
  const ConvGeom& g;
  index_t tiles_h, tiles_w;  // tiles per image
  static constexpr int NR = TileGeneral<T>::NR;  // a multiple of L
  static_assert(NR % L == 0, "a vector of tiles must not straddle two GEMM panels");
  index_t ldv;               // row length of V, D and M: tiles per block + one vector of slack
  index_t tlen;              // length of one phase array, the same rounded up + one vector
  index_t vpan;              // tiles per block rounded up to whole GEMM panels

  explicit Plan(const ConvGeom& geom, index_t tiles_per_block) : g(geom) {
    tiles_h = ceil_div(g.P, 4);
    tiles_w = ceil_div(g.Q, 4);
    ldv = tiles_per_block + L;
    tlen = round_up(tiles_per_block, L) + L;
    vpan = round_up(tiles_per_block, NR);
  }

  // Calls f(image, tile row, first tile column, end tile column, slot in the block) for
  // each piece of a tile row in the block's tiles [t0, t1) (tiles numbered row-major over
  // the batch).
  template <typename F>
  void for_segments(index_t t0, index_t t1, F f) const {
    for (index_t t = t0; t < t1;) {
      const index_t row = t / tiles_w, u_lo = t % tiles_w;
      const index_t u_hi = std::min(tiles_w, u_lo + (t1 - t));
      f(row / tiles_h, row % tiles_h, u_lo, u_hi, t - t0);
      t += u_hi - u_lo;
    }
  }
  // Size of V for `depth` channels in either layout of input_transform.
  size_t v_size(index_t depth) const { return size_t(36) * depth * std::max(ldv, vpan); }
  index_t work_size() const { return 72 * tlen + 4 * (tiles_w + 2) + L; }

  // Column phases of tiles [u_lo, u_hi) of one input row h of a plane, at slot `off`:
  // dst[s][off + u - u_lo] = x[h][4u + s - pw] (zero outside), s = 0..5.
  void split_row(const T* plane, index_t h, index_t u_lo, index_t u_hi, index_t off, T* dst,
                 T* lin) const {
    const index_t nu = u_hi - u_lo;
    if (h < 0 || h >= g.H) {
      for (int s = 0; s < 6; ++s) std::fill(dst + s * tlen + off, dst + s * tlen + off + nu, T(0));
      return;
    }
    const index_t len = 4 * (tiles_w + 1);  // columns -pw .. -pw + len - 1
    const index_t e_lo = std::min(std::max<index_t>(g.pw, 0), len);
    const index_t e_hi = std::min(std::max<index_t>(g.W + g.pw, e_lo), len);
    const T* src = plane + h * g.W - g.pw;
    std::fill(lin, lin + e_lo, T(0));
    std::copy(src + e_lo, src + e_hi, lin + e_lo);
    std::fill(lin + e_hi, lin + len, T(0));
    T* __restrict p0 = dst + off;
    T* __restrict p1 = p0 + tlen;
    T* __restrict p2 = p1 + tlen;
    T* __restrict p3 = p2 + tlen;
    T* __restrict p4 = p3 + tlen;
    T* __restrict p5 = p4 + tlen;
    const T* __restrict src4 = lin + 4 * u_lo;
    for (index_t u = 0; u < nu; ++u) {
      p0[u] = src4[4 * u];
      p1[u] = src4[4 * u + 1];
      p2[u] = src4[4 * u + 2];
      p3[u] = src4[4 * u + 3];
    }
    for (index_t u = 0; u < nu; ++u) {
      p4[u] = src4[4 * u + 4];
      p5[u] = src4[4 * u + 5];
    }
  }

  // V[xi] for the tiles [t0, t1) (numbered row-major over the batch; slot t - t0 of the
  // block). Every stage runs on vectors of
  // tiles across the whole block, whatever the width of a row. Layout: `panels` writes
  // each slice in the GEMM's packed-B order [t / NR][c][t % NR] (a vector of L tiles never
  // straddles two panels), otherwise rows V[xi][c][t] of length ldv.
  void input_transform(const T* x, index_t t0, index_t t1, T* Vb, T* work, bool panels) const {
    T* ph = work;              // [6 input rows j][6 phases s][tlen]
    T* tr = ph + 36 * tlen;    // [6 transformed rows i][6 phases s][tlen]
    T* lin = tr + 36 * tlen;   // one input row with its zero padding
    const index_t nt = t1 - t0;
    for (index_t c = 0; c < g.C; ++c) {
      for_segments(t0, t1, [&](index_t n, index_t th, index_t u_lo, index_t u_hi, index_t off) {
        const T* plane = x + (n * g.C + c) * g.H * g.W;
        for (int j = 0; j < 6; ++j)
          split_row(plane, 4 * th - g.ph + j, u_lo, u_hi, off, ph + j * 6 * tlen, lin);
      });
      for (int s = 0; s < 6; ++s)  // along the rows of the tiles
        for (index_t t = 0; t < nt; t += L) {
          V d[6], r[6];
          for (int j = 0; j < 6; ++j) d[j] = load<V>(ph + (j * 6 + s) * tlen + t);
          input_line(d, r);
          for (int i = 0; i < 6; ++i) store(tr + (i * 6 + s) * tlen + t, r[i]);
        }
      const index_t slice = panels ? g.C * vpan : g.C * ldv;
      for (int i = 0; i < 6; ++i)  // along the columns
        for (index_t t = 0; t < nt; t += L) {
          V d[6], r[6];
          for (int s = 0; s < 6; ++s) d[s] = load<V>(tr + (i * 6 + s) * tlen + t);
          input_line(d, r);
          T* dst = Vb + (panels ? (t / NR) * g.C * NR + c * NR + t % NR : c * ldv + t);
          for (int j = 0; j < 6; ++j) store(dst + (i * 6 + j) * slice, r[j]);
        }
    }
  }

  // D[xi][k][t] = (A dy_tile A^T)[xi] for the tiles [t0, t1) (the weight gradient's
  // transform of the output gradient; zero past the output's edge).
  void grad_transform(const T* dy, index_t t0, index_t t1, T* Db, T* work) const {
    T* ph = work;              // [4 dy rows r][4 phases s][tlen]
    T* tr = ph + 16 * tlen;    // [6 transformed rows i][4 phases s][tlen]
    T* lin = tr + 24 * tlen;
    const index_t nt = t1 - t0, len = 4 * tiles_w;
    for (index_t k = 0; k < g.K; ++k) {
      for_segments(t0, t1, [&](index_t n, index_t th, index_t u_lo, index_t u_hi, index_t off) {
        const index_t nu = u_hi - u_lo;
        const T* plane = dy + (n * g.K + k) * g.P * g.Q;
        for (int r = 0; r < 4; ++r) {
          T* __restrict p0 = ph + r * 4 * tlen + off;
          T* __restrict p1 = p0 + tlen;
          T* __restrict p2 = p1 + tlen;
          T* __restrict p3 = p2 + tlen;
          const index_t p = 4 * th + r;
          if (p >= g.P) {
            for (int s = 0; s < 4; ++s) std::fill(p0 + s * tlen, p0 + s * tlen + nu, T(0));
            continue;
          }
          std::copy(plane + p * g.Q, plane + (p + 1) * g.Q, lin);
          std::fill(lin + g.Q, lin + len, T(0));
          const T* __restrict src4 = lin + 4 * u_lo;
          for (index_t u = 0; u < nu; ++u) {
            p0[u] = src4[4 * u];
            p1[u] = src4[4 * u + 1];
            p2[u] = src4[4 * u + 2];
            p3[u] = src4[4 * u + 3];
          }
        }
      });
      for (int s = 0; s < 4; ++s)
        for (index_t t = 0; t < nt; t += L) {
          V e[4], m[6];
          for (int r = 0; r < 4; ++r) e[r] = load<V>(ph + (r * 4 + s) * tlen + t);
          grad_line(e, m);
          for (int i = 0; i < 6; ++i) store(tr + (i * 4 + s) * tlen + t, m[i]);
        }
      T* dst = Db + k * ldv;
      for (int i = 0; i < 6; ++i)
        for (index_t t = 0; t < nt; t += L) {
          V e[4], m[6];
          for (int s = 0; s < 4; ++s) e[s] = load<V>(tr + (i * 4 + s) * tlen + t);
          grad_line(e, m);
          for (int j = 0; j < 6; ++j) store(dst + (i * 6 + j) * g.K * ldv + t, m[j]);
        }
    }
  }

  // The output tiles [t0, t1) from M[xi][k][t], plus the bias.
  void output_transform(const T* Mb, const T* b, index_t t0, index_t t1, T* y, T* work) const {
    T* ob = work;              // [4 output rows r][4 phases s][tlen]
    T* lin = ob + 16 * tlen;   // one output row, 4 * tiles_w values
    const index_t nt = t1 - t0;
    for (index_t k = 0; k < g.K; ++k) {
      const T bias = b ? b[k] : T(0);
      const T* src = Mb + k * ldv;
      for (index_t t = 0; t < nt; t += L) {
        V q[4][6];
        for (int j = 0; j < 6; ++j) {  // along the rows of the tile, column j
          V m[6], o[4];
          for (int i = 0; i < 6; ++i) m[i] = load<V>(src + (i * 6 + j) * g.K * ldv + t);
          output_line(m, o);
          for (int r = 0; r < 4; ++r) q[r][j] = o[r];
        }
        for (int r = 0; r < 4; ++r) {  // along the columns
          V o[4];
          output_line(q[r], o);
          for (int s = 0; s < 4; ++s) {
            // Fused epilogue: an activation would be applied to o[s] + bias here, in registers.
            store(ob + (r * 4 + s) * tlen + t, o[s] + bias);
          }
        }
      }
      for_segments(t0, t1, [&](index_t n, index_t th, index_t u_lo, index_t u_hi, index_t off) {
        const index_t nu = u_hi - u_lo, cols = std::min(4 * u_hi, g.Q) - 4 * u_lo;
        T* yk = y + (n * g.K + k) * g.P * g.Q;
        for (int r = 0; r < 4; ++r) {
          const index_t p = 4 * th + r;
          if (p >= g.P) break;
          const T* __restrict o0 = ob + (r * 4) * tlen + off;
          const T* __restrict o1 = o0 + tlen;
          const T* __restrict o2 = o1 + tlen;
          const T* __restrict o3 = o2 + tlen;
          for (index_t u = 0; u < nu; ++u) {
            lin[4 * u] = o0[u];
            lin[4 * u + 1] = o1[u];
            lin[4 * u + 2] = o2[u];
            lin[4 * u + 3] = o3[u];
          }
          std::copy(lin, lin + cols, yk + p * g.Q + 4 * u_lo);
        }
      });
    }
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

bool winograd_selected(const ConvGeom& g, std::size_t elem) {
  (void)elem;
  if (g_mode == kWinogradNever || !winograd_applies(g)) return false;
  if (g_mode == kWinogradAlways) return true;
  // Measured rule (one thread, CPU time, Winograd against the implicit GEMM): the 36 GEMMs
  // have K rows and depth C, and lose to the direct GEMM's depth 9*C when both are small
  // (C = K = 16: 3.2 ms against 2.6 at 32x16x32x32; C = 3: 4.2 against 3.5). The filter
  // transform (36*K*C values) has to be amortised over enough tiles (8x512x7x7, 32 tiles:
  // 53 ms against 21), and tiles mostly past the output's edge waste their work.
  const index_t tiles_h = ceil_div(g.P, 4), tiles_w = ceil_div(g.Q, 4);
  const index_t tiles = g.N * tiles_h * tiles_w;
  const bool edges_ok = 2 * g.P * g.Q >= 16 * tiles_h * tiles_w;
  return std::min(g.C, g.K) >= 16 && g.C + g.K >= 64 && tiles >= 128 && edges_ok;
}

bool winograd_selected_backward_data(const ConvGeom& g, std::size_t elem) {
  const ConvGeom t{g.N, g.K, g.P, g.Q, g.C, g.R, g.S, g.H, g.W, 1, 1,
                   g.dh * (g.R - 1) - g.ph, g.dw * (g.S - 1) - g.pw, g.dh, g.dw};
  return g.sh == 1 && g.sw == 1 && winograd_selected(t, elem);
}

// x (N,C,H,W), w (K,C,3,3), b (K) or null -> y (N,K,P,Q)
template <typename T>
void conv2d_forward_winograd(const ConvGeom& g, const T* x, const T* w, const T* b, T* y) {
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
      plan.output_transform(m_buf.data(), b, t0, t1, y, work_buf.data());
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
  return winograd_selected(g, elem);
}

template void conv2d_backward_weight_winograd<float>(const ConvGeom&, const float*, const float*,
                                                     float*);
template void conv2d_backward_weight_winograd<double>(const ConvGeom&, const double*,
                                                      const double*, double*);
template void conv2d_forward_winograd<float>(const ConvGeom&, const float*, const float*,
                                             const float*, float*);
template void conv2d_forward_winograd<double>(const ConvGeom&, const double*, const double*,
                                              const double*, double*);

}  // namespace convnet
