// Fused element-wise cells of the recurrent layers (LSTM, GRU, plain tanh/ReLU RNN).
//
// A recurrent layer spends its time in two places: the GEMMs (the input projection of all
// steps at once, and h_{t-1} @ W_hh^T per step), which run on the packed GEMM, and the cell,
// which is here: every gate's activation, the state update and, in backward, every gate's
// gradient in one pass over the (B, G*H) gate matrix of one time step. Each kernel keeps
// what its backward needs (the activated gates) so that backward recomputes nothing but
// tanh(c).
//
// Gate order is PyTorch's: LSTM i, f, g, o; GRU r, z, n with n = tanh(x_n + r * (W_hn h +
// b_hn)). float32 runs at SIMD width with the Cephes-style exp of vec_math.h;
// float64 keeps the C library's functions (it serves gradient checks, not speed).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "convnet/kernel_math.h"
#include "vec_math.h"

namespace convnet {

namespace {

using namespace vecmath;

// One lane group of the hidden axis: a SIMD vector of floats, or a single double. The
// same cell code below runs on both.
template <typename T>
struct Lanes;

template <>
struct Lanes<float> {
  using V = VF;
  static constexpr int L = kLanesF;
  // A constant-size memcpy is one unaligned vector move; the variable-size one (a call to
  // memcpy) only serves the tail of the hidden axis.
  static V load(const float* p, int len) {
    V v = VF{};
    if (len == L)
      std::memcpy(&v, p, sizeof(V));
    else
      std::memcpy(&v, p, sizeof(float) * len);
    return v;
  }
  static void store(float* p, V v, int len) {
    if (len == L)
      std::memcpy(p, &v, sizeof(V));
    else
      std::memcpy(p, &v, sizeof(float) * len);
  }
  static V sig(V x) { return vsigmoid(x); }
  static V tnh(V x) { return vtanh(x); }
  static V one() { return splat(1.f); }
  static V zero() { return VF{}; }
  static V relu(V x) { return x > VF{} ? x : VF{}; }
  static V relu_grad(V g, V y) { return y > VF{} ? g : VF{}; }
};

// float64: the scalar activations the CUDA kernels use.
template <>
struct Lanes<double> : math::ScalarOps<double> {
  static constexpr int L = 1;
  static V load(const double* p, int) { return *p; }
  static void store(double* p, V v, int) { *p = v; }
};

// Runs body(j0, len) over the hidden axis [0, H) in lane groups, the groups split into
// contiguous column ranges, one per thread. A thread owns its columns for every row, so
// column sums (the bias gradients) need no reduction across threads.
template <typename T, typename F>
void over_columns(index_t B, index_t H, double cost_per_value, F&& body) {
  constexpr int L = Lanes<T>::L;
  const index_t groups = ceil_div(H, L);
  const int nt = static_cast<int>(
      std::min<index_t>(threads_for(double(B) * H * cost_per_value, 1 << 17), groups));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    FlushToZero ftz;
    const int t = thread_id(), size = team_size();
    const index_t lo = groups * t / size, hi = groups * (t + 1) / size;
    for (index_t gidx = lo; gidx < hi; ++gidx) {
      const index_t j0 = gidx * L;
      body(j0, static_cast<int>(std::min<index_t>(L, H - j0)));
    }
  }
}

}  // namespace

// gates (B,4H) pre-activations i,f,g,o without the bias, bias (4H) = b_ih + b_hh; c_prev
// (B,H) -> h, c (B,H), act (B,4H) activated (act may be gates itself: each value is read
// before it is overwritten). The bias is added here, not by the projection GEMM, which then
// neither fills nor rereads its output.
template <typename T>
void lstm_cell_forward(index_t B, index_t H, const T* gates, const T* bias, const T* c_prev, T* h,
                       T* c, T* act) {
  using S = Lanes<T>;
  using V = typename S::V;
  over_columns<T>(B, H, 40.0, [=](index_t j0, int len) {
    const V bi = S::load(bias + j0, len), bf = S::load(bias + H + j0, len),
            bg = S::load(bias + 2 * H + j0, len), bo = S::load(bias + 3 * H + j0, len);
    for (index_t b = 0; b < B; ++b) {
      const T* gr = gates + b * 4 * H + j0;
      T* ar = act + b * 4 * H + j0;
      const auto st = math::lstm_forward<S>(
          S::load(gr, len) + bi, S::load(gr + H, len) + bf, S::load(gr + 2 * H, len) + bg,
          S::load(gr + 3 * H, len) + bo, S::load(c_prev + b * H + j0, len));
      S::store(c + b * H + j0, st.c, len);
      S::store(h + b * H + j0, st.h, len);
      S::store(ar, st.i, len);
      S::store(ar + H, st.f, len);
      S::store(ar + 2 * H, st.g, len);
      S::store(ar + 3 * H, st.o, len);
    }
  });
}

