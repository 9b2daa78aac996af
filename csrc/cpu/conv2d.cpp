// 2-D convolution (cross-correlation, NCHW) on the packed GEMM.
//
// Forward and weight gradient are implicit GEMMs over the whole batch: the im2col matrix is
// never built, its values are gathered straight into the GEMM's packed panels, so the only
// workspace is the GEMM's own packing buffers. The data gradient is the forward
// convolution of dy with flipped filters for stride 1, and a GEMM into a column buffer of a
// few output rows plus col2im for larger strides.
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "epilogue.h"
#include "gemm.h"
#include "winograd.h"
#include "gemm_bf16.h"

namespace convnet {

namespace {

// Offsets of row crs = (c*R + r)*S + s of the im2col matrix, decoded once per call.
struct ColIndex {
  index_t c, dr, ds;  // channel, r*dh, s*dw
};

std::vector<ColIndex> col_index(const ConvGeom& g) {
  std::vector<ColIndex> t(g.crs());
  for (index_t c = 0; c < g.C; ++c)
    for (index_t r = 0; r < g.R; ++r)
      for (index_t s = 0; s < g.S; ++s) t[(c * g.R + r) * g.S + s] = {c, r * g.dh, s * g.dw};
  return t;
}

// Copies `len` input values of row h, starting at column w0 with step sw, zero outside.
template <typename T>
inline void gather_row(const T* plane, const ConvGeom& g, index_t h, index_t w0, index_t len,
                       T* out, index_t out_step) {
  if (h < 0 || h >= g.H) {
    for (index_t t = 0; t < len; ++t) out[t * out_step] = T(0);
    return;
  }
  const T* row = plane + h * g.W;
  if (g.sw == 1) {
    // Zero left margin, contiguous middle, zero right margin. An inline loop, not memcpy:
    // segments are often a handful of values and a library call would dominate.
    const index_t lo = std::min(std::max<index_t>(-w0, 0), len);
    const index_t hi = std::max(std::min<index_t>(g.W - w0, len), lo);
    for (index_t t = 0; t < lo; ++t) out[t * out_step] = T(0);
    const T* src = row + w0;
    if (out_step == 1) {
#pragma omp simd
      for (index_t t = lo; t < hi; ++t) out[t] = src[t];
    } else {
      for (index_t t = lo; t < hi; ++t) out[t * out_step] = src[t];
    }
    for (index_t t = hi; t < len; ++t) out[t * out_step] = T(0);
    return;
  }
  for (index_t t = 0; t < len; ++t) {
    const index_t w = w0 + t * g.sw;
    out[t * out_step] = (w >= 0 && w < g.W) ? row[w] : T(0);
  }
}

// B = im2col of a batch: rows c*R*S + r*S + s, columns (image, output pixel).
// Per-image panels (the default) never straddle two images, so panel jp's C tile is
// row-major at out + n*out_image + pixel with ldc = P*Q and the GEMM writes the
// (N, K, P*Q) output directly. Dense panels (images with few output pixels, where
// per-image panels would be mostly padding) run across images into a (K, N*P*Q) buffer.
template <typename T>
struct Im2colB {
  const T* x;  // (N,C,H,W)
  const ConvGeom* g;
  const ColIndex* idx;
  index_t out_image;  // elements per image of the output (per-image panels)
  bool dense;
  template <int NR>
  index_t per_image() const {
    return ceil_div(g->P * g->Q, NR);
  }
  template <int NR>
  index_t panels() const {
    return dense ? ceil_div(g->N * g->P * g->Q, NR) : g->N * per_image<NR>();
  }
  template <int NR>
  int cols(index_t jp) const {
    const index_t left = dense ? g->N * g->P * g->Q - jp * NR
                               : g->P * g->Q - (jp % per_image<NR>()) * NR;
    return static_cast<int>(std::min<index_t>(NR, left));
  }
  template <int NR>
  index_t c_offset(index_t jp) const {
    if (dense) return jp * NR;
    const index_t ppi = per_image<NR>();
    return (jp / ppi) * out_image + (jp % ppi) * NR;
  }
  template <int NR>
  void pack(index_t k0, index_t kc, index_t jp, T* dst) const {
    const ConvGeom& G = *g;
    const index_t plane = G.P * G.Q;
    index_t n, pix;
    if (dense) {
      n = jp * NR / plane;
      pix = jp * NR % plane;
    } else {
      n = jp / per_image<NR>();
      pix = (jp % per_image<NR>()) * NR;
    }
    const int nr = cols<NR>(jp);
    int j = 0;
    while (j < nr) {  // one segment per (image, output row) the panel touches
      if (pix == plane) {
        ++n;
        pix = 0;
      }
      const T* xn = x + n * G.C * G.H * G.W;
      const index_t p = pix / G.Q, q = pix % G.Q;
      const index_t seg = std::min<index_t>(nr - j, G.Q - q);
      for (index_t k = 0; k < kc; ++k) {
        const ColIndex& ci = idx[k0 + k];
        gather_row(xn + ci.c * G.H * G.W, G, p * G.sh - G.ph + ci.dr, q * G.sw - G.pw + ci.ds,
                   seg, dst + k * NR + j, 1);
      }
      j += static_cast<int>(seg);
      pix += seg;
    }
    if (nr < NR)
      for (index_t k = 0; k < kc; ++k) std::fill(dst + k * NR + nr, dst + k * NR + NR, T(0));
  }
};

// B = the output gradient as K rows x (image, output pixel) columns: `count` columns from
// flat column `start` (image start / plane, pixel start % plane) on, across images.
template <typename T>
struct BatchColsB {
  const T* dy;  // (images,K,plane)
  index_t K, plane, images, start, count;
  template <int NR>
  index_t panels() const {
    return ceil_div(count, NR);
  }
  template <int NR>
  int cols(index_t jp) const {
    return static_cast<int>(std::min<index_t>(NR, count - jp * NR));
  }
  template <int NR>
  index_t c_offset(index_t jp) const {
    return jp * NR;
  }
  template <int NR>
  void pack(index_t k0, index_t kc, index_t jp, T* dst) const {
    const int nr = cols<NR>(jp);
    for (index_t k = 0; k < kc; ++k) {
      T* out = dst + k * NR;
      index_t col = start + jp * NR;
      int j = 0;
      while (j < nr) {
        const index_t n = col / plane, pix = col % plane;
        const index_t seg = std::min<index_t>(nr - j, plane - pix);
        const T* src = dy + (n * K + k0 + k) * plane + pix;
        for (index_t t = 0; t < seg; ++t) out[j + t] = src[t];
        j += static_cast<int>(seg);
        col += seg;
      }
      for (; j < NR; ++j) out[j] = T(0);
    }
  }
};

// B = im2col^T of a batch: rows (image, output pixel), columns c*R*S + r*S + s.
template <typename T>
struct Im2colTransB {
  const T* x;  // (images,C,H,W)
  const ConvGeom* g;
  const ColIndex* idx;
  template <int NR>
  index_t panels() const {
    return ceil_div(g->crs(), NR);
  }
  template <int NR>
  int cols(index_t jp) const {
    return static_cast<int>(std::min<index_t>(NR, g->crs() - jp * NR));
  }
  template <int NR>
  index_t c_offset(index_t jp) const {
    return jp * NR;
  }
  template <int NR>
  void pack(index_t k0, index_t kc, index_t jp, T* dst) const {
    const ConvGeom& G = *g;
    const index_t plane = G.P * G.Q, j0 = jp * NR;
    const int nr = cols<NR>(jp);
    for (int j = 0; j < nr; ++j) {
      const ColIndex& ci = idx[j0 + j];
      index_t depth = k0, k = 0;
      while (k < kc) {  // one segment per (image, output row)
        const index_t n = depth / plane, pix = depth % plane;
        const index_t p = pix / G.Q, q = pix % G.Q;
        const index_t seg = std::min<index_t>(kc - k, G.Q - q);
        gather_row(x + (n * G.C + ci.c) * G.H * G.W, G, p * G.sh - G.ph + ci.dr,
                   q * G.sw - G.pw + ci.ds, seg, dst + k * NR + j, NR);
        k += seg;
        depth += seg;
      }
    }
    for (int j = nr; j < NR; ++j)
      for (index_t k = 0; k < kc; ++k) dst[k * NR + j] = T(0);
  }
};

// A = the output gradient of a batch as K rows x (image, output pixel) depth.
template <typename T>
struct BatchRowsA {
  const T* dy;  // (images,K,P*Q)
  index_t K, plane;
  template <int MR>
  void pack(index_t i0, int rows, index_t k0, index_t kc, T* dst) const {
    for (int i = 0; i < rows; ++i) {
      index_t depth = k0, k = 0;
      while (k < kc) {
        const index_t n = depth / plane, pix = depth % plane;
        const index_t seg = std::min<index_t>(kc - k, plane - pix);
        const T* src = dy + (n * K + i0 + i) * plane + pix;
        for (index_t t = 0; t < seg; ++t) dst[(k + t) * MR + i] = src[t];
        k += seg;
        depth += seg;
      }
    }
    for (int i = rows; i < MR; ++i)
      for (index_t k = 0; k < kc; ++k) dst[k * MR + i] = T(0);
  }
};

double conv_flops(const ConvGeom& g) { return 2.0 * g.N * g.K * g.crs() * g.P * g.Q; }

// One window covering the whole unpadded input: the convolution is a fully connected layer
// (LeNet's C5, 16x5x5 -> 120), and its three passes are plain GEMMs on the NCHW data as it
// is, x as (N, C*R*S) and y as (N, K). The implicit-GEMM paths would pad every image's one
// output pixel to a whole register tile, and the flipped data gradient would run a 5x5
// convolution over 4 pixels of padding for each real one.
bool fully_connected(const ConvGeom& g) {
  return g.P == 1 && g.Q == 1 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1 &&
         g.R == g.H && g.S == g.W;
}

}  // namespace

namespace {

// The im2col matrix of one image as rows of `width` (>= P*Q) values, built by copies that
// are the same for every image: listed once (source offset in the image, destination in
// the buffer, length). Padding positions are never written, so a zeroed buffer keeps them.
struct ColCopy {
  index_t src, dst, len;
};

std::vector<ColCopy> im2col_plan(const ConvGeom& g, const std::vector<ColIndex>& idx,
                                 index_t width) {
  std::vector<ColCopy> plan;
  plan.reserve(static_cast<size_t>(g.crs()) * g.P);
  for (index_t j = 0; j < g.crs(); ++j) {
    const ColIndex& ci = idx[j];
    const index_t w0 = -g.pw + ci.ds;  // input column of output column 0
    const index_t lo = w0 >= 0 ? 0 : ceil_div(-w0, g.sw);
    const index_t hi = std::min<index_t>(g.Q, w0 >= g.W ? 0 : ceil_div(g.W - w0, g.sw));
    for (index_t p = 0; p < g.P && lo < hi; ++p) {
      const index_t h = p * g.sh - g.ph + ci.dr;
      if (h < 0 || h >= g.H) continue;
      plan.push_back({(ci.c * g.H + h) * g.W + w0 + lo * g.sw, j * width + p * g.Q + lo, hi - lo});
    }
  }
  return plan;
}

template <typename T>
void im2col_run(const std::vector<ColCopy>& plan, const T* image, index_t sw, T* col) {
  if (sw == 1) {
    for (const ColCopy& cp : plan) {
      const T* src = image + cp.src;
      T* dst = col + cp.dst;
#pragma omp simd
      for (index_t e = 0; e < cp.len; ++e) dst[e] = src[e];
    }
  } else {
    for (const ColCopy& cp : plan)
      for (index_t e = 0; e < cp.len; ++e) col[cp.dst + e] = image[cp.src + e * sw];
  }
}

// Forward pass for layers with few filters: per image, im2col into a cached buffer, then a
// register-tiled product that broadcasts the filters and streams the column rows as they
// are (no packing). Tile: BK filters x NV vectors of output pixels.
template <typename T, int BK, int NV>
void conv2d_forward_direct(const ConvGeom& g, const T* x, const T* w, const Epilogue<T>& ep,
                           T* y, const std::vector<ColIndex>& idx, int team) {
  using V = typename Vec<T>::type;
  constexpr int L = kVecBytes / int(sizeof(T));
  constexpr int NB = NV * L;
  const index_t plane = g.P * g.Q, width = round_up(plane, NB), crs = g.crs();
  const index_t kp = round_up(g.K, BK);
  std::vector<T> wp(static_cast<size_t>(kp) * crs, T(0));  // filters padded to the tile
  std::copy(w, w + g.K * crs, wp.begin());
  const std::vector<ColCopy> plan = im2col_plan(g, idx, width);
#pragma omp parallel num_threads(team)
  {
    FlushToZero ftz_worker;
    static thread_local Scratch<T> col_buf;
    col_buf.resize(crs * width);
    T* col = col_buf.data();
    std::fill(col, col + crs * width, T(0));
#pragma omp for schedule(static)
    for (index_t n = 0; n < g.N; ++n) {
      im2col_run(plan, x + n * g.C * g.H * g.W, g.sw, col);
      T* yn = y + n * g.K * plane;
      for (index_t kb = 0; kb < kp; kb += BK)
        for (index_t d = 0; d < width; d += NB) {
          V acc[BK][NV];
#pragma GCC unroll 8
          for (int i = 0; i < BK; ++i)
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) acc[i][j] = V{};
          const T* wk = wp.data() + kb * crs;
          for (index_t c = 0; c < crs; ++c) {
            V bv[NV];
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j)
              bv[j] = *reinterpret_cast<const V*>(col + c * width + d + j * L);
#pragma GCC unroll 8
            for (int i = 0; i < BK; ++i) {
              const V a = wk[i * crs + c] - V{};
#pragma GCC unroll 4
              for (int j = 0; j < NV; ++j) acc[i][j] += a * bv[j];
            }
          }
          const index_t cols = std::min<index_t>(NB, plane - d);
          for (int i = 0; i < BK && kb + i < g.K; ++i) {
            T* out = yn + (kb + i) * plane + d;
#pragma GCC unroll 4
            for (int j = 0; j < NV; ++j) {
              if (j * L >= cols) break;
              const int lanes = static_cast<int>(std::min<index_t>(L, cols - j * L));
              const V r = ep.vec(acc[i][j], kb + i, d + j * L, lanes);
              std::memcpy(out + j * L, &r, sizeof(T) * lanes);
            }
          }
        }
    }
  }
}

