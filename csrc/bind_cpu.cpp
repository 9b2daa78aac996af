// convnet._C: thin pybind11 layer over csrc/cpu. Calls arrive through the validation
// boundary (convnet/kernels/_boundary.py), which makes every friendly check; this layer
// keeps only what could crash C++ were it bypassed: the dtype (array_t without forcecast),
// C order, and that every buffer holds the elements the kernel touches for the sizes it
// is given, by the rules of csrc/buffer_rules.h in checked 64-bit arithmetic. The sizes
// come from the shapes of the arrays each function names. All math is in csrc/cpu.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "buffer_rules.h"
#include "convnet/bind_checks.h"
#include "convnet/common.h"
#include "cpu/kernels.h"

namespace py = pybind11;
namespace rules = convnet::rules;
using convnet::index_t;
using convnet::bind::Rule;

namespace {

template <typename T>
using Arr = py::array_t<T, 0>;  // no forcecast: a wrong dtype is refused, never copied
template <typename T>
using Opt = std::optional<Arr<T>>;

// The shape of an array the kernel takes sizes from (its rank is what makes them readable).
const py::ssize_t* dims(const char* k, const py::array& a, const char* name, int ndim) {
  if (a.ndim() != ndim)
    convnet::bind::fail(k, std::string(name) + ": expected a " + std::to_string(ndim) +
                               "-D array, got " + std::to_string(a.ndim()) + "-D");
  return a.shape();
}

// The arrays of a call (nullptr: None) against the kernel's rule, in its order; false when
// the kernel would touch no element (the caller returns).
bool check(const Rule& r, std::initializer_list<const py::array*> arrays) {
  if (arrays.size() != static_cast<std::size_t>(r.n)) convnet::bind::fail(r.kernel, "buffer count");
  index_t have[Rule::kMax];
  int i = 0;
  for (const py::array* a : arrays) {
    if (a && !(a->flags() & py::array::c_style))
      convnet::bind::fail(r.kernel,
                          std::string(r.need[i].name) + ": expected a C-contiguous array");
    have[i++] = a ? a->size() : -1;
  }
  return convnet::bind::check(r, have, arrays.size());
}

template <typename T>
const T* data_or_null(const Opt<T>& a) {
  return a ? a->data() : nullptr;
}

template <typename T>
void gemm(Arr<T> a, Arr<T> b, Arr<T> c, double alpha, double beta, bool trans_a, bool trans_b) {
  const auto *as = dims("gemm", a, "a", 2), *bs = dims("gemm", b, "b", 2);
  const index_t M = as[trans_a], K = as[!trans_a], N = bs[!trans_b];
  if (!check(rules::gemm(trans_a, trans_b, M, N, K, as[1], bs[1], N), {&a, &b, &c})) return;
  const T *pa = a.data(), *pb = b.data();
  T* pc = c.mutable_data();
  const int nt = convnet::threads_for(double(M) * N * K, 1 << 18);
  py::gil_scoped_release nogil;
  convnet::gemm<T>(trans_a, trans_b, M, N, K, T(alpha), pa, as[1], pb, bs[1], T(beta), pc, N, nt);
}

// sizes: N, C, H, W from x; K, R, S from w; P, Q from y
template <typename T>
convnet::ConvGeom conv_geom(const char* k, const Arr<T>& x, const Arr<T>& w, const Arr<T>& y,
                            index_t sh, index_t sw, index_t ph, index_t pw, index_t dh,
                            index_t dw) {
  const auto *xs = dims(k, x, "x", 4), *ws = dims(k, w, "w", 4), *ys = dims(k, y, "y", 4);
  return {xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], ys[2], ys[3], sh, sw, ph, pw, dh, dw};
}

template <typename T>
void conv2d_forward(Arr<T> x, Arr<T> w, Opt<T> b, Arr<T> y, index_t sh, index_t sw, index_t ph,
                    index_t pw, index_t dh, index_t dw) {
  const auto g = conv_geom("conv2d_forward", x, w, y, sh, sw, ph, pw, dh, dw);
  if (!check(rules::conv2d_forward(g), {&x, &w, b ? &*b : nullptr, &y})) return;
  const T *px = x.data(), *pw_ = w.data(), *pb = data_or_null(b);
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_forward<T>(g, px, pw_, pb, py_);
}

