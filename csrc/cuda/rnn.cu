// Fused element-wise cells of the recurrent layers (LSTM, GRU, plain tanh/ReLU RNN) and the
// recurrence over a whole sequence. Mirrors csrc/cpu/rnn.cpp: the same formulas, from
// convnet/kernel_math.h (precise libdevice exp/tanh: built without --use_fast_math), same
// gate order (LSTM i, f, g, o; GRU r, z, n with n = tanh(x_n + r * (W_hn h + b_hn))), same
// saved activations and the same buffer layouts and aliasing rules.
//
// Cell forward: one thread per (row, column) of the (B, H) state in a grid-stride loop.
// Cell backward also sums every gate gradient over the batch (the bias gradients): a block
// owns 32 columns, its 8 warps take every 8th row, and the 8 partial sums of a column are
// added in a fixed order, so the sums are deterministic and need no atomics.
//
// Recurrence: per step the h_{t-1} @ W_hh^T product on the tiled GEMM of gemm.cu, queued on
// the same stream, then the fused cell. The GRU's hidden projection goes into the first 3H
// columns of its step's act row (ldc 4H), which the cell then overwrites with r, z, n, hn:
// no scratch buffer.
#include <cuda_runtime.h>

#include <cmath>

#include "convnet/cuda_utils.cuh"
#include "convnet/kernel_math.h"
#include "kernels.cuh"