// act (B,4H), c_prev, c, dh (B,H), dc (B,H): gradient reaching c_t from step t+1 ->
// dgates (B,4H) w.r.t. the pre-activations, dc_prev (B,H) (may be dc itself), db (4H): the
// column sums of dgates, added to db when accumulate, else written
template <typename T>
void lstm_cell_backward(index_t B, index_t H, const T* act, const T* c_prev, const T* c,
                        const T* dh, const T* dc, T* dgates, T* dc_prev, T* db,
                        bool accumulate) {
  using S = Lanes<T>;
  using V = typename S::V;
  over_columns<T>(B, H, 40.0, [=](index_t j0, int len) {
    V si = S::zero(), sf = S::zero(), sg = S::zero(), so = S::zero();
    for (index_t b = 0; b < B; ++b) {
      const T* ar = act + b * 4 * H + j0;
      T* dr = dgates + b * 4 * H + j0;
      const index_t k = b * H + j0;
      const auto d = math::lstm_backward<S>(
          S::load(ar, len), S::load(ar + H, len), S::load(ar + 2 * H, len),
          S::load(ar + 3 * H, len), S::load(c + k, len), S::load(c_prev + k, len),
          S::load(dh + k, len), S::load(dc + k, len));
      S::store(dc_prev + k, d.dc_prev, len);
      S::store(dr, d.di, len);
      S::store(dr + H, d.df, len);
      S::store(dr + 2 * H, d.dg, len);
      S::store(dr + 3 * H, d.d_o, len);
      si += d.di;
      sf += d.df;
      sg += d.dg;
      so += d.d_o;
    }
    const V sums[4] = {si, sf, sg, so};
    for (int q = 0; q < 4; ++q) {
      T* out = db + q * H + j0;
      S::store(out, accumulate ? S::load(out, len) + sums[q] : sums[q], len);
    }
  });
}

// gx (B,3H) = x W_ih^T, gh (B,3H) = h_prev W_hh^T (no biases), b_ih, b_hh (3H), h_prev (B,H)
// -> h (B,H), act (B,4H): r, z, n and hn = gh_n + b_hn (what backward needs)
template <typename T>
void gru_cell_forward(index_t B, index_t H, const T* gx, const T* gh, const T* b_ih,
                      const T* b_hh, const T* h_prev, T* h, T* act) {
  using S = Lanes<T>;
  using V = typename S::V;
  over_columns<T>(B, H, 30.0, [=](index_t j0, int len) {
    const V br = S::load(b_ih + j0, len) + S::load(b_hh + j0, len),
            bz = S::load(b_ih + H + j0, len) + S::load(b_hh + H + j0, len),
            bxn = S::load(b_ih + 2 * H + j0, len), bn = S::load(b_hh + 2 * H + j0, len);
    for (index_t b = 0; b < B; ++b) {
      const T* xr = gx + b * 3 * H + j0;
      const T* hr = gh + b * 3 * H + j0;
      T* ar = act + b * 4 * H + j0;
      const V hn = S::load(hr + 2 * H, len) + bn;
      const V pre_r = S::load(xr, len) + S::load(hr, len) + br;
      const V pre_z = S::load(xr + H, len) + S::load(hr + H, len) + bz;
      const auto st = math::gru_forward<S>(pre_r, pre_z, S::load(xr + 2 * H, len) + bxn, hn,
                                           S::load(h_prev + b * H + j0, len));
      S::store(h + b * H + j0, st.h, len);
      S::store(ar, st.r, len);
      S::store(ar + H, st.z, len);
      S::store(ar + 2 * H, st.n, len);
      S::store(ar + 3 * H, hn, len);
    }
  });
}