template <typename T>
void conv2d_forward_act(Arr<T> x, Arr<T> w, Opt<T> b, Arr<T> y, index_t sh, index_t sw,
                        index_t ph, index_t pw, index_t dh, index_t dw, int act, double p1,
                        double p2) {
  const auto g = conv_geom("conv2d_forward_act", x, w, y, sh, sw, ph, pw, dh, dw);
  rules::activation_code("conv2d_forward_act", act);
  if (!check(rules::conv2d_forward_act(g), {&x, &w, b ? &*b : nullptr, &y})) return;
  const T *px = x.data(), *pw_ = w.data(), *pb = data_or_null(b);
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_forward_act<T>(g, px, pw_, pb, py_, act, T(p1), T(p2));
}

// sizes: M, K from x; N from w
template <typename T>
void linear_forward_act(Arr<T> x, Arr<T> w, Opt<T> b, Arr<T> y, int act, double p1,
                        double p2) {
  const char* k = "linear_forward_act";
  const auto *xs = dims(k, x, "x", 2), *ws = dims(k, w, "w", 2);
  const index_t M = xs[0], K = xs[1], N = ws[0];
  rules::activation_code(k, act);
  if (!check(rules::linear_forward_act(M, N, K), {&x, &w, b ? &*b : nullptr, &y})) return;
  const T *px = x.data(), *pw_ = w.data(), *pb = data_or_null(b);
  T* py_ = y.mutable_data();
  const int nt = convnet::threads_for(double(M) * N * K, 1 << 18);
  py::gil_scoped_release nogil;
  convnet::linear_forward_act<T>(M, N, K, px, pw_, pb, py_, act, T(p1), T(p2), nt);
}

template <typename T>
void conv2d_backward_data(Arr<T> dy, Arr<T> w, Arr<T> dx, index_t sh, index_t sw, index_t ph,
                          index_t pw, index_t dh, index_t dw) {
  const auto g = conv_geom("conv2d_backward_data", dx, w, dy, sh, sw, ph, pw, dh, dw);
  if (!check(rules::conv2d_backward_data(g), {&dy, &w, &dx})) return;
  const T *pdy = dy.data(), *pw_ = w.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_backward_data<T>(g, pdy, pw_, pdx);
}

template <typename T>
void conv2d_backward_weight(Arr<T> dy, Arr<T> x, Arr<T> dw_out, index_t sh, index_t sw,
                            index_t ph, index_t pw, index_t dh, index_t dw) {
  const auto g = conv_geom("conv2d_backward_weight", x, dw_out, dy, sh, sw, ph, pw, dh, dw);
  if (!check(rules::conv2d_backward_weight(g), {&dy, &x, &dw_out})) return;
  const T *pdy = dy.data(), *px = x.data();
  T* pdw = dw_out.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_backward_weight<T>(g, pdy, px, pdw);
}

template <typename T>
void conv2d_backward_bias(Arr<T> dy, Arr<T> db) {
  const auto* s = dims("conv2d_backward_bias", dy, "dy", 4);
  if (!check(rules::conv2d_backward_bias(s[0], s[1], s[2], s[3]), {&dy, &db})) return;
  convnet::ConvGeom g{s[0], 0, 0, 0, s[1], 1, 1, s[2], s[3], 1, 1, 0, 0, 1, 1};
  const T* pdy = dy.data();
  T* pdb = db.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_backward_bias<T>(g, pdy, pdb);
}

// sizes: N, C, H, W from the input x (dx); P, Q from the output y (dy)
template <typename T>
convnet::PoolGeom pool_geom(const char* k, const Arr<T>& x, const Arr<T>& y, index_t kh,
                            index_t kw, index_t sh, index_t sw, index_t ph, index_t pw) {
  const auto *xs = dims(k, x, "x", 4), *ys = dims(k, y, "y", 4);
  return {xs[0], xs[1], xs[2], xs[3], ys[2], ys[3], kh, kw, sh, sw, ph, pw};
}