// The flat layout of the image for the flat paths: each channel zero-padded and split into
// sh*sw phase planes of Hp x Wp, plane (a, b) holding the padded pixels (u*sh + a, v*sw + b),
// so that output position i = p*Wp + q reads tap (c, r, s) at one offset from i in one
// plane: a vector of consecutive outputs is a contiguous load, strided or not. With stride
// 1 there is one plane, the padded image itself. The Wp - Q positions per row past the
// output (and the rows past P) are computed and dropped.
struct FlatLayout {
  index_t Hp, Wp, plane;  // one phase plane
  index_t phases;         // sh*sw planes per channel
  index_t reach;          // the furthest tap's offset inside a plane
};

FlatLayout flat_layout(const ConvGeom& g) {
  FlatLayout f;
  f.Hp = g.P + (g.R - 1) * g.dh / g.sh;
  f.Wp = g.Q + (g.S - 1) * g.dw / g.sw;
  f.plane = f.Hp * f.Wp;
  f.phases = g.sh * g.sw;
  f.reach = (g.R - 1) * g.dh / g.sh * f.Wp + (g.S - 1) * g.dw / g.sw;
  return f;
}

// Where tap (c, r, s) starts, with `stride` between the phase planes of one channel and
// the next phase (images of a chunk lie end to end inside each); `count` >= C*R*S entries,
// the padding taps past C*R*S reading plane 0 (their products are dropped).
std::vector<index_t> flat_offsets(const ConvGeom& g, const FlatLayout& f, index_t stride,
                                  index_t count) {
  std::vector<index_t> off(count, 0);
  for (index_t c = 0; c < g.C; ++c)
    for (index_t r = 0; r < g.R; ++r)
      for (index_t t = 0; t < g.S; ++t) {
        const index_t er = r * g.dh, es = t * g.dw;
        const index_t phase = c * f.phases + er % g.sh * g.sw + es % g.sw;
        off[(c * g.R + r) * g.S + t] = phase * stride + er / g.sh * f.Wp + es / g.sw;
      }
  return off;
}

// Copies image xn (C,H,W) into its phase planes, plane k of it at dst + k*stride. Only the
// positions that hold input pixels are written: the zeros around them stay.
template <typename T>
void flat_copy_image(const ConvGeom& g, const FlatLayout& f, const T* xn, T* dst,
                     index_t stride) {
  for (index_t c = 0; c < g.C; ++c)
    for (index_t a = 0; a < g.sh; ++a)
      for (index_t b = 0; b < g.sw; ++b) {
        T* plane = dst + (c * f.phases + a * g.sw + b) * stride;
        // columns v with w = v*sw + b - pw in [0, W)
        const index_t v0 = g.pw > b ? ceil_div(g.pw - b, g.sw) : 0;
        const index_t v1 = std::min<index_t>(f.Wp, ceil_div(g.W + g.pw - b, g.sw));
        if (v0 >= v1) continue;
        for (index_t u = 0; u < f.Hp; ++u) {
          const index_t h = u * g.sh + a - g.ph;
          if (h < 0 || h >= g.H) continue;
          const T* src = xn + (c * g.H + h) * g.W + v0 * g.sw + b - g.pw;
          T* out = plane + u * f.Wp + v0;
          if (g.sw == 1)
            std::memcpy(out, src, sizeof(T) * (v1 - v0));
          else
            for (index_t v = 0; v < v1 - v0; ++v) out[v] = src[v * g.sw];
        }
      }
}

// Images per chunk of the flat forward pass: on small planes one image leaves most of its
// last vectors of outputs empty (ResNet's 7x7 planes: 49 outputs in 96 positions), so
// images go end to end. Cost model: positions per thread; ties go to the smaller chunk.
index_t flat_chunk(index_t images, index_t plane, index_t span, std::size_t image_bytes,
                   index_t block, int team) {
  const std::size_t budget = std::size_t(256) << 10;
  const index_t cap = std::max<index_t>(1, index_t(budget / std::max<std::size_t>(1, image_bytes)));
  index_t best = 1, best_cost = -1;
  for (index_t b = 1; b <= std::min(cap, images); ++b) {
    const index_t rounds = ceil_div(ceil_div(images, b), index_t(team));
    const index_t cost = rounds * round_up((b - 1) * plane + span, block);
    if (best_cost < 0 || cost < best_cost) best = b, best_cost = cost;
  }
  return best;
}

