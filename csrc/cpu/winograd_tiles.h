// Winograd F(4x4, 3x3) tile transforms, vectorised across the tiles of a block (used by
// csrc/cpu/winograd.cpp only).
//
// Each input row is split into the six column phases of its tiles (column 4u + s of tile u
// in phase s), laid end to end for the block's tiles, so that every stage of a transform is
// a linear combination of contiguous vectors; the output tiles are interleaved back the
// same way.
#pragma once

#include <algorithm>
#include <cstring>

#include "epilogue.h"
#include "gemm.h"

namespace convnet {
namespace winograd_detail {

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

  // The output tiles [t0, t1) from M[xi][k][t], through the epilogue (bias, activation).
  void output_transform(const T* Mb, const Epilogue<T>& ep, index_t t0, index_t t1, T* y,
                        T* work) const {
    T* ob = work;              // [4 output rows r][4 phases s][tlen]
    T* lin = ob + 16 * tlen;   // one output row, 4 * tiles_w values
    const index_t nt = t1 - t0;
    for (index_t k = 0; k < g.K; ++k) {
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
          for (int s = 0; s < 4; ++s) store(ob + (r * 4 + s) * tlen + t, ep.vec(o[s], k, 0, L));
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

}  // namespace winograd_detail
}  // namespace convnet
