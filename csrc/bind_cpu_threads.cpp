// Threads the kernels actually take (see available_threads in cpu/runtime.cpp).
#include <pybind11/pybind11.h>

#include "convnet/common.h"

void bind_threads(pybind11::module_& m) {
  m.def("available_threads", &convnet::available_threads,
        "get_num_threads(), or fewer while other processes keep cores busy "
        "(CONVNET_ADAPTIVE_THREADS=0: always get_num_threads()).");
}
