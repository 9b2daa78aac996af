// Bindings of the convolution algorithm setting (csrc/cpu/winograd.h).
#include <pybind11/pybind11.h>

#include <string>

#include "cpu/winograd.h"

namespace py = pybind11;

void bind_winograd(py::module_& m) {
  m.def(
      "set_conv_algorithm",
      [](const std::string& name) {
        if (name == "auto")
          convnet::set_winograd_mode(convnet::kWinogradAuto);
        else if (name == "winograd")
          convnet::set_winograd_mode(convnet::kWinogradAlways);
        else if (name == "gemm")
          convnet::set_winograd_mode(convnet::kWinogradNever);
        else
          throw py::value_error("algorithm: expected 'auto', 'winograd' or 'gemm', got '" + name +
                                "'");
      },
      py::arg("algorithm"),
      "Algorithm of 3x3 stride-1 convolutions (forward and data gradient): 'auto' (measured "
      "rule), 'winograd' (F(4x4,3x3) wherever it applies) or 'gemm' (implicit GEMM/direct).");
  m.def("get_conv_algorithm", []() -> std::string {
    const int mode = convnet::get_winograd_mode();
    return mode > 0 ? "winograd" : (mode < 0 ? "gemm" : "auto");
  });
}