// act (B,4H) from gru_cell_forward, h_prev, dh (B,H) -> dgx (B,3H) w.r.t. gx, dgh (B,3H)
// w.r.t. gh + b_hh, dh_prev (B,H) = dh * z (the direct path; W_hh's part is a GEMM),
// dbx, dbh (3H) column sums of dgx, dgh. With accumulate, dh_prev, dbx and dbh are added to.
template <typename T>
void gru_cell_backward(index_t B, index_t H, const T* act, const T* h_prev, const T* dh,
                       T* dgx, T* dgh, T* dh_prev, T* dbx, T* dbh, bool accumulate) {
  using S = Lanes<T>;
  using V = typename S::V;
  over_columns<T>(B, H, 30.0, [=](index_t j0, int len) {
    V sr = S::zero(), sz = S::zero(), sn = S::zero(), shn = S::zero();
    for (index_t b = 0; b < B; ++b) {
      const T* ar = act + b * 4 * H + j0;
      const index_t k = b * H + j0;
      const auto d = math::gru_backward<S>(S::load(ar, len), S::load(ar + H, len),
                                           S::load(ar + 2 * H, len), S::load(ar + 3 * H, len),
                                           S::load(h_prev + k, len), S::load(dh + k, len));
      T* xo = dgx + b * 3 * H + j0;
      T* ho = dgh + b * 3 * H + j0;
      S::store(xo, d.dr, len);
      S::store(xo + H, d.dz, len);
      S::store(xo + 2 * H, d.dn, len);
      S::store(ho, d.dr, len);
      S::store(ho + H, d.dz, len);
      S::store(ho + 2 * H, d.dhn, len);
      S::store(dh_prev + k,
               accumulate ? S::load(dh_prev + k, len) + d.dh_prev : d.dh_prev, len);
      sr += d.dr;
      sz += d.dz;
      sn += d.dn;
      shn += d.dhn;
    }
    const V xs[3] = {sr, sz, sn}, hs[3] = {sr, sz, shn};
    for (int q = 0; q < 3; ++q) {
      T* ox = dbx + q * H + j0;
      T* oh = dbh + q * H + j0;
      S::store(ox, accumulate ? S::load(ox, len) + xs[q] : xs[q], len);
      S::store(oh, accumulate ? S::load(oh, len) + hs[q] : hs[q], len);
    }
  });
}

// pre (B,H) = x W_ih^T + h_prev W_hh^T, bias (H) = b_ih + b_hh -> h (B,H) = tanh(pre + bias)
// or relu(pre + bias) (h may be pre itself)
template <typename T>
void rnn_cell_forward(index_t B, index_t H, const T* pre, const T* bias, T* h, bool relu) {
  using S = Lanes<T>;
  over_columns<T>(B, H, 10.0, [=](index_t j0, int len) {
    const auto bv = S::load(bias + j0, len);
    for (index_t b = 0; b < B; ++b) {
      const index_t k = b * H + j0;
      const auto v = S::load(pre + k, len) + bv;
      S::store(h + k, math::rnn_forward<S>(v, relu), len);
    }
  });
}

// h (B,H) the cell's output, dh (B,H) -> dpre (B,H), db (H) column sums of dpre (added to
// when accumulate)
template <typename T>
void rnn_cell_backward(index_t B, index_t H, const T* h, const T* dh, T* dpre, T* db, bool relu,
                       bool accumulate) {
  using S = Lanes<T>;
  using V = typename S::V;
  over_columns<T>(B, H, 4.0, [=](index_t j0, int len) {
    V s = S::zero();
    for (index_t b = 0; b < B; ++b) {
      const index_t k = b * H + j0;
      const V y = S::load(h + k, len), g = S::load(dh + k, len);
      const V d = math::rnn_backward<S>(y, g, relu);
      S::store(dpre + k, d, len);
      s += d;
    }
    S::store(db + j0, accumulate ? S::load(db + j0, len) + s : s, len);
  });
}

