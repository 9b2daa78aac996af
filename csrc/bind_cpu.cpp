// convnet._C: thin pybind11 layer over csrc/cpu. It checks what could crash a kernel
// (dtype, rank, contiguity, sizes) and forwards pointers; all math lives in csrc/cpu.
// The friendly argument validation users see is in convnet/kernels (Python).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "convnet/common.h"
#include "cpu/kernels.h"

namespace py = pybind11;
using convnet::index_t;

namespace {

template <typename T>
using Arr = py::array_t<T, 0>;  // no forcecast: a wrong dtype is refused, never copied

template <typename T>
void need(const Arr<T>& a, const char* name, int ndim) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) +
                          "-D array, got " + std::to_string(a.ndim()) + "-D");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
}

template <typename T>
void need_shape(const Arr<T>& a, const char* name, std::initializer_list<index_t> shape) {
  need(a, name, static_cast<int>(shape.size()));
  int d = 0;
  for (index_t s : shape) {
    if (a.shape(d) != s)
      throw py::value_error(std::string(name) + ": dimension " + std::to_string(d) + " is " +
                            std::to_string(a.shape(d)) + ", expected " + std::to_string(s));
    ++d;
  }
}

template <typename T>
void gemm(Arr<T> a, Arr<T> b, Arr<T> c, double alpha, double beta, bool trans_a, bool trans_b) {
  need(a, "a", 2);
  need(b, "b", 2);
  const index_t M = trans_a ? a.shape(1) : a.shape(0);
  const index_t K = trans_a ? a.shape(0) : a.shape(1);
  const index_t Kb = trans_b ? b.shape(1) : b.shape(0);
  const index_t N = trans_b ? b.shape(0) : b.shape(1);
  if (K != Kb) throw py::value_error("gemm: inner dimensions differ");
  need_shape(c, "c", {M, N});
  const T* pa = a.data();
  const T* pb = b.data();
  T* pc = c.mutable_data();
  const int nt = convnet::threads_for(double(M) * N * K, 1 << 18);
  py::gil_scoped_release nogil;
  convnet::gemm<T>(trans_a, trans_b, M, N, K, T(alpha), pa, a.shape(1), pb, b.shape(1), T(beta),
                   pc, N, nt);
}

template <typename T>
convnet::ConvGeom conv_geom(const Arr<T>& x, const Arr<T>& w, const Arr<T>& y, index_t sh,
                            index_t sw, index_t ph, index_t pw, index_t dh, index_t dw) {
  need(x, "x", 4);
  need(w, "w", 4);
  need(y, "y", 4);
  convnet::ConvGeom g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2),
                      w.shape(3), y.shape(2),  y.shape(3), sh,         sw,         ph,
                      pw,         dh,         dw};
  if (w.shape(1) != g.C) throw py::value_error("w: input channels differ from x's");
  if (y.shape(0) != g.N || y.shape(1) != g.K) throw py::value_error("y: wrong batch/channels");
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || ph < 0 || pw < 0)
    throw py::value_error("stride/dilation must be >= 1 and padding >= 0");
  // Any output size is in bounds (the kernels clip every window to the input, the rest is
  // padding, which is how asymmetric padding reaches them); the geometry is checked in
  // Python (convnet/kernels/_boundary.py).
  if (g.P < 1 || g.Q < 1) throw py::value_error("y: empty output");
  return g;
}

template <typename T>
const T* optional_data(const py::object& o, const char* name, index_t n) {
  if (o.is_none()) return nullptr;
  auto a = o.cast<Arr<T>>();
  need_shape(a, name, {n});
  return a.data();
}

template <typename T>
void conv2d_forward(Arr<T> x, Arr<T> w, py::object b, Arr<T> y, index_t sh, index_t sw,
                    index_t ph, index_t pw, index_t dh, index_t dw) {
  auto g = conv_geom(x, w, y, sh, sw, ph, pw, dh, dw);
  Arr<T> bias_holder = b.is_none() ? Arr<T>() : b.cast<Arr<T>>();
  const T* pb = optional_data<T>(b, "b", g.K);
  const T *px = x.data(), *pw_ = w.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_forward<T>(g, px, pw_, pb, py_);
}

template <typename T>
void conv2d_backward_data(Arr<T> dy, Arr<T> w, Arr<T> dx, index_t sh, index_t sw, index_t ph,
                          index_t pw, index_t dh, index_t dw) {
  auto g = conv_geom(dx, w, dy, sh, sw, ph, pw, dh, dw);
  const T *pdy = dy.data(), *pw_ = w.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_backward_data<T>(g, pdy, pw_, pdx);
}

template <typename T>
void conv2d_backward_weight(Arr<T> dy, Arr<T> x, Arr<T> dw_out, index_t sh, index_t sw,
                            index_t ph, index_t pw, index_t dh, index_t dw) {
  auto g = conv_geom(x, dw_out, dy, sh, sw, ph, pw, dh, dw);
  const T *pdy = dy.data(), *px = x.data();
  T* pdw = dw_out.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_backward_weight<T>(g, pdy, px, pdw);
}

