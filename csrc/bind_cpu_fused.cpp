// convnet._C: the fused-epilogue kernels (csrc/cpu/epilogue.h): convolution and linear
// forward passes with the bias and activation applied before the output is stored.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "convnet/common.h"
#include "convnet/epilogue_math.h"
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

void need_act(int act) {
  if (act < 0 || act >= convnet::math::kActEnd)
    throw py::value_error("act: expected an activation code in [0, " +
                          std::to_string(convnet::math::kActEnd - 1) + "], got " +
                          std::to_string(act));
}

// The bias (n) or None; the holder keeps a converted array alive for the call.
template <typename T>
const T* bias_data(const py::object& b, Arr<T>& holder, index_t n) {
  if (b.is_none()) return nullptr;
  holder = b.cast<Arr<T>>();
  need(holder, "b", 1);
  if (holder.shape(0) != n)
    throw py::value_error("b: has " + std::to_string(holder.shape(0)) + " values, expected " +
                          std::to_string(n));
  return holder.data();
}

template <typename T>
void conv2d_forward_act(Arr<T> x, Arr<T> w, py::object b, Arr<T> y, index_t sh, index_t sw,
                        index_t ph, index_t pw, index_t dh, index_t dw, int act, double p1,
                        double p2) {
  need(x, "x", 4);
  need(w, "w", 4);
  need(y, "y", 4);
  need_act(act);
  const convnet::ConvGeom g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0),
                            w.shape(2), w.shape(3), y.shape(2), y.shape(3), sh, sw, ph, pw,
                            dh, dw};
  if (w.shape(1) != g.C) throw py::value_error("w: input channels differ from x's");
  if (y.shape(0) != g.N || y.shape(1) != g.K) throw py::value_error("y: wrong batch/channels");
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || ph < 0 || pw < 0)
    throw py::value_error("stride/dilation must be >= 1 and padding >= 0");
  if (g.P < 1 || g.Q < 1) throw py::value_error("y: empty output");
  Arr<T> holder;
  const T* pb = bias_data<T>(b, holder, g.K);
  const T *px = x.data(), *pw_ = w.data();
  T* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  convnet::conv2d_forward_act<T>(g, px, pw_, pb, py_, act, T(p1), T(p2));
}

template <typename T>
void linear_forward_act(Arr<T> x, Arr<T> w, py::object b, Arr<T> y, int act, double p1,
                        double p2) {
  need(x, "x", 2);
  need(w, "w", 2);
  need(y, "y", 2);
  need_act(act);
  const index_t M = x.shape(0), K = x.shape(1), N = w.shape(0);
  if (w.shape(1) != K) throw py::value_error("w: in_features differ from x's");
  if (y.shape(0) != M || y.shape(1) != N) throw py::value_error("y: expected shape (M, N)");
  Arr<T> holder;
  const T* pb = bias_data<T>(b, holder, N);
  const T *px = x.data(), *pw_ = w.data();
  T* py_ = y.mutable_data();
  const int nt = convnet::threads_for(double(M) * N * K, 1 << 18);
  py::gil_scoped_release nogil;
  convnet::linear_forward_act<T>(M, N, K, px, pw_, pb, py_, act, T(p1), T(p2), nt);
}

template <typename T>
void bind_typed(py::module_& m) {
  using py::arg;
  auto arr = [](const char* name) { return py::arg(name).noconvert(); };
  m.def("conv2d_forward_act", &conv2d_forward_act<T>, arr("x"), arr("w"), arr("b"), arr("y"),
        arg("sh"), arg("sw"), arg("ph"), arg("pw"), arg("dh"), arg("dw"), arg("act"),
        arg("p1"), arg("p2"),
        "y = act(conv(x, w) + b) in place, the bias and activation applied in registers.");
  m.def("linear_forward_act", &linear_forward_act<T>, arr("x"), arr("w"), arr("b"), arr("y"),
        arg("act"), arg("p1"), arg("p2"),
        "x (M,K), w (N,K), b (N) or None -> y (M,N) = act(x w^T + b) in place.");
}

}  // namespace

void bind_fused(py::module_& m) {
  bind_typed<double>(m);  // float64 first, as in bind_cpu.cpp
  bind_typed<float>(m);
}