namespace convnet {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kCols = 32;                  // columns per block in the backward kernels
constexpr int kRowLanes = kThreads / kCols;  // rows taken at once

// Grid-stride loop over the B*H states; f(b, j).
template <typename F>
__global__ void cell_forward_kernel(index_t B, index_t H, F f) {
  const index_t n = B * H;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    f(i / H, i % H);
}

template <typename F>
void launch_forward(index_t B, index_t H, F f, cudaStream_t stream) {
  if (B * H <= 0) return;
  const unsigned grid = grid_for(B * H, kThreads, 16 * index_t(sm_count()));
  CONVNET_LAUNCH(grid, kThreads, 0, stream, cell_forward_kernel)(B, H, f);
  CUDA_CHECK_LAUNCH();
}

// Column j = blockIdx.x * 32 + lane, rows lane_row, lane_row + 8, ...: f(b, j, sums) adds
// its NS gate gradients to sums; then the column sums go to out(j, q, total).
template <typename T, int NS, typename F, typename Out>
__global__ void cell_backward_kernel(index_t B, index_t H, F f, Out out) {
  __shared__ T partial[NS][kRowLanes][kCols];
  const int lane = threadIdx.x % kCols, row = threadIdx.x / kCols;
  const index_t j = blockIdx.x * index_t(kCols) + lane;
  T sums[NS];
#pragma unroll
  for (int q = 0; q < NS; ++q) sums[q] = T(0);
  if (j < H)
    for (index_t b = row; b < B; b += kRowLanes) f(b, j, sums);
#pragma unroll
  for (int q = 0; q < NS; ++q) partial[q][row][lane] = sums[q];
  __syncthreads();
  if (row == 0 && j < H) {
#pragma unroll
    for (int q = 0; q < NS; ++q) {
      T s = partial[q][0][lane];
      for (int r = 1; r < kRowLanes; ++r) s += partial[q][r][lane];
      out(j, q, s);
    }
  }
}

template <typename T, int NS, typename F, typename Out>
void launch_backward(index_t B, index_t H, F f, Out out, cudaStream_t stream) {
  if (H <= 0) return;
  const unsigned grid = static_cast<unsigned>(ceil_div(H, kCols));
  CONVNET_LAUNCH(grid, kThreads, 0, stream, cell_backward_kernel<T, NS, F, Out>)(B, H, f, out);
  CUDA_CHECK_LAUNCH();
}

// db[q*H + j] = s, or += s when accumulate (dbx/dbh of the GRU: two destinations).
template <typename T>
struct BiasOut {
  T* db;
  index_t H;
  bool accumulate;
  __device__ void operator()(index_t j, int q, T s) const {
    T* p = db + q * H + j;
    *p = accumulate ? *p + s : s;
  }
};

template <typename T>
struct GruBiasOut {
  T *dbx, *dbh;
  index_t H;
  bool accumulate;
  // sums: r, z, n (of dgx) and hn (of dgh's n part); dgh's r and z equal dgx's
  __device__ void operator()(index_t j, int q, T s) const {
    if (q < 3) {
      T* p = dbx + q * H + j;
      *p = accumulate ? *p + s : s;
    }
    if (q != 2) {
      T* p = dbh + (q == 3 ? 2 : q) * H + j;
      *p = accumulate ? *p + s : s;
    }
  }
};

// bias = b1 + b2 (b2 may be null): the recurrence passes b_ih and b_hh apart and the sum is
// formed per element, as the CPU forms it once per sequence.
template <typename T>
struct LstmForward {
  const T *gates, *b1, *b2, *c_prev;
  T *h, *c, *act;
  index_t H;
  __device__ void operator()(index_t b, index_t j) const {
    const T* gr = gates + b * 4 * H + j;
    T* ar = act + b * 4 * H + j;
    auto bias = [&](int q) { return b2 ? b1[q * H + j] + b2[q * H + j] : b1[q * H + j]; };
    const index_t k = b * H + j;
    const auto st = math::lstm_forward<math::ScalarOps<T>>(
        gr[0] + bias(0), gr[H] + bias(1), gr[2 * H] + bias(2), gr[3 * H] + bias(3), c_prev[k]);
    c[k] = st.c;
    h[k] = st.h;
    ar[0] = st.i;
    ar[H] = st.f;
    ar[2 * H] = st.g;
    ar[3 * H] = st.o;
  }
};

template <typename T>
struct LstmBackward {
  const T *act, *c_prev, *c, *dh, *dc;
  T *dgates, *dc_prev;
  index_t H;
  __device__ void operator()(index_t b, index_t j, T (&s)[4]) const {
    const T* ar = act + b * 4 * H + j;
    T* dr = dgates + b * 4 * H + j;
    const index_t k = b * H + j;
    const auto d = math::lstm_backward<math::ScalarOps<T>>(ar[0], ar[H], ar[2 * H], ar[3 * H],
                                                           c[k], c_prev[k], dh[k], dc[k]);
    dc_prev[k] = d.dc_prev;
    dr[0] = d.di;
    dr[H] = d.df;
    dr[2 * H] = d.dg;
    dr[3 * H] = d.d_o;
    s[0] += d.di;
    s[1] += d.df;
    s[2] += d.dg;
    s[3] += d.d_o;
  }
};

// gh row stride ldgh: 3H for a (B,3H) array, 4H when gh lives in act's rows (recurrence).
template <typename T>
struct GruForward {
  const T *gx, *gh, *b_ih, *b_hh, *h_prev;
  T *h, *act;
  index_t H, ldgh;
  __device__ void operator()(index_t b, index_t j) const {
    const T* xr = gx + b * 3 * H + j;
    const T* hr = gh + b * ldgh + j;
    const T br = b_ih[j] + b_hh[j], bz = b_ih[H + j] + b_hh[H + j];
    const T hn = hr[2 * H] + b_hh[2 * H + j];
    const index_t k = b * H + j;
    const auto st = math::gru_forward<math::ScalarOps<T>>(
        xr[0] + hr[0] + br, xr[H] + hr[H] + bz, xr[2 * H] + b_ih[2 * H + j], hn, h_prev[k]);
    T* ar = act + b * 4 * H + j;  // may be hr's row: every read above comes first
    h[k] = st.h;
    ar[0] = st.r;
    ar[H] = st.z;
    ar[2 * H] = st.n;
    ar[3 * H] = hn;
  }
};

template <typename T>
struct GruBackward {
  const T *act, *h_prev, *dh;
  T *dgx, *dgh, *dh_prev;
  index_t H;
  bool accumulate;
  __device__ void operator()(index_t b, index_t j, T (&s)[4]) const {
    const T* ar = act + b * 4 * H + j;
    const index_t k = b * H + j;
    const auto d = math::gru_backward<math::ScalarOps<T>>(ar[0], ar[H], ar[2 * H], ar[3 * H],
                                                          h_prev[k], dh[k]);
    T* xo = dgx + b * 3 * H + j;
    T* ho = dgh + b * 3 * H + j;
    xo[0] = d.dr;
    xo[H] = d.dz;
    xo[2 * H] = d.dn;
    ho[0] = d.dr;
    ho[H] = d.dz;
    ho[2 * H] = d.dhn;
    dh_prev[k] = accumulate ? dh_prev[k] + d.dh_prev : d.dh_prev;
    s[0] += d.dr;
    s[1] += d.dz;
    s[2] += d.dn;
    s[3] += d.dhn;
  }
};

template <typename T>
struct RnnForward {
  const T *pre, *b1, *b2;
  T* h;
  index_t H;
  bool relu;
  __device__ void operator()(index_t b, index_t j) const {
    const index_t k = b * H + j;
    const T v = pre[k] + (b2 ? b1[j] + b2[j] : b1[j]);
    h[k] = math::rnn_forward<math::ScalarOps<T>>(v, relu);
  }
};

template <typename T>
struct RnnBackward {
  const T *h, *dh;
  T* dpre;
  index_t H;
  bool relu;
  __device__ void operator()(index_t b, index_t j, T (&s)[1]) const {
    const index_t k = b * H + j;
    const T d = math::rnn_backward<math::ScalarOps<T>>(h[k], dh[k], relu);
    dpre[k] = d;
    s[0] += d;
  }
};

}  // namespace

