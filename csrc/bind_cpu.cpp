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
  // Every window must start inside the padded input: the kernels index from these bounds.
  if ((g.P - 1) * sh - ph > g.H - 1 + ph + (g.R - 1) * dh || g.P < 1 || g.Q < 1 ||
      (g.Q - 1) * sw - pw > g.W - 1 + pw + (g.S - 1) * dw)
    throw py::value_error("y: output size does not fit the input and padding");
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

template <typename T>
void same_size(const Arr<T>& a, const Arr<T>& b, const char* name) {
  if (a.size() != b.size() || !(b.flags() & py::array::c_style) || !(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected C-contiguous arrays of one size");
}

template <typename T, void (*Fn)(index_t, const T*, T*)>
void unary(Arr<T> x, Arr<T> y) {
  same_size(x, y, "y");
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  Fn(x.size(), px, py_);
}

template <typename T, void (*Fn)(index_t, const T*, const T*, T*)>
void binary(Arr<T> dy, Arr<T> saved, Arr<T> dx) {
  same_size(dy, saved, "saved");
  same_size(dy, dx, "dx");
  const T *pd = dy.data(), *ps = saved.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  Fn(dy.size(), pd, ps, pdx);
}

template <typename T>
void leaky_relu_forward(Arr<T> x, Arr<T> y, double slope) {
  same_size(x, y, "y");
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::leaky_relu_forward<T>(x.size(), px, py_, T(slope));
}

template <typename T>
void leaky_relu_backward(Arr<T> dy, Arr<T> x, Arr<T> dx, double slope) {
  same_size(dy, x, "x");
  same_size(dy, dx, "dx");
  const T *pd = dy.data(), *px = x.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::leaky_relu_backward<T>(dy.size(), pd, px, pdx, T(slope));
}

template <typename T>
void elu_forward(Arr<T> x, Arr<T> y, double alpha, double scale) {
  same_size(x, y, "y");
  const T* px = x.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::elu_forward<T>(x.size(), px, py_, T(alpha), T(scale));
}

template <typename T>
void elu_backward(Arr<T> dy, Arr<T> x, Arr<T> dx, double alpha, double scale) {
  same_size(dy, x, "x");
  same_size(dy, dx, "dx");
  const T *pd = dy.data(), *px = x.data();
  T* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  convnet::elu_backward<T>(dy.size(), pd, px, pdx, T(alpha), T(scale));
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
  m.def("leaky_relu_forward", &leaky_relu_forward<T>, arr("x"), arr("y"), arg("slope"),
        "y = x if x > 0 else slope * x (ReLU for slope 0).");
  m.def("leaky_relu_backward", &leaky_relu_backward<T>, arr("dy"), arr("x"), arr("dx"),
        arg("slope"), "dx = dy if x > 0 else slope * dy.");
  m.def("elu_forward", &elu_forward<T>, arr("x"), arr("y"), arg("alpha"), arg("scale"),
        "y = scale * (x if x > 0 else alpha * (exp(x) - 1)) (SELU with its constants).");
  m.def("elu_backward", &elu_backward<T>, arr("dy"), arr("x"), arr("dx"), arg("alpha"),
        arg("scale"), "dx = dy * scale * (1 if x > 0 else alpha * exp(x)).");
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

PYBIND11_MODULE(_C, m) {
  m.doc() = "convnet CPU kernels (C++17, OpenMP, SIMD). Called through convnet.kernels.";
  // float64 first: pybind11 tries overloads in order and, without forcecast, picks the
  // one whose dtypes match exactly.
  bind_all<double>(m);
  bind_all<float>(m);
  m.def("get_num_threads", &convnet::get_num_threads);
  m.def("set_num_threads", &convnet::set_num_threads, py::arg("n"));
  m.def("has_openmp", &convnet::has_openmp);
  m.def("simd_level", &convnet::simd_level);
  bind_upsample<double>(m);
  bind_upsample<float>(m);
}