template <typename T>
void conv2d_backward_bias(Arr<T> dy, Arr<T> db) {
  need(dy, "dy", 4);
  need_shape(db, "db", {dy.shape(1)});
  convnet::ConvGeom g{dy.shape(0), 0, 0, 0, dy.shape(1), 1, 1, dy.shape(2), dy.shape(3),
                      1,           1, 0, 0, 1,           1};
  const T* pdy = dy.data();
  T* pdb = db.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_backward_bias<T>(g, pdy, pdb);
}

template <typename T>
convnet::PoolGeom pool_geom(const Arr<T>& x, const Arr<T>& y, index_t kh, index_t kw, index_t sh,
                            index_t sw, index_t ph, index_t pw) {
  need(x, "x", 4);
  need_shape(y, "y", {x.shape(0), x.shape(1), y.shape(2), y.shape(3)});
  if (kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 || pw < 0 || 2 * ph > kh || 2 * pw > kw)
    throw py::value_error("pool: kernel/stride >= 1 and 0 <= padding <= kernel/2 required");
  convnet::PoolGeom g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), y.shape(2), y.shape(3),
                      kh,         kw,         sh,         sw,         ph,         pw};
  if (g.P < 1 || g.Q < 1 || (g.P - 1) * sh - ph >= g.H || (g.Q - 1) * sw - pw >= g.W)
    throw py::value_error("y: output size does not fit the input and padding");
  return g;
}

template <typename T>
void max_pool2d_forward(Arr<T> x, Arr<T> y, Arr<std::int64_t> indices, index_t kh, index_t kw,
                        index_t sh, index_t sw, index_t ph, index_t pw) {
  auto g = pool_geom(x, y, kh, kw, sh, sw, ph, pw);
  need_shape(indices, "indices", {g.N, g.C, g.P, g.Q});
  const T* px = x.data();
  T* py_ = y.mutable_data();
  std::int64_t* pi = indices.mutable_data();
  py::gil_scoped_release nogil;
  convnet::max_pool2d_forward<T>(g, px, py_, pi);
}

template <typename T>
void max_pool2d_backward(Arr<T> dy, Arr<std::int64_t> indices, Arr<T> dx) {
  need(dx, "dx", 4);
  need(dy, "dy", 4);
  need_shape(indices, "indices", {dy.shape(0), dy.shape(1), dy.shape(2), dy.shape(3)});
  if (dy.shape(0) != dx.shape(0) || dy.shape(1) != dx.shape(1))
    throw py::value_error("dy: batch/channels differ from dx's");
  convnet::PoolGeom g{dx.shape(0), dx.shape(1), dx.shape(2), dx.shape(3), dy.shape(2),
                      dy.shape(3), 1,           1,           1,           1,
                      0,           0};
  // An index outside its plane would write out of bounds: refuse it before the kernel runs.
  const index_t plane = g.H * g.W;
  const std::int64_t* pi = indices.data();
  for (index_t i = 0, n = indices.size(); i < n; ++i)
    if (pi[i] < 0 || pi[i] >= plane) throw py::value_error("indices: value outside the plane");
  const T* pdy = dy.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::max_pool2d_backward<T>(g, pdy, pi, pdx);
}

template <typename T>
void avg_pool2d_forward(Arr<T> x, Arr<T> y, index_t kh, index_t kw, index_t sh, index_t sw,
                        index_t ph, index_t pw, bool count_include_pad) {
  auto g = pool_geom(x, y, kh, kw, sh, sw, ph, pw);
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::avg_pool2d_forward<T>(g, px, py_, count_include_pad);
}

template <typename T>
void avg_pool2d_backward(Arr<T> dy, Arr<T> dx, index_t kh, index_t kw, index_t sh, index_t sw,
                         index_t ph, index_t pw, bool count_include_pad) {
  auto g = pool_geom(dx, dy, kh, kw, sh, sw, ph, pw);
  const T* pdy = dy.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::avg_pool2d_backward<T>(g, pdy, pdx, count_include_pad);
}

template <typename T>
void batch_norm_forward_training(Arr<T> x, Arr<T> weight, Arr<T> bias, Arr<T> y, Arr<T> mean,
                                 Arr<T> var, Arr<T> invstd, double eps) {
  need(x, "x", 3);
  const index_t N = x.shape(0), C = x.shape(1), L = x.shape(2);
  need_shape(y, "y", {N, C, L});
  need_shape(weight, "weight", {C});
  need_shape(bias, "bias", {C});
  need_shape(mean, "mean", {C});
  need_shape(var, "var", {C});
  need_shape(invstd, "invstd", {C});
  if (N * L < 1) throw py::value_error("x: no values per channel");
  const T *px = x.data(), *pw = weight.data(), *pb = bias.data();
  T *py_ = y.mutable_data(), *pm = mean.mutable_data(), *pv = var.mutable_data(),
    *pi = invstd.mutable_data();
  py::gil_scoped_release nogil;
  convnet::batch_norm_forward_training<T>(N, C, L, px, pw, pb, py_, pm, pv, pi, eps);
}

