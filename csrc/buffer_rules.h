// The buffer rules of every kernel of the manifest (convnet/kernels/spec.py), for both
// pybind11 layers: from the sizes a kernel is given, the elements each of its arrays must
// hold (arguments in the manifest's order), and the size checks without which a kernel
// could divide by zero or index past its buffers. bind_cpu.cpp takes the sizes from the
// arrays' shapes, bind_cuda.cpp from the adapter's arguments; both check the arrays'
// element counts against these rules. tests/kernels/test_bindings_raw.py calls every
// kernel of both with undersized buffers and overflowing sizes.
#pragma once

#include <initializer_list>
#include <string>

#include "convnet/bind_checks.h"
#include "convnet/epilogue_math.h"
#include "cpu/kernels.h"  // ConvGeom, PoolGeom, UpsampleGeom

namespace convnet::rules {

using bind::Need;
using bind::product;
using bind::Rule;

// ---- sizes: checked once per call, before any buffer rule uses them. Only the sizes the
// boundary requires positive are (an empty input plane is padding only, and kernels
// without a window take empty batches).

inline void conv(const char* k, const ConvGeom& g) {
  bind::in_range(k, "sizes", {g.N, g.C, g.K, g.R, g.S, g.P, g.Q}, 1);
  bind::in_range(k, "input sizes", {g.H, g.W}, 0);
  bind::in_range(k, "stride and dilation", {g.sh, g.sw, g.dh, g.dw}, 1);
  bind::in_range(k, "padding", {g.ph, g.pw}, 0);
}

inline void pool(const char* k, const PoolGeom& g) {
  bind::in_range(k, "sizes", {g.N, g.C, g.H, g.W, g.P, g.Q}, 1);
  bind::in_range(k, "kernel size and stride", {g.kh, g.kw, g.sh, g.sw}, 1);
  bind::in_range(k, "padding", {g.ph, g.pw}, 0);
}

inline void upsample(const char* k, const UpsampleGeom& g, double scale_h, double scale_w) {
  bind::in_range(k, "sizes", {g.N, g.C, g.H, g.W, g.P, g.Q}, 1);
  // a given scale maps output d to input d / scale; past the input the source index would
  // be converted from an out-of-range float
  const index_t in[2] = {g.H, g.W}, out[2] = {g.P, g.Q};
  const double scale[2] = {scale_h, scale_w};
  for (int i = 0; i < 2; ++i)
    if (scale[i] > 0 && (out[i] - 1) / scale[i] >= in[i] + 1)
      bind::fail(k, "a scale of " + std::to_string(scale[i]) + " maps outside the input");
}

inline void cell(const char* k, index_t B, index_t H) { bind::in_range(k, "B and H", {B, H}, 1); }

inline int gates(const char* k, int mode) {
  if (mode < 0 || mode > 3) bind::fail(k, "mode: expected 0 (lstm) .. 3 (rnn_relu)");
  static const int g[4] = {4, 3, 1, 1};
  return g[mode];
}

// ---- the rules

inline Rule gemm(bool ta, bool tb, index_t M, index_t N, index_t K, index_t lda, index_t ldb,
                 index_t ldc) {
  const char* k = "gemm";
  product(k, {M, N, K});
  // leading dimensions: the row length of a, b, c as stored
  if (lda < (ta ? M : K) || ldb < (tb ? K : N) || ldc < N)
    bind::fail(k, "leading dimensions smaller than the rows they hold");
  return {k, {{"a", product(k, {ta ? K : M, lda})}, {"b", product(k, {tb ? N : K, ldb})},
              {"c", product(k, {M, ldc})}}};
}

inline index_t nchw(const char* k, const ConvGeom& g) { return product(k, {g.N, g.C, g.H, g.W}); }
inline index_t nkpq(const char* k, const ConvGeom& g) { return product(k, {g.N, g.K, g.P, g.Q}); }
inline index_t kcrs(const char* k, const ConvGeom& g) { return product(k, {g.K, g.C, g.R, g.S}); }

inline Rule conv2d_forward(const ConvGeom& g) {
  const char* k = "conv2d_forward";
  conv(k, g);
  return {k, {{"x", nchw(k, g)}, {"w", kcrs(k, g)}, {"b", g.K, true}, {"y", nkpq(k, g)}}};
}

// The fused forward passes (bias and activation in the epilogue): the same buffers.
inline Rule conv2d_forward_act(const ConvGeom& g) {
  Rule r = conv2d_forward(g);
  r.kernel = "conv2d_forward_act";
  return r;
}

inline Rule linear_forward_act(index_t M, index_t N, index_t K) {
  const char* k = "linear_forward_act";
  bind::in_range(k, "sizes", {M, N, K}, 0);
  return {k, {{"x", product(k, {M, K})}, {"w", product(k, {N, K})}, {"b", N, true},
              {"y", product(k, {M, N})}}};
}

// An activation code of convnet/epilogue_math.h (the epilogue switches on it).
inline void activation_code(const char* k, int act) {
  if (act < 0 || act >= math::kActEnd) bind::fail(k, "act: unknown activation code " +
                                                         std::to_string(act));
}

inline Rule conv2d_backward_data(const ConvGeom& g) {
  const char* k = "conv2d_backward_data";
  conv(k, g);
  return {k, {{"dy", nkpq(k, g)}, {"w", kcrs(k, g)}, {"dx", nchw(k, g)}}};
}

inline Rule conv2d_backward_weight(const ConvGeom& g) {
  const char* k = "conv2d_backward_weight";
  conv(k, g);
  return {k, {{"dy", nkpq(k, g)}, {"x", nchw(k, g)}, {"dw_out", kcrs(k, g)}}};
}

inline Rule conv2d_backward_bias(index_t N, index_t K, index_t P, index_t Q) {
  const char* k = "conv2d_backward_bias";
  return {k, {{"dy", product(k, {N, K, P, Q})}, {"db", K}}};
}

// Pooling: input (N,C,H,W), output and indices (N,C,P,Q), in the order `names` gives them.
inline Rule pool2d(const char* k, const PoolGeom& g, std::initializer_list<const char*> names,
                   bool window = true) {
  if (window) pool(k, g);
  const index_t in = product(k, {g.N, g.C, g.H, g.W}), out = product(k, {g.N, g.C, g.P, g.Q});
  Rule r{k, {}};
  for (const char* n : names) {
    const std::string s(n);
    r.add({n, s == "x" || s == "dx" ? in : out});
  }
  return r;
}

inline Rule max_pool2d_forward(const PoolGeom& g) {
  return pool2d("max_pool2d_forward", g, {"x", "y", "indices"});
}
inline Rule max_pool2d_backward(const PoolGeom& g) {
  return pool2d("max_pool2d_backward", g, {"dy", "indices", "dx"}, false);  // window unused
}
inline Rule avg_pool2d_forward(const PoolGeom& g) {
  return pool2d("avg_pool2d_forward", g, {"x", "y"});
}
inline Rule avg_pool2d_backward(const PoolGeom& g) {
  return pool2d("avg_pool2d_backward", g, {"dy", "dx"});
}

// Batch norm: (N,C,L) arrays and per-channel (C) ones, named in argument order; a name in
// `full` is (N,C,L).
inline Rule batch_norm(const char* k, index_t N, index_t C, index_t L,
                       std::initializer_list<const char*> names,
                       std::initializer_list<const char*> full) {
  bind::in_range(k, "N and L", {N, L}, 1);
  bind::in_range(k, "C", {C}, 0);
  const index_t ncl = product(k, {N, C, L});
  Rule r{k, {}};
  for (const char* n : names) {
    bool is_full = false;
    for (const char* f : full) is_full |= std::string(f) == n;
    r.add({n, is_full ? ncl : C});
  }
  return r;
}

inline Rule batch_norm_forward_training(index_t N, index_t C, index_t L) {
  return batch_norm("batch_norm_forward_training", N, C, L,
                    {"x", "weight", "bias", "y", "mean", "var", "invstd"}, {"x", "y"});
}
inline Rule batch_norm_forward_inference(index_t N, index_t C, index_t L) {
  return batch_norm("batch_norm_forward_inference", N, C, L,
                    {"x", "weight", "bias", "running_mean", "running_var", "y"}, {"x", "y"});
}
inline Rule batch_norm_backward(index_t N, index_t C, index_t L) {
  return batch_norm("batch_norm_backward", N, C, L,
                    {"dy", "x", "weight", "mean", "invstd", "dx", "dweight", "dbias"},
                    {"dy", "x", "dx"});
}

// Element-wise kernels: every array holds n elements.
inline Rule elementwise(const char* k, index_t n, std::initializer_list<const char*> names) {
  if (n < 0) bind::fail(k, "n must be >= 0");
  Rule r{k, {}};
  for (const char* a : names) r.add({a, n});
  return r;
}

// Recurrent cells: every array is (B, mult*H), or (mult*H) when not batched (the biases).
struct CellArray {
  const char* name;
  int mult;
  bool batched = true;
};
inline Rule cell(const char* k, index_t B, index_t H, std::initializer_list<CellArray> arrays) {
  cell(k, B, H);
  Rule r{k, {}};
  for (const CellArray& a : arrays)
    r.add({a.name, a.batched ? product(k, {B, a.mult, H}) : product(k, {a.mult, H})});
  return r;
}

inline Rule lstm_cell_forward(index_t B, index_t H) {
  return cell("lstm_cell_forward", B, H,
              {{"gates", 4}, {"bias", 4, false}, {"c_prev", 1}, {"h", 1}, {"c", 1}, {"act", 4}});
}
inline Rule lstm_cell_backward(index_t B, index_t H) {
  return cell("lstm_cell_backward", B, H,
              {{"act", 4}, {"c_prev", 1}, {"c", 1}, {"dh", 1}, {"dc", 1}, {"dgates", 4},
               {"dc_prev", 1}, {"db", 4, false}});
}
inline Rule gru_cell_forward(index_t B, index_t H) {
  return cell("gru_cell_forward", B, H,
              {{"gx", 3}, {"gh", 3}, {"b_ih", 3, false}, {"b_hh", 3, false}, {"h_prev", 1},
               {"h", 1}, {"act", 4}});
}
inline Rule gru_cell_backward(index_t B, index_t H) {
  return cell("gru_cell_backward", B, H,
              {{"act", 4}, {"h_prev", 1}, {"dh", 1}, {"dgx", 3}, {"dgh", 3}, {"dh_prev", 1},
               {"dbx", 3, false}, {"dbh", 3, false}});
}
inline Rule rnn_cell_forward(index_t B, index_t H) {
  return cell("rnn_cell_forward", B, H, {{"pre", 1}, {"bias", 1, false}, {"h", 1}});
}
inline Rule rnn_cell_backward(index_t B, index_t H) {
  return cell("rnn_cell_backward", B, H, {{"h", 1}, {"dh", 1}, {"dpre", 1}, {"db", 1, false}});
}

// The recurrence over Tn steps (mode 0 lstm, 1 gru, 2 rnn_tanh, 3 rnn_relu): states
// (Tn+1,B,H), per-step gates (Tn,B,G*H), weights (G*H,H); cbuf is the LSTM's, act the
// GRU's (and, backward, the LSTM's activated gates).
inline Rule rnn_recurrence_forward(int mode, index_t Tn, index_t B, index_t H) {
  const char* k = "rnn_recurrence_forward";
  const index_t G = gates(k, mode);
  bind::in_range(k, "T, B and H", {Tn, B, H}, 1);
  const index_t state = product(k, {Tn + 1, B, H});
  return {k, {{"xproj", product(k, {Tn, B, G, H})}, {"w_hh", product(k, {G, H, H})},
              {"b_ih", G * H}, {"b_hh", G * H}, {"hbuf", state},
              {"cbuf", mode == 0 ? state : -1},
              {"act", mode == 1 ? product(k, {Tn, B, 4, H}) : -1}}};
}

inline Rule rnn_recurrence_backward(int mode, index_t Tn, index_t B, index_t H) {
  const char* k = "rnn_recurrence_backward";
  const index_t G = gates(k, mode);
  bind::in_range(k, "T, B and H", {Tn, B, H}, 1);
  const index_t state = product(k, {Tn + 1, B, H}), steps = product(k, {Tn, B, G, H});
  return {k, {{"w_hh", product(k, {G, H, H})}, {"hbuf", state}, {"cbuf", mode == 0 ? state : -1},
              {"act", mode <= 1 ? product(k, {Tn, B, mode == 1 ? 4 : G, H}) : -1},
              {"dH", state}, {"dc", mode == 0 ? B * H : -1}, {"dgx", steps}, {"dgh", steps},
              {"dbx", G * H}, {"dbh", G * H}}};
}

inline Rule upsample2d(const char* k, const UpsampleGeom& g, double scale_h, double scale_w,
                       bool forward) {
  upsample(k, g, scale_h, scale_w);
  const index_t in = product(k, {g.N, g.C, g.H, g.W}), out = product(k, {g.N, g.C, g.P, g.Q});
  if (forward) return {k, {{"x", in}, {"y", out}}};
  return {k, {{"dy", out}, {"dx", in}}};
}

}  // namespace convnet::rules