// This thread's buffers of the flat paths: the padded images, zeroed (their borders stay
// zero for every image), and the output rows.
template <typename T>
std::pair<T*, T*> flat_buffers(index_t pad_len, index_t rows_len) {
  static thread_local Scratch<T> pad_buf, out_buf;
  pad_buf.resize(pad_len);
  out_buf.resize(rows_len);
  std::fill(pad_buf.data(), pad_buf.data() + pad_len, T(0));
  return {pad_buf.data(), out_buf.data()};
}

// The register-tiled product of the flat paths: rows [0, BK) of ybuf (out_len apart) get,
// over positions [0, len), the products of BK filter rows (wk, w_stride apart) with the
// taps at off[0..taps) from base, each vector through finish(vector, filter row) first.
template <typename T, int BK, int NV, typename Finish>
void flat_rows(const T* base, const index_t* off, index_t taps, const T* wk, index_t w_stride,
               index_t len, T* ybuf, index_t out_len, Finish finish) {
  using V = typename Vec<T>::type;
  constexpr int L = kVecBytes / int(sizeof(T));
  constexpr int NB = NV * L;
  for (index_t d = 0; d < len; d += NB) {
    V acc[BK][NV];
#pragma GCC unroll 8
    for (int i = 0; i < BK; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = V{};
    for (index_t t = 0; t < taps; ++t) {
      const T* src = base + d + off[t];
      V bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) std::memcpy(&bv[j], src + j * L, sizeof(V));
#pragma GCC unroll 8
      for (int i = 0; i < BK; ++i) {
        const V a = wk[i * w_stride + t] - V{};
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] += a * bv[j];
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < BK; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) {
        const V r = finish(acc[i][j], i);
        std::memcpy(ybuf + i * out_len + d + j * L, &r, sizeof(V));
      }
  }
}

// Forward pass on the flat layout, without an im2col matrix: for a chunk of images, the
// register-tiled product streams the phase planes themselves (BK filters x NV vectors of
// output positions), through a buffer of BK output rows. For LeNet's layers (rows of 10-32
// values) building the im2col matrix cost more than its multiply-adds.
template <typename T, int BK, int NV>
void conv2d_forward_flat(const ConvGeom& g, const T* x, const T* w, const Epilogue<T>& ep,
                         T* y, int team) {
  using V = typename Vec<T>::type;
  constexpr int L = kVecBytes / int(sizeof(T));
  constexpr int NB = NV * L;
  const FlatLayout f = flat_layout(g);
  const index_t chunk = flat_chunk(g.N, f.plane, g.P * f.Wp, g.C * f.phases * f.plane * sizeof(T),
                                   NB, team);
  const index_t stride = chunk * f.plane, crs = g.crs();
  const index_t out_len = round_up((chunk - 1) * f.plane + g.P * f.Wp, NB);
  // the last vector of dropped positions reads up to `reach` past the last plane
  const index_t buf_len = (g.C * f.phases - 1) * stride + out_len + f.reach;
  const index_t kp = round_up(g.K, BK);
  std::vector<T> wp(static_cast<size_t>(kp) * crs, T(0));  // filters padded to the tile
  std::copy(w, w + g.K * crs, wp.begin());
  const std::vector<index_t> off = flat_offsets(g, f, stride, crs);
  const index_t chunks = ceil_div(g.N, chunk);
#pragma omp parallel num_threads(team)
  {
    FlushToZero ftz_worker;
    const auto [xpad, ybuf] = flat_buffers<T>(buf_len, BK * out_len);
#pragma omp for schedule(static)
    for (index_t ci = 0; ci < chunks; ++ci) {
      const index_t n0 = ci * chunk, nb = std::min(chunk, g.N - n0);
      // a short last chunk leaves earlier images in its tail: their outputs are dropped
      for (index_t j = 0; j < nb; ++j)
        flat_copy_image(g, f, x + (n0 + j) * g.C * g.H * g.W, xpad + j * f.plane, stride);
      for (index_t kb = 0; kb < kp; kb += BK) {
        // rows past K are padding (never stored): their bias would be read past b
        flat_rows<T, BK, NV>(xpad, off.data(), crs, wp.data() + kb * crs, crs, out_len, ybuf,
                             out_len, [&](V v, int i) {
                               return kb + i < g.K ? ep.vec(v, kb + i, 0, L) : v;
                             });
        for (index_t j = 0; j < nb; ++j) {
          T* yn = y + (n0 + j) * g.K * g.P * g.Q;
          for (int i = 0; i < BK && kb + i < g.K; ++i)
            for (index_t p = 0; p < g.P; ++p)
              std::memcpy(yn + ((kb + i) * g.P + p) * g.Q,
                          ybuf + i * out_len + j * f.plane + p * f.Wp, sizeof(T) * g.Q);
        }
      }
    }
  }
}

}  // namespace

// A padded image that stays in cache and rows that are at least half output: measured on
// LeNet (128 images, 2 threads' worth of work on one), C1 forward 1.4x, C3 forward 1.6-2x
// and C3's data gradient (a flipped convolution) 2-3x faster than im2col + the direct
// product; on ResNet-20's 32 and 64 channels (128x32x14x14, 128x64x7x7) 3.5 ms against the
// implicit GEMM's 14 and 8 (2 threads). Up to 128 filters, each block of 8 streams the
// padded image again from cache. Strided, against the implicit GEMM (2 threads, best of 7
// interleaved, ms): 128x16x32x32 -> 32@3x3/2 5.2 / 2.9, 128x32x16x16 -> 64 4.5 / 2.6,
// 32x64x56x56 -> 128 35 / 23, DCGAN's 64x64x14x14 -> 128@4x4/2 7.4 / 6.4.
bool conv2d_flat_fits(const ConvGeom& g, std::size_t elem) {
  const FlatLayout f = flat_layout(g);
  return g.K <= 128 && 2 * g.Q >= f.Wp &&
         g.C * f.phases * f.plane * elem <= (std::size_t(1) << 20);
}

// The flat weight gradient (conv2d_backward_weight_flat) against the GEMM over im2col and
// the dot products of conv2d_backward_weight_dots, 2 threads, best of 7, ms: 128x16x28x28
// (16 filters) 3.6 / - / 4.6-5.2, 128x32x14x14 (32) 4.6 / 11.9, 128x32x28x28 15.6 / 31,
// 64x64x14x14 7.8 / 14.5, 32x64x56x56 53 / 75, VGG's 8x3x224x224 (64) 21 / 29. With few
// channels and filters the dots keep it: LeNet's C3 128x6x14x14 (16) 2.2 / - / 1.0.
// Strided, against the implicit GEMM / the dots (ms, same runs): 128x16x14x14 -> 32@3x3/2
// 1.57 / 0.80, 128x32x16x16 -> 64 4.5 / 3.7, DCGAN's 64x64x14x14 -> 128@4x4/2 11.6 / 10.0;
// with one image per chunk a wash (32x64x56x56 -> 128: 27 / 29), and stride 3 slower.
bool conv2d_flat_weight_fits(const ConvGeom& g, std::size_t elem) {
  const FlatLayout f = flat_layout(g);
  const std::size_t image_bytes = (g.C * f.phases + g.K) * f.plane * elem;
  const bool strided_fits = g.sh <= 2 && g.sw <= 2 && 2 * image_bytes <= (std::size_t(768) << 10);
  return g.ph >= 0 && g.pw >= 0 && conv2d_flat_fits(g, elem) && (g.K >= 32 || g.C >= 16) &&
         (f.phases == 1 || strided_fits);
}

