// The convolution geometry in the index widths the implicit-GEMM loaders use (conv2d.cu on
// CUDA cores, conv2d_tc.cu on tensor cores).
#pragma once

#include "kernels.cuh"

namespace convnet {
namespace cuda {

struct Dims {
  int C, H, W, K, P, Q, sh, sw, ph, pw;
  index_t CHW, PQ, KPQ, HW, CRS;
};

inline Dims dims_of(const ConvGeom& g) {
  return Dims{int(g.C),  int(g.H),  int(g.W),  int(g.K),  int(g.P),
              int(g.Q),  int(g.sh), int(g.sw), int(g.ph), int(g.pw),
              g.C * g.H * g.W, g.P * g.Q, g.K * g.P * g.Q, g.H * g.W, g.C * g.R * g.S};
}

}  // namespace cuda
}  // namespace convnet
