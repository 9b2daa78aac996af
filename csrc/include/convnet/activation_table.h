// The activations computed from a scalar formula: each is a struct in its own header with
// static forward(x, p) and derivative(x, p) (host and device, p one scalar parameter),
// backward being dx = dy * derivative(x, p). csrc/cpu/activation.cpp and
// csrc/cuda/activation.cu instantiate their loops for every row of this table, and both
// bindings expose NAME_forward(x, y, p) and NAME_backward(dy, x, dx, p) for it. Adding one
// to the C++ and CUDA backends: its header, and one line here.
#pragma once

#include "convnet/gelu_math.h"

// X(python name, struct in convnet::math)
#define CONVNET_FORMULA_ACTIVATIONS(X) X(gelu, Gelu)