// gates (B,4H) pre-activations i,f,g,o without the bias, bias (4H) = b_ih + b_hh; c_prev
// (B,H) -> h, c (B,H), act (B,4H) activated (act may be gates itself)
template <typename T>
void lstm_cell_forward(index_t B, index_t H, const T* gates, const T* bias, const T* c_prev, T* h,
                       T* c, T* act, cudaStream_t stream) {
  launch_forward(B, H, LstmForward<T>{gates, bias, nullptr, c_prev, h, c, act, H}, stream);
}

// act (B,4H), c_prev, c, dh (B,H), dc (B,H): gradient reaching c_t from step t+1 ->
// dgates (B,4H), dc_prev (B,H) (may be dc itself), db (4H) column sums of dgates (added to
// when accumulate)
template <typename T>
void lstm_cell_backward(index_t B, index_t H, const T* act, const T* c_prev, const T* c,
                        const T* dh, const T* dc, T* dgates, T* dc_prev, T* db, bool accumulate,
                        cudaStream_t stream) {
  launch_backward<T, 4>(B, H, LstmBackward<T>{act, c_prev, c, dh, dc, dgates, dc_prev, H},
                        BiasOut<T>{db, H, accumulate}, stream);
}

// gx (B,3H) = x W_ih^T, gh (B,3H) = h_prev W_hh^T (no biases), b_ih, b_hh (3H), h_prev (B,H)
// -> h (B,H), act (B,4H): r, z, n and hn = gh_n + b_hn
template <typename T>
void gru_cell_forward(index_t B, index_t H, const T* gx, const T* gh, const T* b_ih,
                      const T* b_hh, const T* h_prev, T* h, T* act, cudaStream_t stream) {
  launch_forward(B, H, GruForward<T>{gx, gh, b_ih, b_hh, h_prev, h, act, H, 3 * H}, stream);
}

// act (B,4H), h_prev, dh (B,H) -> dgx, dgh (B,3H), dh_prev (B,H) = dh * z, dbx, dbh (3H)
// column sums; with accumulate, dh_prev, dbx and dbh are added to
template <typename T>
void gru_cell_backward(index_t B, index_t H, const T* act, const T* h_prev, const T* dh, T* dgx,
                       T* dgh, T* dh_prev, T* dbx, T* dbh, bool accumulate,
                       cudaStream_t stream) {
  launch_backward<T, 4>(B, H, GruBackward<T>{act, h_prev, dh, dgx, dgh, dh_prev, H, accumulate},
                        GruBiasOut<T>{dbx, dbh, H, accumulate}, stream);
}

// pre (B,H), bias (H) -> h (B,H) = tanh or relu of pre + bias (h may be pre itself)
template <typename T>
void rnn_cell_forward(index_t B, index_t H, const T* pre, const T* bias, T* h, bool relu,
                      cudaStream_t stream) {
  launch_forward(B, H, RnnForward<T>{pre, bias, nullptr, h, H, relu}, stream);
}

// h (B,H) the cell's output, dh (B,H) -> dpre (B,H), db (H) column sums (added to when
// accumulate)
template <typename T>
void rnn_cell_backward(index_t B, index_t H, const T* h, const T* dh, T* dpre, T* db, bool relu,
                       bool accumulate, cudaStream_t stream) {
  launch_backward<T, 1>(B, H, RnnBackward<T>{h, dh, dpre, H, relu},
                        BiasOut<T>{db, H, accumulate}, stream);
}

namespace {
constexpr int kGates[4] = {4, 3, 1, 1};  // lstm, gru, rnn_tanh, rnn_relu
}  // namespace

// xproj (T,B,G*H) in: x W_ih^T (no bias); out: consumed (LSTM: the activated gates). w_hh
// (G*H,H); b_ih, b_hh (G*H); hbuf (T+1,B,H) with h0 at slot 0 (T when reverse) -> the
// states; cbuf (T+1,B,H) LSTM, c0 likewise; act (T,B,4H) GRU.
template <typename T>
void rnn_recurrence_forward(int mode, index_t Tn, index_t B, index_t H, T* xproj, const T* w_hh,
                            const T* b_ih, const T* b_hh, T* hbuf, T* cbuf, T* act, bool reverse,
                            cudaStream_t stream) {
  const index_t GH = kGates[mode] * H, BH = B * H;
  const index_t off_out = reverse ? 0 : 1, off_prev = reverse ? 1 : 0;
  for (index_t s = 0; s < Tn; ++s) {
    const index_t t = reverse ? Tn - 1 - s : s;
    T* gates = xproj + t * B * GH;
    const T* h_prev = hbuf + (t + off_prev) * BH;
    T* h_out = hbuf + (t + off_out) * BH;
    if (mode == 1) {
      T* act_t = act + t * B * 4 * H;
      gemm<T>(false, true, B, GH, H, T(1), h_prev, H, w_hh, H, T(0), act_t, 4 * H, stream);
      launch_forward(B, H,
                     GruForward<T>{gates, act_t, b_ih, b_hh, h_prev, h_out, act_t, H, 4 * H},
                     stream);
    } else {
      gemm<T>(false, true, B, GH, H, T(1), h_prev, H, w_hh, H, T(1), gates, GH, stream);
      if (mode == 0)
        launch_forward(B, H,
                       LstmForward<T>{gates, b_ih, b_hh, cbuf + (t + off_prev) * BH, h_out,
                                      cbuf + (t + off_out) * BH, gates, H},
                       stream);
      else
        launch_forward(B, H, RnnForward<T>{gates, b_ih, b_hh, h_out, H, mode == 3}, stream);
    }
  }
}