template <typename T>
void batch_norm_forward_inference(Arr<T> x, Arr<T> weight, Arr<T> bias, Arr<T> running_mean,
                                  Arr<T> running_var, Arr<T> y, double eps) {
  need(x, "x", 3);
  const index_t N = x.shape(0), C = x.shape(1), L = x.shape(2);
  need_shape(y, "y", {N, C, L});
  need_shape(weight, "weight", {C});
  need_shape(bias, "bias", {C});
  need_shape(running_mean, "running_mean", {C});
  need_shape(running_var, "running_var", {C});
  const T *px = x.data(), *pw = weight.data(), *pb = bias.data(), *pm = running_mean.data(),
          *pv = running_var.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::batch_norm_forward_inference<T>(N, C, L, px, pw, pb, pm, pv, py_, eps);
}

template <typename T>
void batch_norm_backward(Arr<T> dy, Arr<T> x, Arr<T> weight, Arr<T> mean, Arr<T> invstd,
                         Arr<T> dx, Arr<T> dweight, Arr<T> dbias) {
  need(x, "x", 3);
  const index_t N = x.shape(0), C = x.shape(1), L = x.shape(2);
  need_shape(dy, "dy", {N, C, L});
  need_shape(dx, "dx", {N, C, L});
  for (auto* a : {&weight, &mean, &invstd, &dweight, &dbias}) need_shape(*a, "per-channel", {C});
  const T *pdy = dy.data(), *px = x.data(), *pw = weight.data(), *pm = mean.data(),
          *pi = invstd.data();
  T *pdx = dx.mutable_data(), *pdw = dweight.mutable_data(), *pdb = dbias.mutable_data();
  py::gil_scoped_release nogil;
  convnet::batch_norm_backward<T>(N, C, L, pdy, px, pw, pm, pi, pdx, pdw, pdb);
}

// Element-wise kernels: f(n, inputs..., output) over arrays of one size (a smaller output
// would be written past its end).
template <typename T, typename F>
void elementwise(std::initializer_list<const Arr<T>*> arrays, F&& f) {
  const index_t n = (*arrays.begin())->size();
  for (const Arr<T>* a : arrays)
    if (a->size() != n || !(a->flags() & py::array::c_style))
      throw py::value_error("expected C-contiguous arrays of one size");
  py::gil_scoped_release nogil;
  f(n);
}

template <typename T, void (*Fn)(index_t, const T*, T*)>
void unary(Arr<T> x, Arr<T> y) {
  elementwise<T>({&x, &y}, [&](index_t n) { Fn(n, x.data(), y.mutable_data()); });
}

template <typename T, void (*Fn)(index_t, const T*, const T*, T*)>
void binary(Arr<T> dy, Arr<T> saved, Arr<T> dx) {
  elementwise<T>({&dy, &saved, &dx},
                 [&](index_t n) { Fn(n, dy.data(), saved.data(), dx.mutable_data()); });
}