#define INSTANTIATE(T)                                                                        \
  template void lstm_cell_forward<T>(index_t, index_t, const T*, const T*, const T*, T*, T*,  \
                                     T*);                                                     \
  template void lstm_cell_backward<T>(index_t, index_t, const T*, const T*, const T*,         \
                                      const T*, const T*, T*, T*, T*, bool);                  \
  template void gru_cell_forward<T>(index_t, index_t, const T*, const T*, const T*, const T*, \
                                    const T*, T*, T*);                                        \
  template void gru_cell_backward<T>(index_t, index_t, const T*, const T*, const T*, T*, T*,  \
                                     T*, T*, T*, bool);                                       \
  template void rnn_cell_forward<T>(index_t, index_t, const T*, const T*, T*, bool);          \
  template void rnn_cell_backward<T>(index_t, index_t, const T*, const T*, T*, T*, bool, bool);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

// ---------------------------------------------------------------------------------------
// The recurrence over a whole sequence. Every step multiplies a new (B, H) state by the same
// W_hh, so W_hh is packed for the GEMM micro-kernel once per sequence instead of once per
// step (packing a (H, 4H) operand costs about as much as a third of the step's product at
// batch 64); each step packs only the small state matrix.

namespace {

// op(B) (K,N) packed once: KC-deep chunks, each chunk NR-column panels of kc x NR values.
template <typename T, typename Sh>
class PackedB {
 public:
  PackedB(const T* b, index_t ldb, bool trans, index_t K, index_t N)
      : K_(K), N_(N), panels_(ceil_div(N, Sh::NR)), kc_(K <= 2 * kKC ? K : kKC) {
    buf_.resize(std::max<index_t>(1, K * panels_ * Sh::NR));
    DenseB<T> src{b, ldb, trans, N};
    const index_t chunks = ceil_div(K, kc_);
    // Chunks are independent: pack them in parallel (the transposed gather is the slow part).
#pragma omp parallel for schedule(static) num_threads(threads_for(double(K) * N, 1 << 16))
    for (index_t q = 0; q < chunks; ++q) {
      const index_t k0 = q * kc_, kc = std::min<index_t>(kc_, K - k0);
      for (index_t jp = 0; jp < panels_; ++jp) src.template pack<Sh::NR>(k0, kc, jp, panel(k0, kc, jp));
    }
  }
  T* panel(index_t k0, index_t kc, index_t jp) { return buf_.data() + k0 * panels_ * Sh::NR + jp * kc * Sh::NR; }
  index_t K() const { return K_; }
  index_t N() const { return N_; }
  index_t panels() const { return panels_; }
  // Depth of a chunk: up to 2*KC in one piece, so that each C tile is stored once per step.
  index_t kc() const { return kc_; }

 private:
  index_t K_, N_, panels_, kc_;
  Scratch<T> buf_;
};

// C (M,N) = A (M,K) @ op(B) + beta * C with op(B) prepacked; A row-major, C row-major (ldc N).
// Threads own contiguous ranges of column panels and each packs the (small) A itself.
template <typename T, typename Sh>
void gemm_prepacked(index_t M, const T* a, index_t lda, PackedB<T, Sh>& pb, T beta, T* c,
                    int nthreads) {
  constexpr int MR = Sh::MR, NR = Sh::NR;
  const index_t K = pb.K(), N = pb.N(), panels = pb.panels();
  const index_t m_panels = ceil_div(M, MR);
  const int team = static_cast<int>(std::max<index_t>(1, std::min<index_t>(nthreads, panels)));
#pragma omp parallel num_threads(team) if (team > 1)
  {
    FlushToZero ftz;
    const int t = thread_id(), size = team_size();
    const index_t lo = panels * t / size, hi = panels * (t + 1) / size;
    static thread_local Scratch<T> a_buf;
    const index_t kc_max = pb.kc();
    a_buf.resize(m_panels * MR * kc_max);
    DenseA<T> pa{a, lda, false};
    for (index_t k0 = 0; k0 < K; k0 += kc_max) {
      const index_t kc = std::min<index_t>(kc_max, K - k0);
      const T beta_eff = k0 == 0 ? beta : T(1);
      for (index_t ip = 0; ip < m_panels; ++ip) {
        const int rows = static_cast<int>(std::min<index_t>(MR, M - ip * MR));
        pa.template pack<MR>(ip * MR, rows, k0, kc, a_buf.data() + ip * MR * kc);
      }
      for (index_t jp = lo; jp < hi; ++jp) {
        const int nr = static_cast<int>(std::min<index_t>(NR, N - jp * NR));
        const T* bp = pb.panel(k0, kc, jp);
        for (index_t ip = 0; ip < m_panels; ++ip) {
          const int mr = static_cast<int>(std::min<index_t>(MR, M - ip * MR));
          micro_kernel<T, Sh>(kc, a_buf.data() + ip * MR * kc, bp, c + ip * MR * N + jp * NR, N,
                              T(1), beta_eff, mr, nr);
        }
      }
    }
  }
}

constexpr int kGates[4] = {4, 3, 1, 1};  // lstm, gru, rnn_tanh, rnn_relu

}  // namespace

