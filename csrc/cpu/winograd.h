// Winograd F(4x4, 3x3) convolution for 3x3, stride-1, undilated layers (csrc/cpu/winograd.cpp).
//
// Each 4x4 output tile comes from a 6x6 input tile with 36 multiplications per (filter,
// channel) pair instead of 144: the input and filter tiles are transformed, the 36
// element-wise products summed over channels become 36 independent GEMMs (K x C times
// C x tiles) on the packed GEMM of gemm.h, and the output transform folds the 36 sums back
// into the 4x4 tile (applying the bias and activation epilogue on the way).
#pragma once

#include <cstddef>

#include "epilogue.h"
#include "kernels.h"

namespace convnet {

// Which algorithm 3x3 stride-1 convolutions use: kWinogradAuto picks by a measured rule,
// kWinogradAlways takes Winograd wherever it applies (3x3, stride 1, dilation 1; forward, data and weight
// gradients), kWinogradNever
// keeps the implicit-GEMM/direct paths. The initial mode comes from the environment variable
// CONVNET_CONV_ALGO (auto | winograd | gemm), read once.
enum WinogradMode { kWinogradNever = -1, kWinogradAuto = 0, kWinogradAlways = 1 };
void set_winograd_mode(int mode);
int get_winograd_mode();

// True when the geometry allows Winograd F(4x4, 3x3) (3x3 filters, stride 1, dilation 1).
bool winograd_applies(const ConvGeom& g);
// True when conv2d_forward should run this geometry on Winograd (the mode and the rule).
bool winograd_selected(const ConvGeom& g, std::size_t elem);
// The same for conv2d_backward_data, which runs as the forward convolution of dy with the
// flipped filters (padding dilation*(R-1) - pad).
bool winograd_selected_backward_data(const ConvGeom& g, std::size_t elem);

// The same for conv2d_backward_weight.
bool winograd_selected_backward_weight(const ConvGeom& g, std::size_t elem);

// True when conv2d.cpp's flat stride-1 path (a zero-padded image streamed from cache, no
// im2col) takes this forward geometry.
bool conv2d_flat_fits(const ConvGeom& g, std::size_t elem);
// The same for conv2d_backward_weight's flat path (dot products along the padded planes).
bool conv2d_flat_weight_fits(const ConvGeom& g, std::size_t elem);

// x (N,C,H,W), w (K,C,3,3) -> y (N,K,P,Q) = ep(conv(x, w)), ep per filter row (bias and
// activation applied in the output transform); needs winograd_applies(g).
template <typename T>
void conv2d_forward_winograd(const ConvGeom& g, const T* x, const T* w, const Epilogue<T>& ep,
                             T* y);

// dy (N,K,P,Q), x (N,C,H,W) -> dw (K,C,3,3); needs winograd_applies(g).
template <typename T>
void conv2d_backward_weight_winograd(const ConvGeom& g, const T* dy, const T* x, T* dw);

}  // namespace convnet