namespace {

// Few filters and a column matrix that stays in cache: the direct path pays.
bool direct_forward_fits(const ConvGeom& g, std::size_t elem) {
  return g.K < 32 && g.crs() * round_up(g.P * g.Q, 64) * elem <= (std::size_t(1) << 20);
}

// Strided layers on few channels (AlexNet's C1: 3 channels, 11x11/4): the implicit GEMM
// gathers every column element with a stride, which cost as much as its multiply-adds.
// Here the filters are the vector dimension instead: for a run of NP output pixels of a
// row, each tap (c, r, s) broadcasts NP input values of a zero-padded copy of the image and
// multiplies NK vectors of filters, no gather and no im2col. The epilogue is applied in
// registers, then the tile goes through a small buffer to the output rows (NP pixels per
// filter).
template <typename T, int NK, int NP>
void conv2d_forward_kvec(const ConvGeom& g, const T* x, const T* w, const Epilogue<T>& ep,
                         T* y, int team) {
  using V = typename Vec<T>::type;
  constexpr int L = kVecBytes / int(sizeof(T));
  constexpr int KB = NK * L;
  const index_t crs = g.crs(), kp = round_up(g.K, KB);
  // filters as (tap, filter): one tap's filters are contiguous vectors
  Scratch<T> wp(static_cast<size_t>(crs) * kp);  // 64-byte aligned: vector loads
  std::fill(wp.data(), wp.data() + crs * kp, T(0));
  for (index_t k = 0; k < g.K; ++k)
    for (index_t j = 0; j < crs; ++j) wp.data()[j * kp + k] = w[k * crs + j];
  // the vectors run along the filters: the bias is per vector lane, as a per-column one
  Epilogue<T> by_filter = ep;
  by_filter.bias_per_col = true;
  // padded image wide enough for the last run of NP pixels of a row
  const index_t qp = round_up(g.Q, NP);
  const index_t Hp = (g.P - 1) * g.sh + (g.R - 1) * g.dh + 1;
  const index_t Wp = (qp - 1) * g.sw + (g.S - 1) * g.dw + 1;
#pragma omp parallel num_threads(team)
  {
    FlushToZero ftz_worker;
    static thread_local Scratch<T> pad_buf;
    pad_buf.resize(g.C * Hp * Wp);
    T* xpad = pad_buf.data();
    alignas(64) T tile[NP][KB];
#pragma omp for schedule(static)
    for (index_t n = 0; n < g.N; ++n) {
      const T* xn = x + n * g.C * g.H * g.W;
      for (index_t c = 0; c < g.C; ++c)
        for (index_t h = 0; h < Hp; ++h) {
          T* row = xpad + (c * Hp + h) * Wp;
          const index_t hs = h - g.ph;
          for (index_t v = 0; v < Wp; ++v) {
            const index_t ws = v - g.pw;
            row[v] = hs >= 0 && hs < g.H && ws >= 0 && ws < g.W ? xn[(c * g.H + hs) * g.W + ws]
                                                                 : T(0);
          }
        }
      T* yn = y + n * g.K * g.P * g.Q;
      for (index_t kb = 0; kb < kp; kb += KB)
        for (index_t p = 0; p < g.P; ++p)
          for (index_t q0 = 0; q0 < g.Q; q0 += NP) {
            V acc[NP][NK];
#pragma GCC unroll 16
            for (int i = 0; i < NP; ++i)
#pragma GCC unroll 4
              for (int j = 0; j < NK; ++j) acc[i][j] = V{};
            for (index_t c = 0; c < g.C; ++c)
              for (index_t r = 0; r < g.R; ++r) {
                const T* xr = xpad + (c * Hp + p * g.sh + r * g.dh) * Wp + q0 * g.sw;
                const T* wr = wp.data() + ((c * g.R + r) * g.S) * kp + kb;
                for (index_t s = 0; s < g.S; ++s) {
                  V wv[NK];
#pragma GCC unroll 4
                  for (int j = 0; j < NK; ++j)
                    wv[j] = *reinterpret_cast<const V*>(wr + s * kp + j * L);
                  const T* xs = xr + s * g.dw;
#pragma GCC unroll 16
                  for (int i = 0; i < NP; ++i) {
                    const V a = xs[i * g.sw] - V{};
#pragma GCC unroll 4
                    for (int j = 0; j < NK; ++j) acc[i][j] += a * wv[j];
                  }
                }
              }
#pragma GCC unroll 4
            for (int j = 0; j < NK; ++j) {
              const index_t lanes = std::min<index_t>(L, g.K - kb - j * L);
              if (lanes <= 0) break;  // padding filters: no bias to read
#pragma GCC unroll 16
              for (int i = 0; i < NP; ++i)
                acc[i][j] = by_filter.vec(acc[i][j], 0, kb + j * L, static_cast<int>(lanes));
            }
#pragma GCC unroll 16
            for (int i = 0; i < NP; ++i)
#pragma GCC unroll 4
              for (int j = 0; j < NK; ++j) std::memcpy(&tile[i][j * L], &acc[i][j], sizeof(V));
            const index_t valid = std::min<index_t>(NP, g.Q - q0);
            for (index_t k = kb; k < std::min(g.K, kb + KB); ++k) {
              T* out = yn + (k * g.P + p) * g.Q + q0;
              for (index_t i = 0; i < valid; ++i) out[i] = tile[i][k - kb];
            }
          }
    }
  }
}

// Strided, few channels, 32 filters or more (a full tile of two vectors). AlexNet's C1
// (16x3x224x224, 96@11x11/4), 2 threads: 17-25 ms with tiles of 3 vectors x 8 pixels,
// 22-28 with 2 x 12, against the implicit GEMM's 37-45.
bool kvec_forward_fits(const ConvGeom& g, std::size_t elem) {
  return (g.sh > 1 || g.sw > 1) && g.C <= 4 && g.K >= 32 &&
         g.C * ((g.P - 1) * g.sh + g.R) * ((g.Q + 12) * g.sw + g.S) * elem <= (std::size_t(1) << 20);
}

// A strided 1x1 convolution without padding reads every sh-th row and sw-th column: the
// image is subsampled once (a strided copy) and the stride-1 1x1 convolution runs on
// contiguous rows, instead of gathering each column of the implicit GEMM with a stride
// (ResNet's 32x64x56x56 -> 128@1x1/2, best of 7 on a loaded machine, ms, forward / data /
// weight gradient: 18.0 / 19.6 / 16.1 before, 11.0 / 10.5 / 10.6 after; ResNet-20's
// 128x16x28x28 -> 32: 2.6 / 4.1 / 3.6 before, 2.2 / 2.5 / 2.1 after; at 14x14 -> 7x7 a
// wash, 1.4-1.6 / 1.6-2.2 / 1.6-1.7).
bool strided_pointwise(const ConvGeom& g) {
  return g.R == 1 && g.S == 1 && (g.sh > 1 || g.sw > 1) && g.ph == 0 && g.pw == 0 &&
         g.P > 0 && g.Q > 0 && (g.P - 1) * g.sh < g.H && (g.Q - 1) * g.sw < g.W;
}

ConvGeom subsampled_geometry(const ConvGeom& g) {
  return ConvGeom{g.N, g.C, g.P, g.Q, g.K, 1, 1, g.P, g.Q, 1, 1, 0, 0, 1, 1};
}

// x (N,C,H,W) -> xs (N,C,P,Q) = x[:, :, ::sh, ::sw] (to P, Q)
template <typename T>
void subsample_image(const ConvGeom& g, const T* x, T* xs) {
  const int team = threads_for(double(g.N) * g.C * g.P * g.Q, 1 << 16);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (index_t nc = 0; nc < g.N * g.C; ++nc)
    for (index_t p = 0; p < g.P; ++p) {
      const T* src = x + (nc * g.H + p * g.sh) * g.W;
      T* dst = xs + (nc * g.P + p) * g.Q;
      for (index_t q = 0; q < g.Q; ++q) dst[q] = src[q * g.sw];
    }
}

// dxs (N,C,P,Q) -> dx (N,C,H,W): each value back at its pixel, zero between
template <typename T>
void upsample_gradient(const ConvGeom& g, const T* dxs, T* dx) {
  const int team = threads_for(double(g.N) * g.C * g.H * g.W, 1 << 16);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (index_t nc = 0; nc < g.N * g.C; ++nc) {
    T* plane = dx + nc * g.H * g.W;
    std::fill(plane, plane + g.H * g.W, T(0));
    for (index_t p = 0; p < g.P; ++p) {
      const T* src = dxs + (nc * g.P + p) * g.Q;
      T* dst = plane + p * g.sh * g.W;
      for (index_t q = 0; q < g.Q; ++q) dst[q * g.sw] = src[q];
    }
  }
}

}  // namespace