template <typename T>
void bind_all(py::module_& m) {
  using py::arg;
  // Arrays are never converted: a cast copy of an output would silently drop the result.
  auto arr = [](const char* name) { return py::arg(name).noconvert(); };
  m.def("gemm", &gemm<T>, arr("a"), arr("b"), arr("c"), arg("alpha"), arg("beta"),
        arg("trans_a"), arg("trans_b"),
        "c = alpha * op(a) @ op(b) + beta * c, in place. a (M,K) or (K,M), b (K,N) or (N,K).");
  m.def("conv2d_forward", &conv2d_forward<T>, arr("x"), arr("w"), arr("b"), arr("y"), arg("sh"),
        arg("sw"), arg("ph"), arg("pw"), arg("dh"), arg("dw"),
        "x (N,C,H,W), w (K,C,R,S), b (K) or None -> y (N,K,P,Q) in place; ph/pw: top/left pad.");
  m.def("conv2d_backward_data", &conv2d_backward_data<T>, arr("dy"), arr("w"), arr("dx"),
        arg("sh"), arg("sw"), arg("ph"), arg("pw"), arg("dh"), arg("dw"),
        "dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W) in place.");
  m.def("conv2d_backward_weight", &conv2d_backward_weight<T>, arr("dy"), arr("x"), arr("dw_out"),
        arg("sh"), arg("sw"), arg("ph"), arg("pw"), arg("dh"), arg("dw"),
        "dy (N,K,P,Q), x (N,C,H,W) -> dw_out (K,C,R,S) in place.");
  m.def("conv2d_backward_bias", &conv2d_backward_bias<T>, arr("dy"), arr("db"),
        "dy (N,K,P,Q) -> db (K) in place.");
  m.def("max_pool2d_forward", &max_pool2d_forward<T>, arr("x"), arr("y"), arr("indices"),
        arg("kh"), arg("kw"), arg("sh"), arg("sw"), arg("ph"), arg("pw"),
        "x (N,C,H,W) -> y, indices (N,C,P,Q) in place; indices are flat h*W+w per plane.");
  m.def("max_pool2d_backward", &max_pool2d_backward<T>, arr("dy"), arr("indices"), arr("dx"),
        "dy, indices (N,C,P,Q) -> dx (N,C,H,W) in place.");
  m.def("avg_pool2d_forward", &avg_pool2d_forward<T>, arr("x"), arr("y"), arg("kh"), arg("kw"),
        arg("sh"), arg("sw"), arg("ph"), arg("pw"), arg("count_include_pad"),
        "x (N,C,H,W) -> y (N,C,P,Q) in place.");
  m.def("avg_pool2d_backward", &avg_pool2d_backward<T>, arr("dy"), arr("dx"), arg("kh"),
        arg("kw"), arg("sh"), arg("sw"), arg("ph"), arg("pw"), arg("count_include_pad"),
        "dy (N,C,P,Q) -> dx (N,C,H,W) in place.");
  m.def("batch_norm_forward_training", &batch_norm_forward_training<T>, arr("x"), arr("weight"),
        arr("bias"), arr("y"), arr("mean"), arr("var"), arr("invstd"), arg("eps"),
        "x (N,C,L) -> y (N,C,L), mean, biased var, invstd (C) in place.");
  m.def("batch_norm_forward_inference", &batch_norm_forward_inference<T>, arr("x"),
        arr("weight"), arr("bias"), arr("running_mean"), arr("running_var"), arr("y"), arg("eps"),
        "x (N,C,L) -> y (N,C,L) in place, normalised with the running statistics.");
  m.def("batch_norm_backward", &batch_norm_backward<T>, arr("dy"), arr("x"), arr("weight"),
        arr("mean"), arr("invstd"), arr("dx"), arr("dweight"), arr("dbias"),
        "dy, x (N,C,L) -> dx (N,C,L), dweight, dbias (C) in place (training-mode statistics).");
  m.def("tanh_forward", &unary<T, convnet::tanh_forward<T>>, arr("x"), arr("y"),
        "y = tanh(x), any shape, in place.");
  m.def("tanh_backward", &binary<T, convnet::tanh_backward<T>>, arr("dy"), arr("y"), arr("dx"),
        "dx = dy * (1 - y^2).");
  m.def("sigmoid_forward", &unary<T, convnet::sigmoid_forward<T>>, arr("x"), arr("y"),
        "y = 1 / (1 + exp(-x)), stable for large |x|.");
  m.def("sigmoid_backward", &binary<T, convnet::sigmoid_backward<T>>, arr("dy"), arr("y"),
        arr("dx"), "dx = dy * y * (1 - y).");
  m.def(
      "leaky_relu_forward",
      [](Arr<T> x, Arr<T> y, double slope) {
        elementwise<T>({&x, &y}, [&](index_t n) {
          convnet::leaky_relu_forward<T>(n, x.data(), y.mutable_data(), T(slope));
        });
      },
      arr("x"), arr("y"), arg("slope"), "y = x if x > 0 else slope * x (ReLU for slope 0).");
  m.def(
      "leaky_relu_backward",
      [](Arr<T> dy, Arr<T> x, Arr<T> dx, double slope) {
        elementwise<T>({&dy, &x, &dx}, [&](index_t n) {
          convnet::leaky_relu_backward<T>(n, dy.data(), x.data(), dx.mutable_data(), T(slope));
        });
      },
      arr("dy"), arr("x"), arr("dx"), arg("slope"), "dx = dy if x > 0 else slope * dy.");
  m.def(
      "elu_forward",
      [](Arr<T> x, Arr<T> y, double alpha, double scale) {
        elementwise<T>({&x, &y}, [&](index_t n) {
          convnet::elu_forward<T>(n, x.data(), y.mutable_data(), T(alpha), T(scale));
        });
      },
      arr("x"), arr("y"), arg("alpha"), arg("scale"),
      "y = scale * (x if x > 0 else alpha * (exp(x) - 1)) (SELU with its constants).");
  m.def(
      "elu_backward",
      [](Arr<T> dy, Arr<T> x, Arr<T> dx, double alpha, double scale) {
        elementwise<T>({&dy, &x, &dx}, [&](index_t n) {
          convnet::elu_backward<T>(n, dy.data(), x.data(), dx.mutable_data(), T(alpha),
                                   T(scale));
        });
      },
      arr("dy"), arr("x"), arr("dx"), arg("alpha"), arg("scale"),
      "dx = dy * scale * (alpha * exp(x) if x <= 0 else 1).");
#define BIND_FORMULA(name, Op)                                                           \
  m.def(                                                                                 \
      #name "_forward",                                                                  \
      [](Arr<T> x, Arr<T> y, double p) {                                                 \
        elementwise<T>({&x, &y}, [&](index_t n) {                                        \
          convnet::formula_forward<convnet::math::Op, T>(n, x.data(), y.mutable_data(), \
                                                         T(p));                          \
        });                                                                              \
      },                                                                                 \
      arr("x"), arr("y"), arg("p"), "y = " #name "(x) (activation_table.h).");          \
  m.def(                                                                                 \
      #name "_backward",                                                                 \
      [](Arr<T> dy, Arr<T> x, Arr<T> dx, double p) {                                     \
        elementwise<T>({&dy, &x, &dx}, [&](index_t n) {                                  \
          convnet::formula_backward<convnet::math::Op, T>(n, dy.data(), x.data(),       \
                                                          dx.mutable_data(), T(p));      \
        });                                                                              \
      },                                                                                 \
      arr("dy"), arr("x"), arr("dx"), arg("p"), "dx = dy * " #name "'(x).");
  CONVNET_FORMULA_ACTIVATIONS(BIND_FORMULA)
#undef BIND_FORMULA
}

// ---- recurrent cells (rnn.cpp)

template <typename T>
void lstm_cell_forward(Arr<T> gates, Arr<T> bias, Arr<T> c_prev, Arr<T> h, Arr<T> c,
                       Arr<T> act) {
  need(c_prev, "c_prev", 2);
  const index_t B = c_prev.shape(0), H = c_prev.shape(1);
  need_shape(gates, "gates", {B, 4 * H});
  need_shape(bias, "bias", {4 * H});
  const T* pbias = bias.data();
  need_shape(h, "h", {B, H});
  need_shape(c, "c", {B, H});
  need_shape(act, "act", {B, 4 * H});
  const T *pg = gates.data(), *pc = c_prev.data();
  T *ph = h.mutable_data(), *pcn = c.mutable_data(), *pa = act.mutable_data();
  py::gil_scoped_release nogil;
  convnet::lstm_cell_forward<T>(B, H, pg, pbias, pc, ph, pcn, pa);
}

template <typename T>
void lstm_cell_backward(Arr<T> act, Arr<T> c_prev, Arr<T> c, Arr<T> dh, Arr<T> dc,
                        Arr<T> dgates, Arr<T> dc_prev, Arr<T> db, bool accumulate) {
  need(c_prev, "c_prev", 2);
  const index_t B = c_prev.shape(0), H = c_prev.shape(1);
  need_shape(act, "act", {B, 4 * H});
  for (auto* a : {&c, &dh, &dc, &dc_prev}) need_shape(*a, "c/dh/dc/dc_prev", {B, H});
  need_shape(dgates, "dgates", {B, 4 * H});
  need_shape(db, "db", {4 * H});
  const T *pa = act.data(), *pcp = c_prev.data(), *pc = c.data(), *pdh = dh.data(),
          *pdc = dc.data();
  T *pdg = dgates.mutable_data(), *pdcp = dc_prev.mutable_data(), *pdb = db.mutable_data();
  py::gil_scoped_release nogil;
  convnet::lstm_cell_backward<T>(B, H, pa, pcp, pc, pdh, pdc, pdg, pdcp, pdb, accumulate);
}

template <typename T>
void gru_cell_forward(Arr<T> gx, Arr<T> gh, Arr<T> b_ih, Arr<T> b_hh, Arr<T> h_prev, Arr<T> h,
                      Arr<T> act) {
  need(h_prev, "h_prev", 2);
  const index_t B = h_prev.shape(0), H = h_prev.shape(1);
  need_shape(gx, "gx", {B, 3 * H});
  need_shape(gh, "gh", {B, 3 * H});
  need_shape(b_ih, "b_ih", {3 * H});
  need_shape(b_hh, "b_hh", {3 * H});
  need_shape(h, "h", {B, H});
  need_shape(act, "act", {B, 4 * H});
  const T *px = gx.data(), *pgh = gh.data(), *pb = b_hh.data(), *php = h_prev.data(),
          *pbi = b_ih.data();
  T *ph = h.mutable_data(), *pa = act.mutable_data();
  py::gil_scoped_release nogil;
  convnet::gru_cell_forward<T>(B, H, px, pgh, pbi, pb, php, ph, pa);
}

template <typename T>
void gru_cell_backward(Arr<T> act, Arr<T> h_prev, Arr<T> dh, Arr<T> dgx, Arr<T> dgh,
                       Arr<T> dh_prev, Arr<T> dbx, Arr<T> dbh, bool accumulate) {
  need(h_prev, "h_prev", 2);
  const index_t B = h_prev.shape(0), H = h_prev.shape(1);
  need_shape(act, "act", {B, 4 * H});
  need_shape(dh, "dh", {B, H});
  need_shape(dgx, "dgx", {B, 3 * H});
  need_shape(dgh, "dgh", {B, 3 * H});
  need_shape(dh_prev, "dh_prev", {B, H});
  need_shape(dbx, "dbx", {3 * H});
  need_shape(dbh, "dbh", {3 * H});
  const T *pa = act.data(), *php = h_prev.data(), *pdh = dh.data();
  T *pdx = dgx.mutable_data(), *pdgh = dgh.mutable_data(), *pdhp = dh_prev.mutable_data(),
    *pbx = dbx.mutable_data(), *pbh = dbh.mutable_data();
  py::gil_scoped_release nogil;
  convnet::gru_cell_backward<T>(B, H, pa, php, pdh, pdx, pdgh, pdhp, pbx, pbh, accumulate);
}

template <typename T>
void rnn_cell_forward(Arr<T> pre, Arr<T> bias, Arr<T> h, bool relu) {
  need(pre, "pre", 2);
  need_shape(h, "h", {pre.shape(0), pre.shape(1)});
  need_shape(bias, "bias", {pre.shape(1)});
  const T *pp = pre.data(), *pbias = bias.data();
  T* ph = h.mutable_data();
  py::gil_scoped_release nogil;
  convnet::rnn_cell_forward<T>(pre.shape(0), pre.shape(1), pp, pbias, ph, relu);
}

template <typename T>
void rnn_cell_backward(Arr<T> h, Arr<T> dh, Arr<T> dpre, Arr<T> db, bool relu, bool accumulate) {
  need(h, "h", 2);
  const index_t B = h.shape(0), H = h.shape(1);
  need_shape(dh, "dh", {B, H});
  need_shape(dpre, "dpre", {B, H});
  need_shape(db, "db", {H});
  const T *ph = h.data(), *pdh = dh.data();
  T *pd = dpre.mutable_data(), *pdb = db.mutable_data();
  py::gil_scoped_release nogil;
  convnet::rnn_cell_backward<T>(B, H, ph, pdh, pd, pdb, relu, accumulate);
}

template <typename T>
void bind_rnn(py::module_& m) {
  using py::arg;
  auto arr = [](const char* name) { return py::arg(name).noconvert(); };
  m.def("lstm_cell_forward", &lstm_cell_forward<T>, arr("gates"), arr("bias"), arr("c_prev"),
        arr("h"), arr("c"), arr("act"),
        "gates (B,4H) pre-activations i,f,g,o less bias (4H), c_prev (B,H) -> h, c (B,H), act "
        "(B,4H) activated gates (act may be gates).");
  m.def("lstm_cell_backward", &lstm_cell_backward<T>, arr("act"), arr("c_prev"), arr("c"),
        arr("dh"), arr("dc"), arr("dgates"), arr("dc_prev"), arr("db"), arg("accumulate"),
        "act (B,4H), c_prev, c, dh, dc (B,H) -> dgates (B,4H), dc_prev (B,H), db (4H) column "
        "sums of dgates (added to when accumulate).");
  m.def("gru_cell_forward", &gru_cell_forward<T>, arr("gx"), arr("gh"), arr("b_ih"),
        arr("b_hh"), arr("h_prev"), arr("h"), arr("act"),
        "gx = x W_ih^T, gh = h_prev W_hh^T (B,3H), b_ih, b_hh (3H), h_prev (B,H) -> h (B,H), "
        "act (B,4H) = r, z, n, W_hn h + b_hn.");
  m.def("gru_cell_backward", &gru_cell_backward<T>, arr("act"), arr("h_prev"), arr("dh"),
        arr("dgx"), arr("dgh"), arr("dh_prev"), arr("dbx"), arr("dbh"), arg("accumulate"),
        "act (B,4H), h_prev, dh (B,H) -> dgx, dgh (B,3H), dh_prev = dh*z (B,H), dbx, dbh (3H) "
        "(dh_prev, dbx, dbh added to when accumulate).");
  m.def("rnn_cell_forward", &rnn_cell_forward<T>, arr("pre"), arr("bias"), arr("h"),
        arg("relu"), "pre (B,H), bias (H) -> h = tanh or relu of pre + bias (h may be pre).");
  m.def("rnn_cell_backward", &rnn_cell_backward<T>, arr("h"), arr("dh"), arr("dpre"), arr("db"),
        arg("relu"), arg("accumulate"),
        "h, dh (B,H) -> dpre (B,H), db (H) column sums (added to when accumulate).");
}

template <typename T>
T* optional_buffer(const py::object& o, const char* name, std::initializer_list<index_t> shape,
                   bool required) {
  if (o.is_none()) {
    if (required) throw py::value_error(std::string(name) + ": required for this mode");
    return nullptr;
  }
  auto a = o.cast<Arr<T>>();
  need_shape(a, name, shape);
  return a.mutable_data();
}

int rnn_gates(int mode) {
  if (mode < 0 || mode > 3) throw py::value_error("mode: expected 0 (lstm) .. 3 (rnn_relu)");
  static const int gates[4] = {4, 3, 1, 1};
  return gates[mode];
}

template <typename T>
void rnn_recurrence_forward(int mode, Arr<T> xproj, Arr<T> w_hh, Arr<T> b_ih, Arr<T> b_hh,
                            Arr<T> hbuf,
                            py::object cbuf, py::object act, bool reverse) {
  const int G = rnn_gates(mode);
  need(hbuf, "hbuf", 3);
  const index_t Tn = hbuf.shape(0) - 1, B = hbuf.shape(1), H = hbuf.shape(2);
  if (Tn < 1) throw py::value_error("hbuf: needs T+1 >= 2 slots");
  need_shape(xproj, "xproj", {Tn, B, G * H});
  need_shape(w_hh, "w_hh", {G * H, H});
  need_shape(b_ih, "b_ih", {G * H});
  need_shape(b_hh, "b_hh", {G * H});
  T* pc = optional_buffer<T>(cbuf, "cbuf", {Tn + 1, B, H}, mode == 0);
  T* pa = optional_buffer<T>(act, "act", {Tn, B, 4 * H}, mode == 1);
  T* px = xproj.mutable_data();
  const T *pw = w_hh.data(), *pb = b_hh.data(), *pbi = b_ih.data();
  T* ph = hbuf.mutable_data();
  const int nt = convnet::threads_for(double(B) * G * H * H, 1 << 18);
  py::gil_scoped_release nogil;
  convnet::rnn_recurrence_forward<T>(mode, Tn, B, H, px, pw, pbi, pb, ph, pc, pa, reverse, nt);
}

template <typename T>
void rnn_recurrence_backward(int mode, Arr<T> w_hh, Arr<T> hbuf, py::object cbuf, py::object act,
                             Arr<T> dH, py::object dc, Arr<T> dgx, Arr<T> dgh, Arr<T> dbx,
                             Arr<T> dbh, bool reverse) {
  const int G = rnn_gates(mode);
  need(hbuf, "hbuf", 3);
  const index_t Tn = hbuf.shape(0) - 1, B = hbuf.shape(1), H = hbuf.shape(2);
  if (Tn < 1) throw py::value_error("hbuf: needs T+1 >= 2 slots");
  need_shape(w_hh, "w_hh", {G * H, H});
  need_shape(dH, "dH", {Tn + 1, B, H});
  need_shape(dgx, "dgx", {Tn, B, G * H});
  need_shape(dgh, "dgh", {Tn, B, G * H});
  need_shape(dbx, "dbx", {G * H});
  need_shape(dbh, "dbh", {G * H});
  if (mode == 1 && dgx.data() == dgh.data())
    throw py::value_error("dgh: the GRU needs separate dgx and dgh arrays");
  const T* pc = optional_buffer<T>(cbuf, "cbuf", {Tn + 1, B, H}, mode == 0);
  const index_t act_width = mode == 1 ? 4 * H : G * H;
  const T* pa = optional_buffer<T>(act, "act", {Tn, B, act_width}, mode <= 1);
  T* pdc = optional_buffer<T>(dc, "dc", {B, H}, mode == 0);
  const T *pw = w_hh.data(), *ph = hbuf.data();
  T *pdH = dH.mutable_data(), *pgx = dgx.mutable_data(), *pgh = dgh.mutable_data(),
    *pbx = dbx.mutable_data(), *pbh = dbh.mutable_data();
  const int nt = convnet::threads_for(double(B) * G * H * H, 1 << 18);
  py::gil_scoped_release nogil;
  convnet::rnn_recurrence_backward<T>(mode, Tn, B, H, pw, ph, pc, pa, pdH, pdc, pgx, pgh, pbx,
                                      pbh, reverse, nt);
}

template <typename T>
void bind_rnn_sequence(py::module_& m) {
  using py::arg;
  auto arr = [](const char* name) { return py::arg(name).noconvert(); };
  m.def("rnn_recurrence_forward", &rnn_recurrence_forward<T>, arg("mode"), arr("xproj"),
        arr("w_hh"), arr("b_ih"), arr("b_hh"), arr("hbuf"), arg("cbuf"), arg("act"),
        arg("reverse"),
        "The recurrence of one layer direction over a sequence (mode 0 lstm, 1 gru, 2 "
        "rnn_tanh, 3 rnn_relu): xproj (T,B,G*H) = x W_ih^T consumed, w_hh (G*H,H), b_ih, "
        "b_hh (G*H), hbuf (T+1,B,H) with h0 in place -> states; cbuf (LSTM), act (GRU).");
  m.def("rnn_recurrence_backward", &rnn_recurrence_backward<T>, arg("mode"), arr("w_hh"),
        arr("hbuf"), arg("cbuf"), arg("act"), arr("dH"), arg("dc"), arr("dgx"), arr("dgh"),
        arr("dbx"), arr("dbh"), arg("reverse"),
        "Backpropagation through time for rnn_recurrence_forward: dH (T+1,B,H) and dc (B,H) "
        "in/out -> dgx, dgh (T,B,G*H), dbx, dbh (G*H).");
}

// ---- upsampling (csrc/cpu/upsample.cpp)

template <typename T>
convnet::UpsampleGeom upsample_geom(const Arr<T>& x, const Arr<T>& y) {
  need(x, "x", 4);
  need(y, "y", 4);
  if (y.shape(0) != x.shape(0) || y.shape(1) != x.shape(1))
    throw py::value_error("y: batch/channels differ from x's");
  if (x.shape(2) < 1 || x.shape(3) < 1 || y.shape(2) < 1 || y.shape(3) < 1)
    throw py::value_error("upsample: empty spatial size");
  return {x.shape(0), x.shape(1), x.shape(2), x.shape(3), y.shape(2), y.shape(3)};
}

template <typename T>
void upsample_nearest2d_forward(Arr<T> x, Arr<T> y, double scale_h, double scale_w) {
  const auto g = upsample_geom(x, y);
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::upsample_nearest2d_forward<T>(g, px, py_, scale_h, scale_w);
}

template <typename T>
void upsample_nearest2d_backward(Arr<T> dy, Arr<T> dx, double scale_h, double scale_w) {
  const auto g = upsample_geom(dx, dy);
  const T* pdy = dy.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::upsample_nearest2d_backward<T>(g, pdy, pdx, scale_h, scale_w);
}

template <typename T>
void upsample_bilinear2d_forward(Arr<T> x, Arr<T> y, bool align_corners, double scale_h,
                                 double scale_w) {
  const auto g = upsample_geom(x, y);
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::upsample_bilinear2d_forward<T>(g, px, py_, align_corners, scale_h, scale_w);
}

template <typename T>
void upsample_bilinear2d_backward(Arr<T> dy, Arr<T> dx, bool align_corners, double scale_h,
                                  double scale_w) {
  const auto g = upsample_geom(dx, dy);
  const T* pdy = dy.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::upsample_bilinear2d_backward<T>(g, pdy, pdx, align_corners, scale_h, scale_w);
}

template <typename T>
void bind_upsample(py::module_& m) {
  using py::arg;
  auto arr = [](const char* name) { return py::arg(name).noconvert(); };
  m.def("upsample_nearest2d_forward", &upsample_nearest2d_forward<T>, arr("x"), arr("y"),
        arg("scale_h"), arg("scale_w"),
        "x (N,C,H,W) -> y (N,C,P,Q) in place; scale_h/w: the scale factors given, or <= 0.");
  m.def("upsample_nearest2d_backward", &upsample_nearest2d_backward<T>, arr("dy"), arr("dx"),
        arg("scale_h"), arg("scale_w"), "dy (N,C,P,Q) -> dx (N,C,H,W) in place.");
  m.def("upsample_bilinear2d_forward", &upsample_bilinear2d_forward<T>, arr("x"), arr("y"),
        arg("align_corners"), arg("scale_h"), arg("scale_w"),
        "x (N,C,H,W) -> y (N,C,P,Q) in place (PyTorch's coordinates).");
  m.def("upsample_bilinear2d_backward", &upsample_bilinear2d_backward<T>, arr("dy"), arr("dx"),
        arg("align_corners"), arg("scale_h"), arg("scale_w"),
        "dy (N,C,P,Q) -> dx (N,C,H,W) in place.");
}

}  // namespace

void bind_threads(pybind11::module_& m);  // bind_cpu_threads.cpp

PYBIND11_MODULE(_C, m) {
  m.doc() = "convnet CPU kernels (C++17, OpenMP, SIMD). Called through convnet.kernels.";
  // float64 first: pybind11 tries overloads in order and, without forcecast, picks the
  // one whose dtypes match exactly.
  bind_all<double>(m);
  bind_all<float>(m);
  bind_rnn<double>(m);
  bind_rnn<float>(m);
  bind_rnn_sequence<double>(m);
  bind_rnn_sequence<float>(m);
  bind_upsample<double>(m);
  bind_upsample<float>(m);
  m.def("get_num_threads", &convnet::get_num_threads);
  m.def("set_num_threads", &convnet::set_num_threads, py::arg("n"));
  m.def("has_openmp", &convnet::has_openmp);
  bind_threads(m);
  m.def("simd_level", &convnet::simd_level);
  // One pass for the validation boundary's index-range rule (NumPy needs two reductions).
  m.def(
      "index_range",
      [](Arr<std::int64_t> a) {
        need(a, "a", static_cast<int>(a.ndim()));
        const std::int64_t* p = a.data();
        const index_t n = a.size();
        if (n == 0) throw py::value_error("a: empty array");
        std::int64_t lo = p[0], hi = p[0];
        for (index_t i = 1; i < n; ++i) {
          lo = p[i] < lo ? p[i] : lo;
          hi = p[i] > hi ? p[i] : hi;
        }
        return py::make_tuple(lo, hi);
      },
      py::arg("a"), "(min, max) of a C-contiguous int64 array, in one pass.");
}
