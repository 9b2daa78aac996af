// convnet._C, 16-bit kernels: <kernel>_bfloat16 and <kernel>_float16, which the validation
// boundary (convnet/kernels/_boundary.py) runs for 16-bit calls instead of float32 compute
// on copies. NumPy's 16-bit dtypes are not pybind11 array types (bfloat16 is ml_dtypes'),
// so the arrays come in as py::array: dtype (by name and size), rank, contiguity and
// writability are checked here, then the data is read as uint16_t patterns.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/gemm_bf16.h"

namespace py = pybind11;
using convnet::Half16;
using convnet::index_t;

namespace {

const char* fmt_name(Half16 f) { return f == Half16::bfloat16 ? "bfloat16" : "float16"; }

bool has_dtype(const py::array& a, const char* name, int itemsize) {
  const py::dtype dt = a.dtype();
  return dt.itemsize() == itemsize && dt.attr("isnative").cast<bool>() &&
         dt.attr("name").cast<std::string>() == name;
}

void need(const py::array& a, const char* name, int ndim, bool written) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) +
                          "-D array, got " + std::to_string(a.ndim()) + "-D");
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  if (written && !a.writeable())
    throw py::value_error(std::string(name) + ": is written but the array is read-only");
}

// A 16-bit array of format f, as its bit patterns.
const std::uint16_t* bits(const py::array& a, const char* name, Half16 f, int ndim) {
  if (!has_dtype(a, fmt_name(f), 2))
    throw py::type_error(std::string(name) + ": expected dtype " + fmt_name(f) + ", got " +
                         py::str(a.dtype()).cast<std::string>());
  need(a, name, ndim, false);
  return static_cast<const std::uint16_t*>(a.data());
}

// An output that is float32 or of format f: true when float32.
bool out_is_float(const py::array& a, const char* name, Half16 f, int ndim) {
  const bool f32 = has_dtype(a, "float32", 4);
  if (!f32 && !has_dtype(a, fmt_name(f), 2))
    throw py::type_error(std::string(name) + ": expected dtype " + fmt_name(f) +
                         " or float32, got " + py::str(a.dtype()).cast<std::string>());
  need(a, name, ndim, true);
  return f32;
}

void shape_is(const py::array& a, const char* name, std::initializer_list<index_t> shape) {
  int d = 0;
  for (index_t s : shape) {
    if (a.shape(d) != s)
      throw py::value_error(std::string(name) + ": dimension " + std::to_string(d) + " is " +
                            std::to_string(a.shape(d)) + ", expected " + std::to_string(s));
    ++d;
  }
}

// Runs `fn(float* out)` for an output that is float32 or 16-bit: a 16-bit one is computed
// in a float32 buffer (filled from it first when `read`, i.e. beta != 0) and rounded back.
// Called without the GIL: `data` is taken from the array beforehand.
template <typename Fn>
void into_output(void* data, index_t n, bool is_float, Half16 f, bool read, Fn fn) {
  if (is_float) {
    fn(static_cast<float*>(data));
    return;
  }
  auto* dst = static_cast<std::uint16_t*>(data);
  convnet::Scratch<float> buf(static_cast<std::size_t>(std::max<index_t>(n, 1)));
  const int nt = convnet::threads_for(double(n), 1 << 16);
  if (read) convnet::half16_to_float(f, dst, buf.data(), n, nt);
  fn(buf.data());
  convnet::float_to_half16(f, buf.data(), dst, n, nt);
}