// x (N,C,H,W), w (K,C,R,S) -> y (N,K,P,Q) = ep(conv(x, w)), ep per filter row
template <typename T>
void conv2d_forward_ep(const ConvGeom& g, const T* x, const T* w, const Epilogue<T>& ep, T* y) {
  FlushToZero ftz;
  if (winograd_selected(g, sizeof(T))) return conv2d_forward_winograd<T>(g, x, w, ep, y);
  const int threads = threads_for(conv_flops(g), 1 << 18);
  if (fully_connected(g)) {  // y (N,K) = x (N,CRS) w^T, the bias per column
    Epilogue<T> cols = ep;
    cols.bias_per_col = true;
    gemm_auto<T>(g.N, g.crs(), T(1), DenseA<T>{x, g.crs(), false},
                 DenseB<T>{w, g.crs(), true, g.K}, T(0), y, g.K, threads, cols);
    return;
  }
  if (strided_pointwise(g)) {
    static thread_local Scratch<T> image;
    image.resize(g.N * g.C * g.P * g.Q);
    subsample_image(g, x, image.data());
    return conv2d_forward_ep(subsampled_geometry(g), image.data(), w, ep, y);
  }
  if (kvec_forward_fits(g, sizeof(T)))
    return g.K % 32 == 0 && g.K % 48 != 0
               ? conv2d_forward_kvec<T, 2, 12>(g, x, w, ep, y, threads)   // 32, 64 filters
               : conv2d_forward_kvec<T, 3, 8>(g, x, w, ep, y, threads);  // AlexNet's 96
  const std::vector<ColIndex> idx = col_index(g);
  const index_t plane = g.P * g.Q;
  constexpr index_t NR = TileGeneral<T>::NR;
  const bool dense = 4 * (round_up(plane, NR) - plane) > round_up(plane, NR);  // >25% padding
  if (conv2d_flat_fits(g, sizeof(T))) {
    if (g.K <= 6)
      conv2d_forward_flat<T, 6, 4>(g, x, w, ep, y, threads);
    else
      conv2d_forward_flat<T, 8, 3>(g, x, w, ep, y, threads);
    return;
  }
  if (direct_forward_fits(g, sizeof(T))) {
    // The tile that wastes least on padding filters and pixels.
    constexpr int L = kVecBytes / int(sizeof(T));
    auto used = [&](index_t bk, index_t nb) {
      return double(g.K) / round_up(g.K, bk) * double(plane) / round_up(plane, nb);
    };
    const double u83 = used(8, 3 * L), u64 = used(6, 4 * L), u82 = used(8, 2 * L);
    if (u64 > u83 && u64 >= u82)
      conv2d_forward_direct<T, 6, 4>(g, x, w, ep, y, idx, threads);
    else if (u82 > u83)
      conv2d_forward_direct<T, 8, 2>(g, x, w, ep, y, idx, threads);
    else
      conv2d_forward_direct<T, 8, 3>(g, x, w, ep, y, idx, threads);
    return;
  }
  if (!dense) {
    gemm_auto<T>(g.K, g.crs(), T(1), DenseA<T>{w, g.crs(), false},
                 Im2colB<T>{x, &g, idx.data(), g.K * plane, false}, T(0), y, plane, threads,
                 ep);
    return;
  }
  // Few output pixels per image: GEMM over chunks of images into a (K, images*P*Q) buffer of
  // at most ~4 MiB, then spread it over the images (the epilogue on the way).
  const index_t chunk = std::max<index_t>(1, (index_t(1) << 20) / std::max<index_t>(1, g.K * plane));
  static thread_local Scratch<T> buffer;
  buffer.resize(g.K * std::min(chunk, g.N) * plane);
  for (index_t n0 = 0; n0 < g.N; n0 += chunk) {
    ConvGeom part = g;
    part.N = std::min(chunk, g.N - n0);
    const index_t cols = part.N * plane;
    T* tmp = buffer.data();
    gemm_auto<T>(g.K, g.crs(), T(1), DenseA<T>{w, g.crs(), false},
                 Im2colB<T>{x + n0 * g.C * g.H * g.W, &part, idx.data(), 0, true}, T(0), tmp,
                 cols, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (index_t nk = 0; nk < part.N * g.K; ++nk) {
      const index_t n = nk / g.K, k = nk % g.K;
      const T* src = tmp + k * cols + n * plane;
      T* dst = y + ((n0 + n) * g.K + k) * plane;
      std::memcpy(dst, src, sizeof(T) * plane);
      ep.apply_row(dst, plane, k, 0);
    }
  }
}

// x (N,C,H,W), w (K,C,R,S), b (K) or null -> y (N,K,P,Q)
template <typename T>
void conv2d_forward(const ConvGeom& g, const T* x, const T* w, const T* b, T* y) {
  Epilogue<T> ep;
  ep.bias = b;
  conv2d_forward_ep(g, x, w, ep, y);
}

// y = act(conv(x, w) + b) (the act codes of convnet/epilogue_math.h)
template <typename T>
void conv2d_forward_act(const ConvGeom& g, const T* x, const T* w, const T* b, T* y, int act,
                        T p1, T p2) {
  Epilogue<T> ep;
  ep.bias = b;
  ep.act = act;
  ep.p1 = p1;
  ep.p2 = p2;
  conv2d_forward_ep(g, x, w, ep, y);
}

namespace {

// Stride 1: dx is the forward convolution of dy with the filters flipped in space and
// transposed in channels, padded by dilation*(R-1) - pad (negative means cropping).
template <typename T>
void conv2d_backward_data_stride1(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  std::vector<T> flipped(static_cast<size_t>(g.K) * g.crs());
  for (index_t k = 0; k < g.K; ++k)
    for (index_t c = 0; c < g.C; ++c)
      for (index_t r = 0; r < g.R; ++r)
        for (index_t s = 0; s < g.S; ++s)
          flipped[((c * g.K + k) * g.R + (g.R - 1 - r)) * g.S + (g.S - 1 - s)] =
              w[((k * g.C + c) * g.R + r) * g.S + s];
  const ConvGeom t{g.N, g.K, g.P, g.Q, g.C, g.R, g.S, g.H, g.W, 1, 1,
                   g.dh * (g.R - 1) - g.ph, g.dw * (g.S - 1) - g.pw, g.dh, g.dw};
  conv2d_forward<T>(t, dy, flipped.data(), nullptr, dx);
}

// The phases of the strided data gradient as sub-pixel convolutions (see
// conv2d_backward_data_phases): phase (a, b) holds the pixels h = (m0 + m)*sh + a - ph,
// w = (n0 + q)*sw + b - pw of dx, a stride-1 convolution of dy with jh x jw taps.
struct SubPixel {
  index_t a, b, m0, n0, rows, cols, jh, jw, top, left;  // top, left: its convolution's padding
};

struct SubPixelPlan {
  std::vector<SubPixel> phases;
  index_t top = 0, left = 0, Hp = 0, Wp = 0, rows = 0;  // common padding, plane, most rows
};

SubPixelPlan sub_pixel_plan(const ConvGeom& g) {
  SubPixelPlan plan;
  for (index_t a = 0; a < g.sh; ++a)
    for (index_t b = 0; b < g.sw; ++b) {
      SubPixel s{a, b, g.ph > a ? ceil_div(g.ph - a, g.sh) : 0,
                 g.pw > b ? ceil_div(g.pw - b, g.sw) : 0, 0, 0,
                 a < g.R ? ceil_div(g.R - a, g.sh) : 0, b < g.S ? ceil_div(g.S - b, g.sw) : 0, 0,
                 0};
      s.rows = std::max<index_t>(0, ceil_div(g.H + g.ph - a, g.sh) - s.m0);
      s.cols = std::max<index_t>(0, ceil_div(g.W + g.pw - b, g.sw) - s.n0);
      if (s.rows == 0 || s.cols == 0) continue;
      s.top = s.jh - 1 - s.m0;
      s.left = s.jw - 1 - s.n0;
      plan.top = std::max(plan.top, s.top);
      plan.left = std::max(plan.left, s.left);
      plan.phases.push_back(s);
    }
  plan.Hp = g.P + plan.top;
  plan.Wp = g.Q + plan.left;
  for (const SubPixel& s : plan.phases) {
    plan.Hp = std::max(plan.Hp, s.rows + s.jh - 1 - s.top + plan.top);
    plan.Wp = std::max(plan.Wp, s.cols + s.jw - 1 - s.left + plan.left);
    plan.rows = std::max(plan.rows, s.rows);
  }
  return plan;
}

// Phase s's filters, flipped and with their channels transposed: row c (of `rows`, zero
// past C) holds tap (k, j, i) = w[k][c][a + (jh-1-j)*sh][b + (jw-1-i)*sw].
template <typename T>
std::vector<T> sub_pixel_filters(const ConvGeom& g, const SubPixel& s, const T* w, index_t rows) {
  const index_t taps = g.K * s.jh * s.jw;
  std::vector<T> sub(static_cast<size_t>(rows) * taps, T(0));
  for (index_t c = 0; c < g.C; ++c)
    for (index_t k = 0; k < g.K; ++k)
      for (index_t j = 0; j < s.jh; ++j)
        for (index_t i = 0; i < s.jw; ++i)
          sub[c * taps + (k * s.jh + j) * s.jw + i] =
              w[((k * g.C + c) * g.R + s.a + (s.jh - 1 - j) * g.sh) * g.S + s.b +
                (s.jw - 1 - i) * g.sw];
  return sub;
}

// Stride > 1, no dilation: the input pixels split into sh*sw phases, h with
// (h + ph) % sh == a and w with (w + pw) % sw == b, and each phase of dx is a stride-1
// convolution of dy with the taps r = a + j*sh, s = b + i*sw of the filters, flipped and
// with their channels transposed (the transposed convolution as sub-pixel convolutions).
// The multiply-adds are those of dcol = W^T dy, without the column buffer and the
// scatter-add of col2im: each phase runs on the forward paths and is written once.
template <typename T>
void conv2d_backward_data_phases(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  static thread_local Scratch<T> out_buf;
  for (const SubPixel& s : sub_pixel_plan(g).phases) {
    const index_t size = g.N * g.C * s.rows * s.cols;
    out_buf.resize(size);
    T* out = out_buf.data();
    if (s.jh == 0 || s.jw == 0) {  // no tap reaches these pixels
      std::fill(out, out + size, T(0));
    } else {
      const std::vector<T> sub = sub_pixel_filters(g, s, w, g.C);
      const ConvGeom t{g.N, g.K, g.P, g.Q, g.C, s.jh, s.jw, s.rows, s.cols, 1, 1,
                       s.top, s.left, 1, 1};
      conv2d_forward<T>(t, dy, sub.data(), nullptr, out);
    }
    const int team = threads_for(double(size), 1 << 16);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (index_t nc = 0; nc < g.N * g.C; ++nc) {
      const T* src = out + nc * s.rows * s.cols;
      T* dst = dx + nc * g.H * g.W + (s.m0 * g.sh + s.a - g.ph) * g.W + s.n0 * g.sw + s.b - g.pw;
      for (index_t m = 0; m < s.rows; ++m)
        for (index_t q = 0; q < s.cols; ++q)
          dst[m * g.sh * g.W + q * g.sw] = src[m * s.cols + q];
    }
  }
}

// The padded dy of a chunk in cache, and rows that are mostly output.
bool sub_pixel_flat_fits(const ConvGeom& g, std::size_t elem) {
  const SubPixelPlan plan = sub_pixel_plan(g);
  index_t cols = plan.Wp;
  for (const SubPixel& s : plan.phases) cols = std::min(cols, s.cols);
  return !plan.phases.empty() && 2 * cols >= plan.Wp &&
         g.K * plan.Hp * plan.Wp * elem <= (std::size_t(1) << 20);
}

// The sub-pixel convolutions of conv2d_backward_data_phases on the flat layout: all phases
// read one zero-padded copy of a chunk of dy's images (each phase at its own offsets into
// it) and store straight into their pixels of dx. One copy of dy instead of one per phase,
// no phase output buffer and no second pass to spread it.
template <typename T, int BK, int NV>
void conv2d_backward_data_sub_pixel_flat(const ConvGeom& g, const T* dy, const T* w, T* dx,
                                         int team) {
  using V = typename Vec<T>::type;
  constexpr int L = kVecBytes / int(sizeof(T));
  constexpr int NB = NV * L;
  const SubPixelPlan plan = sub_pixel_plan(g);
  const index_t Wp = plan.Wp, plane = plan.Hp * Wp;
  const index_t chunk = flat_chunk(g.N, plane, plan.rows * Wp, g.K * plane * sizeof(T), NB, team);
  const index_t stride = chunk * plane, kp = round_up(g.C, BK);
  const index_t out_len = round_up((chunk - 1) * plane + plan.rows * Wp, NB);
  // per phase: its filters (flipped, channels transposed, padded to the tile) and offsets
  std::vector<std::vector<T>> filters;
  std::vector<std::vector<index_t>> offsets;
  index_t reach = 0;
  for (const SubPixel& s : plan.phases) {
    std::vector<index_t> off(g.K * s.jh * s.jw);
    for (index_t k = 0; k < g.K; ++k)
      for (index_t j = 0; j < s.jh; ++j)
        for (index_t i = 0; i < s.jw; ++i) {
          const index_t t = (k * s.jh + j) * s.jw + i;
          off[t] = k * stride + (j - s.top + plan.top) * Wp + i - s.left + plan.left;
          reach = std::max(reach, off[t] - k * stride);
        }
    filters.push_back(sub_pixel_filters(g, s, w, kp));
    offsets.push_back(std::move(off));
  }
  const index_t buf_len = (g.K - 1) * stride + out_len + reach;
  const index_t chunks = ceil_div(g.N, chunk);
#pragma omp parallel num_threads(team)
  {
    FlushToZero ftz_worker;
    const auto [xpad, ybuf] = flat_buffers<T>(buf_len, BK * out_len);
#pragma omp for schedule(static)
    for (index_t ci = 0; ci < chunks; ++ci) {
      const index_t n0 = ci * chunk, nb = std::min(chunk, g.N - n0);
      for (index_t j = 0; j < nb; ++j)
        for (index_t k = 0; k < g.K; ++k)
          for (index_t p = 0; p < g.P; ++p)
            std::memcpy(xpad + k * stride + j * plane + (p + plan.top) * Wp + plan.left,
                        dy + (((n0 + j) * g.K + k) * g.P + p) * g.Q, sizeof(T) * g.Q);
      for (size_t ph = 0; ph < plan.phases.size(); ++ph) {
        const SubPixel& s = plan.phases[ph];
        const index_t taps = g.K * s.jh * s.jw;
        const index_t len = round_up((nb - 1) * plane + s.rows * Wp, NB);
        for (index_t kb = 0; kb < kp; kb += BK) {
          flat_rows<T, BK, NV>(xpad, offsets[ph].data(), taps, filters[ph].data() + kb * taps,
                               taps, len, ybuf, out_len, [](V v, int) { return v; });
          // pixel (m0 + m)*sh + a - ph, (n0 + q)*sw + b - pw of each image and channel
          for (index_t j = 0; j < nb; ++j)
            for (int i = 0; i < BK && kb + i < g.C; ++i) {
              T* dst = dx + ((n0 + j) * g.C + kb + i) * g.H * g.W +
                       (s.m0 * g.sh + s.a - g.ph) * g.W + s.n0 * g.sw + s.b - g.pw;
              const T* src = ybuf + i * out_len + j * plane;
              for (index_t m = 0; m < s.rows; ++m)
                for (index_t q = 0; q < s.cols; ++q)
                  dst[m * g.sh * g.W + q * g.sw] = src[m * Wp + q];
            }
        }
      }
    }
  }
}

}  // namespace

// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W)
template <typename T>
void conv2d_backward_data(const ConvGeom& g, const T* dy, const T* w, T* dx) {
  FlushToZero ftz;
  if (fully_connected(g)) {  // dx (N,CRS) = dy (N,K) w (K,CRS)
    gemm_auto<T>(g.N, g.K, T(1), DenseA<T>{dy, g.K, false}, DenseB<T>{w, g.crs(), false, g.crs()},
                 T(0), dx, g.crs(), threads_for(conv_flops(g), 1 << 18));
    return;
  }
  if (strided_pointwise(g)) {
    static thread_local Scratch<T> image_grad;
    image_grad.resize(g.N * g.C * g.P * g.Q);
    conv2d_backward_data(subsampled_geometry(g), dy, w, image_grad.data());
    return upsample_gradient(g, image_grad.data(), dx);
  }
  // Both ways do the same multiply-adds; the flipped convolution gathers K*R*S values per
  // input pixel, col2im scatters C*R*S per output pixel, so the fewer channels win.
  // With few input channels the flipped convolution has few filters and takes the direct
  // forward path, which beats col2im as well.
  const ConvGeom flipped{g.N, g.K, g.P, g.Q, g.C, g.R, g.S, g.H, g.W, 1, 1, 0, 0, g.dh, g.dw};
  if (g.sh == 1 && g.sw == 1 &&
      (g.K <= g.C || winograd_selected_backward_data(g, sizeof(T)) ||
       (g.C >= 4 && (direct_forward_fits(flipped, sizeof(T)) ||
                     conv2d_flat_fits(flipped, sizeof(T))))))
    return conv2d_backward_data_stride1(g, dy, w, dx);
  // Strided: sub-pixel convolutions when their filters (dx's channels, at most 128) take
  // the flat stride-1 path, which needs no im2col (the autoencoder's 32->16 transposed
  // convolution: 1.4-1.6x faster than col2im, measured on one thread; ResNet's 3x3/2 data
  // gradients, 2 threads, best of 7, ms, col2im / phases: 128x32x14x14 -> 64 5.0-6.0 /
  // 2.7-5.6, 32x64x56x56 -> 128 51-56 / 30-32; DCGAN's 128->64 a wash, 11-14 / 9-16).
  // With under 8 they fill few register rows.
  // On the flat layout with one copy of dy for all phases, against one convolution per
  // phase (2 threads, best of 9 interleaved, ms): DCGAN's 64x64x14x14 <- 128@4x4/2 13.3 /
  // 10.5, ResNet-20's 128x16x28x28 <- 32@3x3/2 7.2 / 3.8 and 128x32x14x14 <- 64 5.3 / 3.0,
  // 32x64x56x56 <- 128 37 / 30.
  if ((g.sh > 1 || g.sw > 1) && g.dh == 1 && g.dw == 1 && g.C >= 8 && g.C <= 128) {
    if (sub_pixel_flat_fits(g, sizeof(T)))
      return conv2d_backward_data_sub_pixel_flat<T, 8, 3>(g, dy, w, dx,
                                                          threads_for(conv_flops(g), 1 << 18));
    return conv2d_backward_data_phases(g, dy, w, dx);
  }
  // Otherwise: dcol = W^T dy over a range of (image, output pixel) columns into a buffer of
  // at most ~1 MiB (col2im then reads it back from cache), images in parallel.
  const std::vector<ColIndex> idx = col_index(g);
  const index_t crs = g.crs(), plane = g.P * g.Q, total = g.N * plane;
  const index_t in_size = g.C * g.H * g.W;
  const index_t width = std::max<index_t>(1, (index_t(1) << 18) / crs);
  const int threads = threads_for(conv_flops(g), 1 << 18);
  static thread_local Scratch<T> buffer;
  buffer.resize(crs * std::min(width, total));
  std::fill(dx, dx + g.N * in_size, T(0));
  for (index_t j0 = 0; j0 < total; j0 += width) {
    const index_t ncols = std::min(width, total - j0);
    const index_t n_first = j0 / plane, n_last = (j0 + ncols - 1) / plane;
    T* cb = buffer.data();
    // Columns j0.. start mid-image in general; BatchColsB indexes from image n_first.
    gemm_auto<T>(crs, g.K, T(1), DenseA<T>{w, crs, true},
                 BatchColsB<T>{dy + n_first * g.K * plane, g.K, plane, n_last - n_first + 1,
                               j0 - n_first * plane, ncols},
                 T(0), cb, ncols, threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (index_t n = n_first; n <= n_last; ++n) {
      // this image's pixels [a, b) inside the chunk, at buffer column a + n*plane - j0
      const index_t a = std::max<index_t>(j0, n * plane) - n * plane;
      const index_t b = std::min<index_t>(j0 + ncols, (n + 1) * plane) - n * plane;
      T* dxn = dx + n * in_size;
      for (index_t k = 0; k < crs; ++k) {
        const ColIndex& ci = idx[k];
        T* dplane = dxn + ci.c * g.H * g.W;
        const T* src = cb + k * ncols + (n * plane + a - j0) - a;  // indexed by pixel
        for (index_t pix = a; pix < b;) {
          const index_t p = pix / g.Q, q0 = pix % g.Q;
          const index_t q1 = std::min<index_t>(g.Q, q0 + (b - pix));
          const index_t h = p * g.sh - g.ph + ci.dr;
          if (h >= 0 && h < g.H) {
            T* row = dplane + h * g.W;
            const T* s = src + p * g.Q;
            const index_t w0 = -g.pw + ci.ds;  // input column of output column 0
            // Columns q with 0 <= w0 + q*sw < W.
            const index_t lo = std::max<index_t>(q0, w0 >= 0 ? 0 : ceil_div(-w0, g.sw));
            const index_t hi = std::min<index_t>(q1, w0 >= g.W ? 0 : ceil_div(g.W - w0, g.sw));
            for (index_t q = lo; q < hi; ++q) row[w0 + q * g.sw] += s[q];
          }
          pix += q1 - q0;
        }
      }
    }
  }
}

namespace {

// dW from the vector partial sums of the dot-product weight gradients: per thread, blocks
// of BK filters x BJ taps, each a vector of L lanes. Lanes and threads are summed in
// double: the partial sums can be long.
template <typename T>
void sum_partials(index_t K, index_t crs, index_t kp, index_t jp, int BK, int BJ, int L,
                  int team, const T* parts, index_t part_size, T* dw) {
  const index_t blocks_k = kp / BK, blocks_j = jp / BJ;
  // K*CRS*team*L additions (1.2M at 64 channels): worth the team; each output has one owner
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (index_t blk = 0; blk < blocks_k * blocks_j; ++blk) {
    const index_t kb = blk / blocks_j * BK, jb = blk % blocks_j * BJ;
      for (int i = 0; i < BK; ++i)
        for (int j = 0; j < BJ; ++j) {
          const index_t k = kb + i, c = jb + j;
          if (k >= K || c >= crs) continue;
          double total = 0.0;
          for (int th = 0; th < team; ++th) {
            const T* v = parts + th * part_size + (kb * jp + jb * BK) * L + (i * BJ + j) * L;
            for (int l = 0; l < L; ++l) total += v[l];
          }
          dw[k * crs + c] = static_cast<T>(total);
        }
  }
}

// The register tile of the dot-product weight gradients: adds to the BK x BJ vector
// partial sums at `slot` (BK*BJ vectors, 64-byte aligned) the products of the rows
// a + i*a_stride (aligned) and b[j] (any alignment) over [d0, d1), a multiple of the width.
template <typename T, int BK, int BJ>
void dot_block(T* slot_data, const T* a, index_t a_stride, const T* const* b, index_t d0,
               index_t d1) {
  using V = typename Vec<T>::type;
  constexpr int L = kVecBytes / int(sizeof(T));
  V* slot = reinterpret_cast<V*>(slot_data);
  V acc[BK][BJ];
#pragma GCC unroll 4
  for (int i = 0; i < BK; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < BJ; ++j) acc[i][j] = slot[i * BJ + j];
  for (index_t d = d0; d < d1; d += L) {
    V av[BK];
#pragma GCC unroll 4
    for (int i = 0; i < BK; ++i) av[i] = *reinterpret_cast<const V*>(a + i * a_stride + d);
#pragma GCC unroll 6
    for (int j = 0; j < BJ; ++j) {
      V bv;
      std::memcpy(&bv, b[j] + d, sizeof(V));
#pragma GCC unroll 4
      for (int i = 0; i < BK; ++i) acc[i][j] += av[i] * bv;
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < BK; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < BJ; ++j) slot[i * BJ + j] = acc[i][j];
}

// Weight gradient for layers with few filters (LeNet-sized): dW = sum_n dY_n col_n^T where
// both factors are read along the pixels, as dot products of contiguous rows. This skips
// the GEMM's transposing packs, which dominate when K is small. Each thread keeps vector
// partial sums for its images; lanes and threads are added up once at the end.
template <typename T>
void conv2d_backward_weight_dots(const ConvGeom& g, const T* dy, const T* x, T* dw,
                                 const std::vector<ColIndex>& idx, int team) {
  constexpr int L = kVecBytes / int(sizeof(T));
  constexpr int BK = 4, BJ = 6;  // 24 accumulators, 4 dy rows and one col row live
  const index_t plane = g.P * g.Q, width = round_up(plane, L);
  const index_t crs = g.crs(), kp = round_up(g.K, BK), jp = round_up(crs, BJ);
  const index_t part_size = kp * jp * L;
  Scratch<T> parts(static_cast<size_t>(team) * part_size);
  const std::vector<ColCopy> plan = im2col_plan(g, idx, width);
#pragma omp parallel num_threads(team)
  {
    FlushToZero ftz_worker;
    const int t = thread_id();
    T* part = parts.data() + t * part_size;
    std::fill(part, part + part_size, T(0));
    static thread_local Scratch<T> col_buf, dy_buf;
    col_buf.resize(jp * width);
    dy_buf.resize(kp * width);
    T* col = col_buf.data();
    T* dyb = dy_buf.data();
    // Padding rows and pixel tails stay zero: they add nothing to the dot products.
    std::fill(col, col + jp * width, T(0));
    std::fill(dyb, dyb + kp * width, T(0));
    for (index_t n = g.N * t / team; n < g.N * (t + 1) / team; ++n) {
      im2col_run(plan, x + n * g.C * g.H * g.W, g.sw, col);
      for (index_t k = 0; k < g.K; ++k)
        std::memcpy(dyb + k * width, dy + (n * g.K + k) * plane, sizeof(T) * plane);
      for (index_t kb = 0; kb < kp; kb += BK)
        for (index_t jb = 0; jb < jp; jb += BJ) {
          const T* rows[BJ];
          for (int j = 0; j < BJ; ++j) rows[j] = col + (jb + j) * width;
          dot_block<T, BK, BJ>(part + (kb * jp + jb * BK) * L, dyb + kb * width, width, rows, 0,
                               width);
        }
    }
  }
  sum_partials(g.K, crs, kp, jp, BK, BJ, L, team, parts.data(), part_size, dw);
}

// Weight gradient on the flat layout of conv2d_forward_flat (no cropping): images are copied
// into their phase planes of Hp x Wp, and dy into planes of the same shape whose positions
// past the output (columns >= Q, rows >= P) are zero. With a chunk of images laid end to end
// in each plane, dW[k][c,r,s] = sum_i D[k][i] * X[c][i + off(r,s)] over the whole chunk:
// one long dot product per (filter, tap), no im2col matrix. An output position never reads
// past its own padded plane; the positions that do meet a zero in D. Register tile: BK
// filters x BJ taps of vector partial sums, over depth slices that keep BK rows of D in L1;
// each thread takes its own images and sums into its own partials.
template <typename T>
void conv2d_backward_weight_flat(const ConvGeom& g, const T* dy, const T* x, T* dw, int team) {
  constexpr int L = kVecBytes / int(sizeof(T));
  constexpr int BK = 4, BJ = 6;
  // depth slice: BK rows of D in 16 KiB (8 KiB was 5-10% slower: the partial sums go
  // through memory once per slice; 128x64x7x7 6.7 / 6.1 ms, 32x64x56x56 53 / 49)
  constexpr index_t DT = 4096 / index_t(sizeof(T));
  const FlatLayout f = flat_layout(g);
  const index_t crs = g.crs();
  const index_t kp = round_up(g.K, BK), jp = round_up(crs, BJ);
  // images per chunk: a chunk's X and D within ~768 KiB (L2)
  const index_t per_image = (g.C * f.phases + g.K) * f.plane * index_t(sizeof(T));
  const index_t chunk = std::max<index_t>(
      1, std::min<index_t>(ceil_div(g.N, team), (index_t(768) << 10) / per_image));
  const index_t depth = round_up(chunk * f.plane, L);
  const index_t x_stride = round_up(depth + f.reach, L);
  const std::vector<index_t> off = flat_offsets(g, f, x_stride, jp);
  const index_t part_size = kp * jp * L;
  Scratch<T> parts(static_cast<size_t>(team) * part_size);
#pragma omp parallel num_threads(team)
  {
    FlushToZero ftz_worker;
    const int th = thread_id();
    T* part = parts.data() + th * part_size;
    std::fill(part, part + part_size, T(0));
    static thread_local Scratch<T> x_buf, d_buf;
    x_buf.resize(g.C * f.phases * x_stride);
    d_buf.resize(kp * depth);
    T* xb = x_buf.data();
    T* db = d_buf.data();
    // Borders, gaps and tails stay zero from here on: only the interiors are rewritten.
    std::fill(xb, xb + g.C * f.phases * x_stride, T(0));
    std::fill(db, db + kp * depth, T(0));
    const index_t n_begin = g.N * th / team, n_end = g.N * (th + 1) / team;
    for (index_t n0 = n_begin; n0 < n_end; n0 += chunk) {
      const index_t nb = std::min(chunk, n_end - n0);
      for (index_t j = 0; j < nb; ++j) {
        const T* dn = dy + (n0 + j) * g.K * g.P * g.Q;
        flat_copy_image(g, f, x + (n0 + j) * g.C * g.H * g.W, xb + j * f.plane, x_stride);
        for (index_t k = 0; k < g.K; ++k)
          for (index_t p = 0; p < g.P; ++p)
            std::memcpy(db + k * depth + j * f.plane + p * f.Wp, dn + (k * g.P + p) * g.Q,
                        sizeof(T) * g.Q);
      }
      if (nb < chunk)  // a shorter last chunk: D must not keep the previous chunk's images
        for (index_t k = 0; k < g.K; ++k)
          std::fill(db + k * depth + nb * f.plane, db + (k + 1) * depth, T(0));
      const index_t used = round_up(nb * f.plane, L);
      for (index_t d0 = 0; d0 < used; d0 += DT) {
        const index_t d1 = std::min(used, d0 + DT);
        for (index_t kb = 0; kb < kp; kb += BK)
          for (index_t jb = 0; jb < jp; jb += BJ) {
            const T* taps[BJ];
            for (int j = 0; j < BJ; ++j) taps[j] = xb + off[jb + j];
            dot_block<T, BK, BJ>(part + (kb * jp + jb * BK) * L, db + kb * depth, depth, taps,
                                 d0, d1);
          }
      }
    }
  }
  sum_partials(g.K, crs, kp, jp, BK, BJ, L, team, parts.data(), part_size, dw);
}

}  // namespace

// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S)
template <typename T>
void conv2d_backward_weight(const ConvGeom& g, const T* dy, const T* x, T* dw) {
  FlushToZero ftz;
  if (winograd_selected_backward_weight(g, sizeof(T)))
    return conv2d_backward_weight_winograd<T>(g, dy, x, dw);
  const std::vector<ColIndex> idx = col_index(g);
  const index_t in_size = g.C * g.H * g.W, out_plane = g.P * g.Q;
  const index_t crs = g.crs(), w_size = g.K * crs;
  const int team = threads_for(conv_flops(g), 1 << 18);
  if (fully_connected(g)) {  // dw (K,CRS) = dy^T (K,N) x (N,CRS)
    gemm_auto<T>(g.K, g.N, T(1), DenseA<T>{dy, g.K, true}, DenseB<T>{x, crs, false, crs}, T(0),
                 dw, crs, team);
    return;
  }
  if (strided_pointwise(g)) {
    static thread_local Scratch<T> image;
    image.resize(g.N * g.C * g.P * g.Q);
    subsample_image(g, x, image.data());
    return conv2d_backward_weight(subsampled_geometry(g), dy, image.data(), dw);
  }
  if (conv2d_flat_weight_fits(g, sizeof(T))) return conv2d_backward_weight_flat(g, dy, x, dw, team);
  if (g.K < 32 && g.crs() <= 1024) return conv2d_backward_weight_dots(g, dy, x, dw, idx, team);
  // A GEMM over images [n0, n1): the reduction runs over (image, pixel).
  auto run = [&](index_t n0, index_t n1, T* target, int threads) {
    ConvGeom part = g;
    part.N = n1 - n0;
    gemm_auto<T>(g.K, part.N * out_plane, T(1), BatchRowsA<T>{dy + n0 * g.K * out_plane, g.K,
                 out_plane}, Im2colTransB<T>{x + n0 * in_size, &part, idx.data()}, T(0),
                 target, crs, threads);
  };
  if (g.N < 2 * team) {
    run(0, g.N, dw, team);
    return;
  }
  // Split-K over the batch: each thread reduces its share of images into a private copy.
  std::vector<T> partial(static_cast<size_t>(team - 1) * w_size);
#pragma omp parallel num_threads(team)
  {
    FlushToZero ftz_worker;
    const int t = thread_id();
    T* target = t == 0 ? dw : partial.data() + (t - 1) * w_size;
    run(g.N * t / team, g.N * (t + 1) / team, target, 1);
#pragma omp barrier
#pragma omp for schedule(static)
    for (index_t i = 0; i < w_size; ++i)
      for (int p = 1; p < team; ++p) dw[i] += partial[(p - 1) * w_size + i];
  }
}

// dy (N,K,P,Q) -> db (K)
template <typename T>
void conv2d_backward_bias(const ConvGeom& g, const T* dy, T* db) {
  const index_t plane = g.P * g.Q;
  const int team = threads_for(double(g.N) * g.K * plane);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
  for (index_t k = 0; k < g.K; ++k) {
    double acc = 0.0;
    for (index_t n = 0; n < g.N; ++n) {
      const T* src = dy + (n * g.K + k) * plane;
      T part = T(0);
#pragma omp simd reduction(+ : part)
      for (index_t i = 0; i < plane; ++i) part += src[i];
      acc += part;
    }
    db[k] = static_cast<T>(acc);
  }
}

// ---- 16-bit inputs (bfloat16, float16): the packers above on uint16_t patterns feed the
// 16-bit GEMM (gemm_bf16.h), which accumulates and writes float32. Where the float32
// kernel leaves the GEMM (few filters: the direct forward and the weight-gradient dot
// products; col2im), the inputs are widened and the float32 kernel runs: those layers are
// small, and a GEMM tile of 8 rows would be mostly padding.

namespace {

std::vector<float> widened(Half16 fmt, const std::uint16_t* src, index_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  half16_to_float(fmt, src, out.data(), n, threads_for(double(n), 1 << 16));
  return out;
}

}  // namespace

// x (N,C,H,W), w (K,C,R,S) -> y (N,K,P,Q) float32, without bias
void conv2d_forward16(Half16 fmt, const ConvGeom& g, const std::uint16_t* x,
                      const std::uint16_t* w, float* y) {
  FlushToZero ftz;
  if (direct_forward_fits(g, sizeof(float))) {
    const auto x32 = widened(fmt, x, g.N * g.C * g.H * g.W), w32 = widened(fmt, w, g.K * g.crs());
    return conv2d_forward<float>(g, x32.data(), w32.data(), nullptr, y);
  }
  using U = std::uint16_t;
  const std::vector<ColIndex> idx = col_index(g);
  const index_t plane = g.P * g.Q;
  const int threads = threads_for(conv_flops(g), 1 << 18);
  constexpr index_t NR = bf16_detail::NR;
  if (4 * (round_up(plane, NR) - plane) <= round_up(plane, NR)) {  // per-image panels
    gemm16_packed(fmt, g.K, g.crs(), 1.0f, DenseA<U>{w, g.crs(), false},
                  Im2colB<U>{x, &g, idx.data(), g.K * plane, false}, 0.0f, y, plane, threads);
    return;
  }
  // Few pixels per image: panels across images into a (K, N*P*Q) buffer, then spread.
  Scratch<float> tmp(static_cast<std::size_t>(g.K * g.N * plane));
  gemm16_packed(fmt, g.K, g.crs(), 1.0f, DenseA<U>{w, g.crs(), false},
                Im2colB<U>{x, &g, idx.data(), 0, true}, 0.0f, tmp.data(), g.N * plane, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (index_t nk = 0; nk < g.N * g.K; ++nk) {
    const index_t n = nk / g.K, k = nk % g.K;
    std::memcpy(y + nk * plane, tmp.data() + (k * g.N + n) * plane, sizeof(float) * plane);
  }
}

// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W) float32
void conv2d_backward_data16(Half16 fmt, const ConvGeom& g, const std::uint16_t* dy,
                            const std::uint16_t* w, float* dx) {
  FlushToZero ftz;
  // the float32 kernel's choice between the flipped forward convolution and col2im
  const ConvGeom fl{g.N, g.K, g.P, g.Q, g.C, g.R, g.S, g.H, g.W, 1, 1, 0, 0, g.dh, g.dw};
  if (g.sh == 1 && g.sw == 1 &&
      (g.K <= g.C || (g.C >= 4 && direct_forward_fits(fl, sizeof(float))))) {
    std::vector<std::uint16_t> flipped(static_cast<size_t>(g.K) * g.crs());
    for (index_t k = 0; k < g.K; ++k)
      for (index_t c = 0; c < g.C; ++c)
        for (index_t r = 0; r < g.R; ++r)
          for (index_t s = 0; s < g.S; ++s)
            flipped[((c * g.K + k) * g.R + (g.R - 1 - r)) * g.S + (g.S - 1 - s)] =
                w[((k * g.C + c) * g.R + r) * g.S + s];
    const ConvGeom t{g.N, g.K, g.P, g.Q, g.C, g.R, g.S, g.H, g.W, 1, 1,
                     g.dh * (g.R - 1) - g.ph, g.dw * (g.S - 1) - g.pw, g.dh, g.dw};
    return conv2d_forward16(fmt, t, dy, flipped.data(), dx);
  }
  // col2im: the float32 kernel on widened copies
  const auto dy32 = widened(fmt, dy, g.N * g.K * g.P * g.Q), w32 = widened(fmt, w, g.K * g.crs());
  conv2d_backward_data<float>(g, dy32.data(), w32.data(), dx);
}

// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,R,S) float32
void conv2d_backward_weight16(Half16 fmt, const ConvGeom& g, const std::uint16_t* dy,
                              const std::uint16_t* x, float* dw) {
  FlushToZero ftz;
  if (g.K < 32 && g.crs() <= 1024) {  // the float32 kernel's dot products
    const auto dy32 = widened(fmt, dy, g.N * g.K * g.P * g.Q);
    const auto x32 = widened(fmt, x, g.N * g.C * g.H * g.W);
    return conv2d_backward_weight<float>(g, dy32.data(), x32.data(), dw);
  }
  using U = std::uint16_t;
  const std::vector<ColIndex> idx = col_index(g);
  const index_t plane = g.P * g.Q;
  gemm16_packed(fmt, g.K, g.N * plane, 1.0f, BatchRowsA<U>{dy, g.K, plane},
                Im2colTransB<U>{x, &g, idx.data()}, 0.0f, dw, g.crs(),
                threads_for(conv_flops(g), 1 << 18));
}

#define INSTANTIATE(T)                                                                   \
  template void conv2d_forward<T>(const ConvGeom&, const T*, const T*, const T*, T*);    \
  template void conv2d_forward_ep<T>(const ConvGeom&, const T*, const T*,               \
                                     const Epilogue<T>&, T*);                           \
  template void conv2d_forward_act<T>(const ConvGeom&, const T*, const T*, const T*, T*, \
                                      int, T, T);                                        \
  template void conv2d_backward_data<T>(const ConvGeom&, const T*, const T*, T*);        \
  template void conv2d_backward_weight<T>(const ConvGeom&, const T*, const T*, T*);      \
  template void conv2d_backward_bias<T>(const ConvGeom&, const T*, T*);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace convnet