// xproj (T,B,G*H) in: input projections x W_ih^T (no bias); out: consumed (LSTM: the
// activated gates). w_hh (G*H,H); b_ih, b_hh (G*H); hbuf (T+1,B,H) with h0 at slot 0 (T
// when reverse) -> the states; cbuf (T+1,B,H) LSTM, c0 likewise; act (T,B,4H) GRU.
namespace {

// The register tile that wastes least on an (M, N) product: padded area over real area.
template <typename T>
bool short_tile_wastes_less(index_t M, index_t N) {
  using G = TileGeneral<T>;
  using S = TileShort<T>;
  const double g = double(round_up(M, G::MR)) * round_up(N, G::NR);
  const double sh = double(round_up(M, S::MR)) * round_up(N, S::NR);
  return sh < 0.97 * g;
}

template <typename T, typename Sh>
void recurrence_forward(int mode, index_t Tn, index_t B, index_t H, T* xproj, const T* w_hh,
                        const T* b_ih, const T* b_hh, T* hbuf, T* cbuf, T* act, bool reverse,
                        int nthreads) {
  const index_t GH = kGates[mode] * H, BH = B * H;
  Scratch<T> bias(GH);  // LSTM and RNN: the two biases act as one
  for (index_t j = 0; j < GH; ++j) bias.data()[j] = b_ih[j] + b_hh[j];
  PackedB<T, Sh> wt(w_hh, H, true, H, GH);  // op(B) = W_hh^T (H, G*H)
  const index_t off_out = reverse ? 0 : 1, off_prev = reverse ? 1 : 0;
  Scratch<T> gh_buf;
  if (mode == 1) gh_buf.resize(B * GH);
  for (index_t s = 0; s < Tn; ++s) {
    const index_t t = reverse ? Tn - 1 - s : s;
    T* gates = xproj + t * B * GH;
    const T* h_prev = hbuf + (t + off_prev) * BH;
    T* h_out = hbuf + (t + off_out) * BH;
    if (mode == 0) {
      gemm_prepacked<T, Sh>(B, h_prev, H, wt, T(1), gates, nthreads);
      lstm_cell_forward<T>(B, H, gates, bias.data(), cbuf + (t + off_prev) * BH, h_out,
                           cbuf + (t + off_out) * BH, gates);
    } else if (mode == 1) {
      gemm_prepacked<T, Sh>(B, h_prev, H, wt, T(0), gh_buf.data(), nthreads);
      gru_cell_forward<T>(B, H, gates, gh_buf.data(), b_ih, b_hh, h_prev, h_out,
                          act + t * B * 4 * H);
    } else {
      gemm_prepacked<T, Sh>(B, h_prev, H, wt, T(1), gates, nthreads);
      rnn_cell_forward<T>(B, H, gates, bias.data(), h_out, mode == 3);
    }
  }
}

// Backpropagation through time for rnn_recurrence_forward's buffers. dH (T+1,B,H) in: the
// gradients of the outputs in hbuf's slots (and of h_n added in its slot, the h0 slot zero);
// out: overwritten, dh0 in the h0 slot. dc (B,H) LSTM: in dc_n, out dc0. -> dgx (T,B,G*H)
// gradients of the input projections, dgh (T,B,G*H) of the hidden ones (may be dgx itself
// but for the GRU), dbx, dbh (G*H) their sums over steps and batch (may alias).
template <typename T, typename Sh>
void recurrence_backward(int mode, index_t Tn, index_t B, index_t H, const T* w_hh,
                         const T* hbuf, const T* cbuf, const T* act, T* dH, T* dc, T* dgx, T* dgh,
                         T* dbx, T* dbh, bool reverse, int nthreads) {
  const index_t GH = kGates[mode] * H, BH = B * H;
  PackedB<T, Sh> w(w_hh, H, false, GH, H);  // op(B) = W_hh (G*H, H)
  const index_t off_out = reverse ? 0 : 1, off_prev = reverse ? 1 : 0;
  std::fill(dbx, dbx + GH, T(0));
  std::fill(dbh, dbh + GH, T(0));
  const bool acc = true;  // the bias sums run over all steps; dH's slots hold output grads
  for (index_t s = 0; s < Tn; ++s) {
    const index_t t = reverse ? s : Tn - 1 - s;
    T* dprev = dH + (t + off_prev) * BH;
    const T* dh = dH + (t + off_out) * BH;
    T* dg = dgx + t * B * GH;
    if (mode == 0) {
      lstm_cell_backward<T>(B, H, act + t * B * GH, cbuf + (t + off_prev) * BH,
                            cbuf + (t + off_out) * BH, dh, dc, dg, dc, dbx, acc);
      gemm_prepacked<T, Sh>(B, dg, GH, w, T(1), dprev, nthreads);
    } else if (mode == 1) {
      T* dgh_t = dgh + t * B * GH;
      // dprev already holds the output gradient of its step: the z path adds to it
      gru_cell_backward<T>(B, H, act + t * B * 4 * H, hbuf + (t + off_prev) * BH, dh, dg, dgh_t,
                           dprev, dbx, dbh, acc);
      gemm_prepacked<T, Sh>(B, dgh_t, GH, w, T(1), dprev, nthreads);
    } else {
      rnn_cell_backward<T>(B, H, hbuf + (t + off_out) * BH, dh, dg, dbx, mode == 3, acc);
      gemm_prepacked<T, Sh>(B, dg, GH, w, T(1), dprev, nthreads);
    }
  }
}

}  // namespace