// c = alpha * op(a) @ op(b) + beta * c: a, b in format f; c in f or float32; float32 sums.
void gemm16(Half16 f, const py::array& a, const py::array& b, py::array c, double alpha,
            double beta, bool trans_a, bool trans_b) {
  const std::uint16_t* pa = bits(a, "a", f, 2);
  const std::uint16_t* pb = bits(b, "b", f, 2);
  const bool c_float = out_is_float(c, "c", f, 2);
  const index_t M = trans_a ? a.shape(1) : a.shape(0);
  const index_t K = trans_a ? a.shape(0) : a.shape(1);
  const index_t Kb = trans_b ? b.shape(1) : b.shape(0);
  const index_t N = trans_b ? b.shape(0) : b.shape(1);
  if (K != Kb) throw py::value_error("gemm: inner dimensions differ");
  shape_is(c, "c", {M, N});
  const index_t lda = a.shape(1), ldb = b.shape(1);
  const int nt = convnet::threads_for(double(M) * N * K, 1 << 18);
  void* pc_data = c.mutable_data();
  const index_t c_size = c.size();
  py::gil_scoped_release nogil;
  into_output(pc_data, c_size, c_float, f, beta != 0.0, [&](float* pc) {
    convnet::gemm16(f, trans_a, trans_b, M, N, K, float(alpha), pa, lda, pb, ldb, float(beta),
                    pc, N, nt);
  });
}

// Geometry of a convolution from x-like (N,C,H,W), w-like (K,C,R,S), y-like (N,K,P,Q).
convnet::ConvGeom conv_geom(const py::array& x, const py::array& w, const py::array& y,
                            index_t sh, index_t sw, index_t ph, index_t pw, index_t dh,
                            index_t dw) {
  convnet::ConvGeom g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(2),
                      w.shape(3), y.shape(2),  y.shape(3), sh,         sw,         ph,
                      pw,         dh,         dw};
  if (w.shape(1) != g.C) throw py::value_error("w: input channels differ from x's");
  if (y.shape(0) != g.N || y.shape(1) != g.K) throw py::value_error("y: wrong batch/channels");
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1 || ph < 0 || pw < 0)
    throw py::value_error("stride/dilation must be >= 1 and padding >= 0");
  if (g.N < 1 || g.C < 1 || g.K < 1 || g.R < 1 || g.S < 1 || g.P < 1 || g.Q < 1)
    throw py::value_error("conv2d: every size must be >= 1");
  return g;
}

// x (N,C,H,W), w (K,C,R,S), b (K) or None (f or float32) -> y (N,K,P,Q) in f
void conv2d_forward16(Half16 f, const py::array& x, const py::array& w, const py::object& b,
                      py::array y, index_t sh, index_t sw, index_t ph, index_t pw, index_t dh,
                      index_t dw) {
  const std::uint16_t* px = bits(x, "x", f, 4);
  const std::uint16_t* pw_ = bits(w, "w", f, 4);
  need(y, "y", 4, true);
  if (!has_dtype(y, fmt_name(f), 2))
    throw py::type_error(std::string("y: expected dtype ") + fmt_name(f));
  const auto g = conv_geom(x, w, y, sh, sw, ph, pw, dh, dw);
  std::vector<float> bias;
  if (!b.is_none()) {
    const auto ba = b.cast<py::array>();
    const bool f32 = out_is_float(ba, "b", f, 1);
    shape_is(ba, "b", {g.K});
    bias.resize(g.K);
    if (f32)
      std::memcpy(bias.data(), ba.data(), sizeof(float) * g.K);
    else
      convnet::half16_to_float(f, static_cast<const std::uint16_t*>(ba.data()), bias.data(),
                               g.K, 1);
  }
  void* py_ = y.mutable_data();
  py::gil_scoped_release nogil;
  into_output(py_, g.N * g.K * g.P * g.Q, false, f, false, [&](float* out) {
    convnet::conv2d_forward16(f, g, px, pw_, out);
    if (bias.empty()) return;
    const index_t plane = g.P * g.Q;
#pragma omp parallel for schedule(static) num_threads(convnet::threads_for(double(g.N) * g.K * plane))
    for (index_t nk = 0; nk < g.N * g.K; ++nk) {
      const float add = bias[nk % g.K];
      float* row = out + nk * plane;
      for (index_t i = 0; i < plane; ++i) row[i] += add;
    }
  });
}

// dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W) in f
void conv2d_backward_data16(Half16 f, const py::array& dy, const py::array& w, py::array dx,
                            index_t sh, index_t sw, index_t ph, index_t pw, index_t dh,
                            index_t dw) {
  const std::uint16_t* pdy = bits(dy, "dy", f, 4);
  const std::uint16_t* pw_ = bits(w, "w", f, 4);
  need(dx, "dx", 4, true);
  if (!has_dtype(dx, fmt_name(f), 2))
    throw py::type_error(std::string("dx: expected dtype ") + fmt_name(f));
  const auto g = conv_geom(dx, w, dy, sh, sw, ph, pw, dh, dw);
  void* pdx = dx.mutable_data();
  py::gil_scoped_release nogil;
  into_output(pdx, g.N * g.C * g.H * g.W, false, f, false,
              [&](float* out) { convnet::conv2d_backward_data16(f, g, pdy, pw_, out); });
}

// dy (N,K,P,Q), x (N,C,H,W) -> dw_out (K,C,R,S) in f or float32
void conv2d_backward_weight16(Half16 f, const py::array& dy, const py::array& x,
                              py::array dw_out, index_t sh, index_t sw, index_t ph, index_t pw,
                              index_t dh, index_t dw) {
  const std::uint16_t* pdy = bits(dy, "dy", f, 4);
  const std::uint16_t* px = bits(x, "x", f, 4);
  const bool f32 = out_is_float(dw_out, "dw_out", f, 4);
  const auto g = conv_geom(x, dw_out, dy, sh, sw, ph, pw, dh, dw);
  void* pdw = dw_out.mutable_data();
  py::gil_scoped_release nogil;
  into_output(pdw, g.K * g.crs(), f32, f, false,
              [&](float* out) { convnet::conv2d_backward_weight16(f, g, pdy, px, out); });
}

// The 16-bit format of an array, or an error naming it.
Half16 format_of(const py::array& a, const char* name) {
  if (has_dtype(a, "bfloat16", 2)) return Half16::bfloat16;
  if (has_dtype(a, "float16", 2) && convnet::half16_supported(Half16::float16))
    return Half16::float16;
  throw py::type_error(std::string(name) + ": expected dtype bfloat16 or float16, got " +
                       py::str(a.dtype()).cast<std::string>());
}

// src (16-bit) <-> dst (float32), same shape, both C-contiguous; narrowing rounds to
// nearest even. `to_float` says which way.
void convert16(py::array src, py::array dst, bool to_float) {
  py::array& half = to_float ? src : dst;
  py::array& full = to_float ? dst : src;
  const Half16 f = format_of(half, to_float ? "src" : "dst");
  if (!has_dtype(full, "float32", 4))
    throw py::type_error(std::string(to_float ? "dst" : "src") + ": expected dtype float32");
  need(src, "src", static_cast<int>(src.ndim()), false);
  need(dst, "dst", static_cast<int>(src.ndim()), true);
  for (int d = 0; d < src.ndim(); ++d)
    if (src.shape(d) != dst.shape(d)) throw py::value_error("dst: shape differs from src's");
  const index_t n = src.size();
  const int nt = convnet::threads_for(double(n), 1 << 20);  // memory-bound: big arrays only
  if (to_float) {
    const auto* in = static_cast<const std::uint16_t*>(src.data());
    auto* out = static_cast<float*>(dst.mutable_data());
    py::gil_scoped_release nogil;
    convnet::half16_to_float(f, in, out, n, nt);
  } else {
    const auto* in = static_cast<const float*>(src.data());
    auto* out = static_cast<std::uint16_t*>(dst.mutable_data());
    py::gil_scoped_release nogil;
    convnet::float_to_half16(f, in, out, n, nt);
  }
}

}  // namespace