template <typename T>
void max_pool2d_forward(Arr<T> x, Arr<T> y, Arr<std::int64_t> indices, index_t kh, index_t kw,
                        index_t sh, index_t sw, index_t ph, index_t pw) {
  const auto g = pool_geom("max_pool2d_forward", x, y, kh, kw, sh, sw, ph, pw);
  if (!check(rules::max_pool2d_forward(g), {&x, &y, &indices})) return;
  const T* px = x.data();
  T* py_ = y.mutable_data();
  std::int64_t* pi = indices.mutable_data();
  py::gil_scoped_release nogil;
  convnet::max_pool2d_forward<T>(g, px, py_, pi);
}

// The kernel scatters dy to dx at the indices (the CUDA one skips those outside the
// plane): each must be in its plane, or it writes out of bounds.
template <typename T>
void max_pool2d_backward(Arr<T> dy, Arr<std::int64_t> indices, Arr<T> dx) {
  const auto g = pool_geom("max_pool2d_backward", dx, dy, 1, 1, 1, 1, 0, 0);
  if (!check(rules::max_pool2d_backward(g), {&dy, &indices, &dx})) return;
  const T* pdy = dy.data();
  const std::int64_t* pi = indices.data();
  for (index_t i = 0, n = g.N * g.C * g.P * g.Q, plane = g.H * g.W; i < n; ++i)
    if (pi[i] < 0 || pi[i] >= plane)
      convnet::bind::fail("max_pool2d_backward", "indices: value outside the plane");
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::max_pool2d_backward<T>(g, pdy, pi, pdx);
}

template <typename T>
void avg_pool2d_forward(Arr<T> x, Arr<T> y, index_t kh, index_t kw, index_t sh, index_t sw,
                        index_t ph, index_t pw, bool count_include_pad) {
  const auto g = pool_geom("avg_pool2d_forward", x, y, kh, kw, sh, sw, ph, pw);
  if (!check(rules::avg_pool2d_forward(g), {&x, &y})) return;
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::avg_pool2d_forward<T>(g, px, py_, count_include_pad);
}

template <typename T>
void avg_pool2d_backward(Arr<T> dy, Arr<T> dx, index_t kh, index_t kw, index_t sh, index_t sw,
                         index_t ph, index_t pw, bool count_include_pad) {
  const auto g = pool_geom("avg_pool2d_backward", dx, dy, kh, kw, sh, sw, ph, pw);
  if (!check(rules::avg_pool2d_backward(g), {&dy, &dx})) return;
  const T* pdy = dy.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::avg_pool2d_backward<T>(g, pdy, pdx, count_include_pad);
}

// Batch norm: N, C, L from x.
template <typename T>
void batch_norm_forward_training(Arr<T> x, Arr<T> weight, Arr<T> bias, Arr<T> y, Arr<T> mean,
                                 Arr<T> var, Arr<T> invstd, double eps) {
  const auto* s = dims("batch_norm_forward_training", x, "x", 3);
  if (!check(rules::batch_norm_forward_training(s[0], s[1], s[2]),
            {&x, &weight, &bias, &y, &mean, &var, &invstd})) return;
  const T *px = x.data(), *pw = weight.data(), *pb = bias.data();
  T *py_ = y.mutable_data(), *pm = mean.mutable_data(), *pv = var.mutable_data(),
    *pi = invstd.mutable_data();
  py::gil_scoped_release nogil;
  convnet::batch_norm_forward_training<T>(s[0], s[1], s[2], px, pw, pb, py_, pm, pv, pi, eps);
}

template <typename T>
void batch_norm_forward_inference(Arr<T> x, Arr<T> weight, Arr<T> bias, Arr<T> running_mean,
                                  Arr<T> running_var, Arr<T> y, double eps) {
  const auto* s = dims("batch_norm_forward_inference", x, "x", 3);
  if (!check(rules::batch_norm_forward_inference(s[0], s[1], s[2]),
            {&x, &weight, &bias, &running_mean, &running_var, &y})) return;
  const T *px = x.data(), *pw = weight.data(), *pb = bias.data(), *pm = running_mean.data(),
          *pv = running_var.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::batch_norm_forward_inference<T>(s[0], s[1], s[2], px, pw, pb, pm, pv, py_, eps);
}