// Backpropagation through time for rnn_recurrence_forward's buffers. dH (T+1,B,H) in: the
// output gradients in hbuf's slots (h_n's added in its slot, the h0 slot zero); out:
// overwritten, dh0 in the h0 slot. dc (B,H) LSTM: in dc_n, out dc0. -> dgx (T,B,G*H), dgh
// (T,B,G*H) (may be dgx itself but for the GRU), dbx, dbh (G*H) sums over steps and batch
// (may alias).
template <typename T>
void rnn_recurrence_backward(int mode, index_t Tn, index_t B, index_t H, const T* w_hh,
                             const T* hbuf, const T* cbuf, const T* act, T* dH, T* dc, T* dgx,
                             T* dgh, T* dbx, T* dbh, bool reverse, cudaStream_t stream) {
  const index_t GH = kGates[mode] * H, BH = B * H;
  const index_t off_out = reverse ? 0 : 1, off_prev = reverse ? 1 : 0;
  CUDA_CHECK(cudaMemsetAsync(dbx, 0, sizeof(T) * GH, stream));
  CUDA_CHECK(cudaMemsetAsync(dbh, 0, sizeof(T) * GH, stream));
  for (index_t s = 0; s < Tn; ++s) {
    const index_t t = reverse ? s : Tn - 1 - s;
    T* dprev = dH + (t + off_prev) * BH;
    const T* dh = dH + (t + off_out) * BH;
    T* dg = dgx + t * B * GH;
    const T* dmul = dg;  // what multiplies W_hh into dprev
    if (mode == 0) {
      lstm_cell_backward<T>(B, H, act + t * B * GH, cbuf + (t + off_prev) * BH,
                            cbuf + (t + off_out) * BH, dh, dc, dg, dc, dbx, true, stream);
    } else if (mode == 1) {
      T* dgh_t = dgh + t * B * GH;
      // dprev already holds the output gradient of its step: the z path adds to it
      gru_cell_backward<T>(B, H, act + t * B * 4 * H, hbuf + (t + off_prev) * BH, dh, dg, dgh_t,
                           dprev, dbx, dbh, true, stream);
      dmul = dgh_t;
    } else {
      rnn_cell_backward<T>(B, H, hbuf + (t + off_out) * BH, dh, dg, dbx, mode == 3, true,
                           stream);
    }
    gemm<T>(false, false, B, H, GH, T(1), dmul, GH, w_hh, H, T(1), dprev, H, stream);
  }
}

#define INSTANTIATE(T)                                                                       \
  template void lstm_cell_forward<T>(index_t, index_t, const T*, const T*, const T*, T*, T*, \
                                     T*, cudaStream_t);                                      \
  template void lstm_cell_backward<T>(index_t, index_t, const T*, const T*, const T*,        \
                                      const T*, const T*, T*, T*, T*, bool, cudaStream_t);   \
  template void gru_cell_forward<T>(index_t, index_t, const T*, const T*, const T*,          \
                                    const T*, const T*, T*, T*, cudaStream_t);               \
  template void gru_cell_backward<T>(index_t, index_t, const T*, const T*, const T*, T*, T*, \
                                     T*, T*, T*, bool, cudaStream_t);                        \
  template void rnn_cell_forward<T>(index_t, index_t, const T*, const T*, T*, bool,          \
                                    cudaStream_t);                                           \
  template void rnn_cell_backward<T>(index_t, index_t, const T*, const T*, T*, T*, bool,     \
                                     bool, cudaStream_t);                                    \
  template void rnn_recurrence_forward<T>(int, index_t, index_t, index_t, T*, const T*,      \
                                          const T*, const T*, T*, T*, T*, bool,              \
                                          cudaStream_t);                                     \
  template void rnn_recurrence_backward<T>(int, index_t, index_t, index_t, const T*,        \
                                           const T*, const T*, const T*, T*, T*, T*, T*, T*, \
                                           T*, bool, cudaStream_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace cuda
}  // namespace convnet