template <typename T>
void rnn_recurrence_forward(int mode, index_t Tn, index_t B, index_t H, T* xproj, const T* w_hh,
                            const T* b_ih, const T* b_hh, T* hbuf, T* cbuf, T* act, bool reverse,
                            int nthreads) {
  FlushToZero ftz;
  if (short_tile_wastes_less<T>(B, kGates[mode] * H))
    recurrence_forward<T, TileShort<T>>(mode, Tn, B, H, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act,
                                        reverse, nthreads);
  else
    recurrence_forward<T, TileGeneral<T>>(mode, Tn, B, H, xproj, w_hh, b_ih, b_hh, hbuf, cbuf,
                                          act, reverse, nthreads);
}

template <typename T>
void rnn_recurrence_backward(int mode, index_t Tn, index_t B, index_t H, const T* w_hh,
                             const T* hbuf, const T* cbuf, const T* act, T* dH, T* dc, T* dgx,
                             T* dgh, T* dbx, T* dbh, bool reverse, int nthreads) {
  FlushToZero ftz;
  if (short_tile_wastes_less<T>(B, H))
    recurrence_backward<T, TileShort<T>>(mode, Tn, B, H, w_hh, hbuf, cbuf, act, dH, dc, dgx, dgh,
                                         dbx, dbh, reverse, nthreads);
  else
    recurrence_backward<T, TileGeneral<T>>(mode, Tn, B, H, w_hh, hbuf, cbuf, act, dH, dc, dgx,
                                           dgh, dbx, dbh, reverse, nthreads);
}

#define INSTANTIATE_SEQ(T)                                                                   \
  template void rnn_recurrence_forward<T>(int, index_t, index_t, index_t, T*, const T*,      \
                                          const T*, const T*, T*, T*, T*, bool, int);        \
  template void rnn_recurrence_backward<T>(int, index_t, index_t, index_t, const T*,        \
                                           const T*, const T*, const T*, T*, T*, T*, T*, T*, \
                                           T*, bool, int);
INSTANTIATE_SEQ(float)
INSTANTIATE_SEQ(double)
#undef INSTANTIATE_SEQ

}  // namespace convnet