void bind_bf16(py::module_& m) {
  using py::arg;
  for (Half16 f : {Half16::bfloat16, Half16::float16}) {
    if (!convnet::half16_supported(f)) continue;  // float16 without F16C: float32 copies
    const std::string suffix = std::string("_") + fmt_name(f);
    m.def(("gemm" + suffix).c_str(),
          [f](py::array a, py::array b, py::array c, double alpha, double beta, bool trans_a,
              bool trans_b) { gemm16(f, a, b, c, alpha, beta, trans_a, trans_b); },
          arg("a"), arg("b"), arg("c"), arg("alpha"), arg("beta"), arg("trans_a"),
          arg("trans_b"),
          "c = alpha * op(a) @ op(b) + beta * c in place; a, b 16-bit, c 16-bit or float32; "
          "float32 accumulation.");
    m.def(("conv2d_forward" + suffix).c_str(),
          [f](py::array x, py::array w, py::object b, py::array y, index_t sh, index_t sw,
              index_t ph, index_t pw, index_t dh, index_t dw) {
            conv2d_forward16(f, x, w, b, y, sh, sw, ph, pw, dh, dw);
          },
          arg("x"), arg("w"), arg("b"), arg("y"), arg("sh"), arg("sw"), arg("ph"), arg("pw"),
          arg("dh"), arg("dw"),
          "x (N,C,H,W), w (K,C,R,S) 16-bit, b (K) 16-bit/float32/None -> y (N,K,P,Q) 16-bit; "
          "float32 accumulation.");
    m.def(("conv2d_backward_data" + suffix).c_str(),
          [f](py::array dy, py::array w, py::array dx, index_t sh, index_t sw, index_t ph,
              index_t pw, index_t dh, index_t dw) {
            conv2d_backward_data16(f, dy, w, dx, sh, sw, ph, pw, dh, dw);
          },
          arg("dy"), arg("w"), arg("dx"), arg("sh"), arg("sw"), arg("ph"), arg("pw"), arg("dh"),
          arg("dw"), "dy (N,K,P,Q), w (K,C,R,S) -> dx (N,C,H,W), 16-bit; float32 accumulation.");
    m.def(("conv2d_backward_weight" + suffix).c_str(),
          [f](py::array dy, py::array x, py::array dw_out, index_t sh, index_t sw, index_t ph,
              index_t pw, index_t dh, index_t dw) {
            conv2d_backward_weight16(f, dy, x, dw_out, sh, sw, ph, pw, dh, dw);
          },
          arg("dy"), arg("x"), arg("dw_out"), arg("sh"), arg("sw"), arg("ph"), arg("pw"),
          arg("dh"), arg("dw"),
          "dy (N,K,P,Q), x (N,C,H,W) 16-bit -> dw_out (K,C,R,S) 16-bit or float32; float32 "
          "accumulation.");
  }
  m.def("widen16", [](py::array src, py::array dst) { convert16(src, dst, true); },
        py::arg("src"), py::arg("dst"),
        "dst (float32) = src (bfloat16 or float16, F16C), same shape, in parallel.");
  m.def("narrow16", [](py::array src, py::array dst) { convert16(src, dst, false); },
        py::arg("src"), py::arg("dst"),
        "dst (bfloat16 or float16) = src (float32) rounded to nearest even, in parallel.");
  using convnet::Bf16Path;
  m.def("bf16_gemm_path", [] { return convnet::bf16_path_name(convnet::bf16_path()); },
        "The bfloat16 GEMM path in use: 'avx512bf16' (vdpbf16ps), 'convert' (float32 "
        "after conversion in packing) or 'emulated' (tests).");
  m.def("bf16_gemm_paths", [] {
        py::list out;
        for (Bf16Path p : {Bf16Path::avx512bf16, Bf16Path::emulated, Bf16Path::convert})
          if (convnet::bf16_path_available(p)) out.append(convnet::bf16_path_name(p));
        return out;
      },
      "The bfloat16 GEMM paths this build and CPU can run.");
  m.def("set_bf16_gemm_path", [](const std::string& name) {
        for (Bf16Path p : {Bf16Path::avx512bf16, Bf16Path::emulated, Bf16Path::convert})
          if (name == convnet::bf16_path_name(p)) {
            if (!convnet::bf16_path_available(p))
              throw py::value_error("path: '" + name + "' is not available on this build/CPU");
            convnet::set_bf16_path(p);
            return;
          }
        throw py::value_error("path: expected 'avx512bf16', 'emulated' or 'convert', got '" +
                              name + "'");
      },
      arg("path"), "Force a bfloat16 GEMM path (tests compare them).");
}