template <typename T>
void batch_norm_backward(Arr<T> dy, Arr<T> x, Arr<T> weight, Arr<T> mean, Arr<T> invstd,
                         Arr<T> dx, Arr<T> dweight, Arr<T> dbias) {
  const auto* s = dims("batch_norm_backward", x, "x", 3);
  if (!check(rules::batch_norm_backward(s[0], s[1], s[2]),
            {&dy, &x, &weight, &mean, &invstd, &dx, &dweight, &dbias})) return;
  const T *pdy = dy.data(), *px = x.data(), *pw = weight.data(), *pm = mean.data(),
          *pi = invstd.data();
  T *pdx = dx.mutable_data(), *pdw = dweight.mutable_data(), *pdb = dbias.mutable_data();
  py::gil_scoped_release nogil;
  convnet::batch_norm_backward<T>(s[0], s[1], s[2], pdy, px, pw, pm, pi, pdx, pdw, pdb);
}

// Element-wise kernels: every array holds the first one's element count.
template <typename T>
index_t elementwise(const char* k, std::initializer_list<const char*> names,
                    std::initializer_list<const py::array*> arrays) {
  const index_t n = (*arrays.begin())->size();
  return check(rules::elementwise(k, n, names), arrays) ? n : 0;
}

template <typename T, void (*Fn)(index_t, const T*, T*)>
void unary(Arr<T> x, Arr<T> y) {
  const index_t n = elementwise<T>("activation", {"x", "y"}, {&x, &y});
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  Fn(n, px, py_);
}

template <typename T, void (*Fn)(index_t, const T*, const T*, T*)>
void binary(Arr<T> dy, Arr<T> y, Arr<T> dx) {
  const index_t n = elementwise<T>("activation", {"dy", "y", "dx"}, {&dy, &y, &dx});
  const T *pdy = dy.data(), *py_ = y.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  Fn(n, pdy, py_, pdx);
}

// Forward f(n, x, y, params...) and backward f(n, dy, x, dx, params...) of the activations
// with scalar parameters; PARAMS declares them, ARGS passes them on as T.
#define CONVNET_BIND_ACTIVATION(name, PARAMS, ARGS, FWD, BWD, ...)                          \
  m.def(                                                                                   \
      #name "_forward",                                                                    \
      [](Arr<T> x, Arr<T> y, PARAMS) {                                                     \
        const index_t n = elementwise<T>(#name "_forward", {"x", "y"}, {&x, &y});          \
        const T* px = x.data();                                                            \
        T* py_ = y.mutable_data();                                                         \
        py::gil_scoped_release nogil;                                                      \
        FWD(n, px, py_, ARGS);                                                             \
      },                                                                                   \
      arr("x"), arr("y"), __VA_ARGS__, "y = " #name "(x), any shape, in place.");          \
  m.def(                                                                                   \
      #name "_backward",                                                                   \
      [](Arr<T> dy, Arr<T> x, Arr<T> dx, PARAMS) {                                         \
        const index_t n = elementwise<T>(#name "_backward", {"dy", "x", "dx"}, {&dy, &x, &dx}); \
        const T *pdy = dy.data(), *px = x.data();                                          \
        T* pdx = dx.mutable_data();                                                        \
        py::gil_scoped_release nogil;                                                      \
        BWD(n, pdy, px, pdx, ARGS);                                                        \
      },                                                                                   \
      arr("dy"), arr("x"), arr("dx"), __VA_ARGS__, "dx = dy * " #name "'(x).");
#define CONVNET_COMMA ,

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
  m.def("conv2d_forward_act", &conv2d_forward_act<T>, arr("x"), arr("w"), arr("b"), arr("y"),
        arg("sh"), arg("sw"), arg("ph"), arg("pw"), arg("dh"), arg("dw"), arg("act"),
        arg("p1"), arg("p2"),
        "y = act(conv(x, w) + b) in place, the bias and activation applied in registers.");
  m.def("linear_forward_act", &linear_forward_act<T>, arr("x"), arr("w"), arr("b"), arr("y"),
        arg("act"), arg("p1"), arg("p2"),
        "x (M,K), w (N,K), b (N) or None -> y (M,N) = act(x w^T + b) in place.");
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
  // leaky_relu: y = x if x > 0 else slope * x (ReLU for slope 0); elu: y = scale * (x if
  // x > 0 else alpha * (exp(x) - 1)) (SELU with its constants); the formula activations of
  // activation_table.h take one parameter p.
  CONVNET_BIND_ACTIVATION(leaky_relu, double slope, T(slope), convnet::leaky_relu_forward<T>,
                          convnet::leaky_relu_backward<T>, arg("slope"))
  CONVNET_BIND_ACTIVATION(elu, double alpha CONVNET_COMMA double scale,
                          T(alpha) CONVNET_COMMA T(scale), convnet::elu_forward<T>,
                          convnet::elu_backward<T>, arg("alpha"), arg("scale"))
#define BIND_FORMULA(name, Op)                                                          \
  CONVNET_BIND_ACTIVATION(name, double p, T(p), (convnet::formula_forward<convnet::math::Op, T>), \
                          (convnet::formula_backward<convnet::math::Op, T>), arg("p"))
  CONVNET_FORMULA_ACTIVATIONS(BIND_FORMULA)
#undef BIND_FORMULA
}

// ---- recurrent cells (rnn.cpp): B, H from the state argument named in each rule's doc

template <typename T>
void lstm_cell_forward(Arr<T> gates, Arr<T> bias, Arr<T> c_prev, Arr<T> h, Arr<T> c,
                       Arr<T> act) {
  const auto* s = dims("lstm_cell_forward", c_prev, "c_prev", 2);
  if (!check(rules::lstm_cell_forward(s[0], s[1]), {&gates, &bias, &c_prev, &h, &c, &act})) return;
  const T *pg = gates.data(), *pbias = bias.data(), *pc = c_prev.data();
  T *ph = h.mutable_data(), *pcn = c.mutable_data(), *pa = act.mutable_data();
  py::gil_scoped_release nogil;
  convnet::lstm_cell_forward<T>(s[0], s[1], pg, pbias, pc, ph, pcn, pa);
}

template <typename T>
void lstm_cell_backward(Arr<T> act, Arr<T> c_prev, Arr<T> c, Arr<T> dh, Arr<T> dc,
                        Arr<T> dgates, Arr<T> dc_prev, Arr<T> db, bool accumulate) {
  const auto* s = dims("lstm_cell_backward", c_prev, "c_prev", 2);
  if (!check(rules::lstm_cell_backward(s[0], s[1]),
            {&act, &c_prev, &c, &dh, &dc, &dgates, &dc_prev, &db})) return;
  const T *pa = act.data(), *pcp = c_prev.data(), *pc = c.data(), *pdh = dh.data(),
          *pdc = dc.data();
  T *pdg = dgates.mutable_data(), *pdcp = dc_prev.mutable_data(), *pdb = db.mutable_data();
  py::gil_scoped_release nogil;
  convnet::lstm_cell_backward<T>(s[0], s[1], pa, pcp, pc, pdh, pdc, pdg, pdcp, pdb, accumulate);
}

template <typename T>
void gru_cell_forward(Arr<T> gx, Arr<T> gh, Arr<T> b_ih, Arr<T> b_hh, Arr<T> h_prev, Arr<T> h,
                      Arr<T> act) {
  const auto* s = dims("gru_cell_forward", h_prev, "h_prev", 2);
  if (!check(rules::gru_cell_forward(s[0], s[1]), {&gx, &gh, &b_ih, &b_hh, &h_prev, &h, &act})) return;
  const T *px = gx.data(), *pgh = gh.data(), *pbi = b_ih.data(), *pb = b_hh.data(),
          *php = h_prev.data();
  T *ph = h.mutable_data(), *pa = act.mutable_data();
  py::gil_scoped_release nogil;
  convnet::gru_cell_forward<T>(s[0], s[1], px, pgh, pbi, pb, php, ph, pa);
}

template <typename T>
void gru_cell_backward(Arr<T> act, Arr<T> h_prev, Arr<T> dh, Arr<T> dgx, Arr<T> dgh,
                       Arr<T> dh_prev, Arr<T> dbx, Arr<T> dbh, bool accumulate) {
  const auto* s = dims("gru_cell_backward", h_prev, "h_prev", 2);
  if (!check(rules::gru_cell_backward(s[0], s[1]),
            {&act, &h_prev, &dh, &dgx, &dgh, &dh_prev, &dbx, &dbh})) return;
  const T *pa = act.data(), *php = h_prev.data(), *pdh = dh.data();
  T *pdx = dgx.mutable_data(), *pdgh = dgh.mutable_data(), *pdhp = dh_prev.mutable_data(),
    *pbx = dbx.mutable_data(), *pbh = dbh.mutable_data();
  py::gil_scoped_release nogil;
  convnet::gru_cell_backward<T>(s[0], s[1], pa, php, pdh, pdx, pdgh, pdhp, pbx, pbh, accumulate);
}

template <typename T>
void rnn_cell_forward(Arr<T> pre, Arr<T> bias, Arr<T> h, bool relu) {
  const auto* s = dims("rnn_cell_forward", pre, "pre", 2);
  if (!check(rules::rnn_cell_forward(s[0], s[1]), {&pre, &bias, &h})) return;
  const T *pp = pre.data(), *pbias = bias.data();
  T* ph = h.mutable_data();
  py::gil_scoped_release nogil;
  convnet::rnn_cell_forward<T>(s[0], s[1], pp, pbias, ph, relu);
}

template <typename T>
void rnn_cell_backward(Arr<T> h, Arr<T> dh, Arr<T> dpre, Arr<T> db, bool relu, bool accumulate) {
  const auto* s = dims("rnn_cell_backward", h, "h", 2);
  if (!check(rules::rnn_cell_backward(s[0], s[1]), {&h, &dh, &dpre, &db})) return;
  const T *ph = h.data(), *pdh = dh.data();
  T *pd = dpre.mutable_data(), *pdb = db.mutable_data();
  py::gil_scoped_release nogil;
  convnet::rnn_cell_backward<T>(s[0], s[1], ph, pdh, pd, pdb, relu, accumulate);
}

// The recurrence: T+1, B, H from hbuf.
template <typename T>
void rnn_recurrence_forward(int mode, Arr<T> xproj, Arr<T> w_hh, Arr<T> b_ih, Arr<T> b_hh,
                            Arr<T> hbuf, Opt<T> cbuf, Opt<T> act, bool reverse) {
  const auto* s = dims("rnn_recurrence_forward", hbuf, "hbuf", 3);
  const index_t Tn = s[0] - 1, B = s[1], H = s[2];
  if (!check(rules::rnn_recurrence_forward(mode, Tn, B, H),
            {&xproj, &w_hh, &b_ih, &b_hh, &hbuf, cbuf ? &*cbuf : nullptr, act ? &*act : nullptr})) return;
  T *px = xproj.mutable_data(), *ph = hbuf.mutable_data();
  T* pc = mode == 0 ? cbuf->mutable_data() : nullptr;
  T* pa = mode == 1 ? act->mutable_data() : nullptr;
  const T *pw = w_hh.data(), *pbi = b_ih.data(), *pb = b_hh.data();
  const int nt = convnet::threads_for(double(B) * rules::gates("", mode) * H * H, 1 << 18);
  py::gil_scoped_release nogil;
  convnet::rnn_recurrence_forward<T>(mode, Tn, B, H, px, pw, pbi, pb, ph, pc, pa, reverse, nt);
}

template <typename T>
void rnn_recurrence_backward(int mode, Arr<T> w_hh, Arr<T> hbuf, Opt<T> cbuf, Opt<T> act,
                             Arr<T> dH, Opt<T> dc, Arr<T> dgx, Arr<T> dgh, Arr<T> dbx, Arr<T> dbh,
                             bool reverse) {
  const char* k = "rnn_recurrence_backward";
  const auto* s = dims(k, hbuf, "hbuf", 3);
  const index_t Tn = s[0] - 1, B = s[1], H = s[2];
  if (!check(rules::rnn_recurrence_backward(mode, Tn, B, H),
            {&w_hh, &hbuf, cbuf ? &*cbuf : nullptr, act ? &*act : nullptr, &dH, dc ? &*dc : nullptr,
             &dgx, &dgh, &dbx, &dbh})) return;
  // the GRU's kernel writes both: one array for the two would race
  if (mode == 1 && (dgx.data() == dgh.data() || dbx.data() == dbh.data()))
    convnet::bind::fail(k, "dgh: the GRU needs separate dgx/dgh and dbx/dbh arrays");
  const T *pw = w_hh.data(), *ph = hbuf.data(), *pc = mode == 0 ? cbuf->data() : nullptr,
          *pa = mode <= 1 ? act->data() : nullptr;
  T *pdH = dH.mutable_data(), *pdc = mode == 0 ? dc->mutable_data() : nullptr,
    *pgx = dgx.mutable_data(), *pgh = dgh.mutable_data(), *pbx = dbx.mutable_data(),
    *pbh = dbh.mutable_data();
  const int nt = convnet::threads_for(double(B) * rules::gates(k, mode) * H * H, 1 << 18);
  py::gil_scoped_release nogil;
  convnet::rnn_recurrence_backward<T>(mode, Tn, B, H, pw, ph, pc, pa, pdH, pdc, pgx, pgh, pbx,
                                      pbh, reverse, nt);
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

// ---- upsampling (csrc/cpu/upsample.cpp): N, C, H, W from the input, P, Q from the output

template <typename T>
convnet::UpsampleGeom upsample_geom(const char* k, const Arr<T>& x, const Arr<T>& y) {
  const auto *xs = dims(k, x, "x", 4), *ys = dims(k, y, "y", 4);
  return {xs[0], xs[1], xs[2], xs[3], ys[2], ys[3]};
}

template <typename T>
void upsample_nearest2d_forward(Arr<T> x, Arr<T> y, double scale_h, double scale_w) {
  const char* k = "upsample_nearest2d_forward";
  const auto g = upsample_geom(k, x, y);
  if (!check(rules::upsample2d(k, g, scale_h, scale_w, true), {&x, &y})) return;
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::upsample_nearest2d_forward<T>(g, px, py_, scale_h, scale_w);
}

template <typename T>
void upsample_nearest2d_backward(Arr<T> dy, Arr<T> dx, double scale_h, double scale_w) {
  const char* k = "upsample_nearest2d_backward";
  const auto g = upsample_geom(k, dx, dy);
  if (!check(rules::upsample2d(k, g, scale_h, scale_w, false), {&dy, &dx})) return;
  const T* pdy = dy.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::upsample_nearest2d_backward<T>(g, pdy, pdx, scale_h, scale_w);
}

template <typename T>
void upsample_bilinear2d_forward(Arr<T> x, Arr<T> y, bool align_corners, double scale_h,
                                 double scale_w) {
  const char* k = "upsample_bilinear2d_forward";
  const auto g = upsample_geom(k, x, y);
  if (!check(rules::upsample2d(k, g, scale_h, scale_w, true), {&x, &y})) return;
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::upsample_bilinear2d_forward<T>(g, px, py_, align_corners, scale_h, scale_w);
}

template <typename T>
void upsample_bilinear2d_backward(Arr<T> dy, Arr<T> dx, bool align_corners, double scale_h,
                                  double scale_w) {
  const char* k = "upsample_bilinear2d_backward";
  const auto g = upsample_geom(k, dx, dy);
  if (!check(rules::upsample2d(k, g, scale_h, scale_w, false), {&dy, &dx})) return;
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

void bind_winograd(py::module_& m);  // csrc/bind_cpu_winograd.cpp
void bind_bf16(py::module_& m);  // bind_cpu_bf16.cpp
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
  bind_winograd(m);
  bind_bf16(m);
  m.def("get_num_threads", &convnet::get_num_threads);
  m.def("set_num_threads", &convnet::set_num_threads, py::arg("n"));
  m.def("has_openmp", &convnet::has_openmp);
  bind_threads(m);
  m.def("simd_level", &convnet::simd_level);
  // One pass for the validation boundary's index-range rule (NumPy needs two reductions).
  m.def(
      "index_range",
      [](Arr<std::int64_t> a) {
        if (!(a.flags() & py::array::c_style))
          throw py::value_error("a: expected a C-contiguous array");
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
