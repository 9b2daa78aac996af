"""The native 16-bit convolutions (conv2d_*_bfloat16 / _float16 in csrc/cpu/conv2d.cpp):
16-bit inputs, float32 accumulation, on every bfloat16 GEMM path of this build and CPU.

The bound, derived per element as for the GEMM (tests/kernels/test_gemm_bf16.py): each
output is a sum of n products of exact 16-bit values (n = C*R*S for forward, K*R*S for
the data gradient, N*P*Q for the weight gradient) plus the bias, summed in float32:
|y32 - y| <= gamma_(n+2) S with S the same sum over absolute values (the reference run on
|inputs|), then rounded to the 16-bit output: |y16 - y| <= u |y| + (1 + u) gamma_(n+2) S.
"""

from __future__ import annotations

import numpy as np
import pytest

import convnet as cn
from convnet.kernels import reference as ref
from tests.helpers import bf16_gemm_paths

U32 = 2.0**-24
UNIT = {"bfloat16": 2.0**-8, "float16": 2.0**-11}
# x shape, w shape, (sh, sw), (ph, pw), (dh, dw): per-image panels (28x28), dense panels
# (few pixels), stride 2, dilation, non-square kernels, one channel, 1x1, and padding
# larger than the kernel's reach (the flipped convolution of the data gradient crops).
# Layers with few filters take the float32 kernels' own paths on widened copies (direct
# forward, dot-product weight gradient, col2im); the others run on the 16-bit GEMM.
GEOMETRIES = [
    ((2, 16, 28, 28), (32, 16, 3, 3), (1, 1), (1, 1), (1, 1)),
    ((3, 8, 5, 5), (64, 8, 3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 5, 11, 9), (7, 5, 3, 2), (2, 2), (1, 0), (1, 1)),
    ((1, 3, 12, 12), (4, 3, 3, 3), (1, 2), (2, 1), (2, 1)),
    ((2, 1, 9, 9), (6, 1, 5, 5), (1, 1), (0, 0), (1, 1)),
    ((2, 24, 7, 7), (50, 24, 1, 1), (1, 1), (0, 0), (1, 1)),
    ((2, 3, 6, 6), (4, 3, 1, 3), (1, 1), (1, 1), (1, 1)),  # padding past a 1-row kernel
    ((2, 40, 9, 9), (36, 40, 3, 3), (1, 1), (1, 1), (1, 1)),  # data gradient on the GEMM
]


def _native():
    native = cn.kernels._registry.get("native")
    if native is None or not hasattr(native, "conv2d_forward_bfloat16"):
        pytest.skip("native backend without the 16-bit convolutions")
    return native


def _check(got, want, s, n, unit):
    gamma = (n + 2) * U32 / (1 - (n + 2) * U32)
    bound = unit * np.abs(want) + (1 + unit) * gamma * s
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= bound), float((err - bound).max())


@pytest.mark.parametrize("bf16_path", bf16_gemm_paths(), indirect=True)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("geo", GEOMETRIES, ids=lambda g: "x{}w{}s{}p{}d{}".format(*g))
def test_conv16_within_the_derived_bound(bf16_path, dtype, geo):
    native = _native()
    if not hasattr(native, f"conv2d_forward_{dtype}"):
        pytest.skip(f"no native {dtype} convolution in this build")
    dt = np.dtype(cn.bfloat16) if dtype == "bfloat16" else np.dtype(np.float16)
    u = UNIT[dtype]
    x_shape, w_shape, stride, pad, dil = geo
    (n, c, h, w_), (k, _, r, s) = x_shape, w_shape
    p = (h + 2 * pad[0] - dil[0] * (r - 1) - 1) // stride[0] + 1
    q = (w_ + 2 * pad[1] - dil[1] * (s - 1) - 1) // stride[1] + 1
    geom = (*stride, *pad, *dil)
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(dt)
    w = rng.standard_normal(w_shape).astype(dt)
    b = rng.standard_normal(k).astype(dt)
    dy = rng.standard_normal((n, k, p, q)).astype(dt)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))

    def run_ref(kernel, *ins, out_shape):
        out = np.zeros(out_shape)
        getattr(ref, kernel)(*ins, out, *geom)
        return out

    for bias, b_arr in ((None, None), (b, b64), (b.astype(np.float32), b64)):
        y = np.full((n, k, p, q), np.nan, dt)
        getattr(native, f"conv2d_forward_{dtype}")(x, w, bias, y, *geom)
        want = run_ref("conv2d_forward", x64, w64, b_arr, out_shape=y.shape)
        sb = None if b_arr is None else np.abs(b_arr)
        _check(y, want, run_ref("conv2d_forward", np.abs(x64), np.abs(w64), sb,
                                out_shape=y.shape), c * r * s, u)

    dx = np.full(x_shape, np.nan, dt)
    getattr(native, f"conv2d_backward_data_{dtype}")(dy, w, dx, *geom)
    _check(dx, run_ref("conv2d_backward_data", dy64, w64, out_shape=x_shape),
           run_ref("conv2d_backward_data", np.abs(dy64), np.abs(w64), out_shape=x_shape),
           k * r * s, u)

    for out_dt, unit in ((dt, u), (np.dtype(np.float32), 0.0)):
        dw = np.full(w_shape, np.nan, out_dt)
        getattr(native, f"conv2d_backward_weight_{dtype}")(dy, x, dw, *geom)
        _check(dw, run_ref("conv2d_backward_weight", dy64, x64, out_shape=w_shape),
               run_ref("conv2d_backward_weight", np.abs(dy64), np.abs(x64), out_shape=w_shape),
               n * p * q, unit)


def test_the_array_level_api_runs_the_native_16bit_convolution():
    native = _native()
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 10, 10)).astype(cn.bfloat16)
    w = rng.standard_normal((6, 4, 3, 3)).astype(cn.bfloat16)
    y = cn.kernels.conv2d_forward(x, w, padding=1, backend="native")
    direct = np.empty_like(y)
    native.conv2d_forward_bfloat16(x, w, None, direct, 1, 1, 1, 1, 1, 1)
    assert y.dtype == cn.bfloat16
    assert np.array_equal(y.view(np.uint16), direct.view(np.uint16))
    dw = cn.kernels.conv2d_backward_weight(y, x, w.shape, padding=1, backend="native")
    dx = cn.kernels.conv2d_backward_data(y, w, x.shape, padding=1, backend="native")
    assert dw.dtype == dx.dtype == cn.bfloat16


@pytest.mark.parametrize("call,exc,msg", [
    (lambda n, x, w, y: n.conv2d_forward_bfloat16(x.astype(np.float32), w, None, y,
                                                  1, 1, 0, 0, 1, 1), TypeError, "x: expected"),
    (lambda n, x, w, y: n.conv2d_forward_bfloat16(x, w[:, :1].copy(), None, y,
                                                  1, 1, 0, 0, 1, 1), ValueError, "channels"),
    (lambda n, x, w, y: n.conv2d_forward_bfloat16(x, w, np.ones(5, np.float64), y,
                                                  1, 1, 0, 0, 1, 1), TypeError, "b: expected"),
    (lambda n, x, w, y: n.conv2d_forward_bfloat16(x, w, np.ones(4, cn.bfloat16), y,
                                                  1, 1, 0, 0, 1, 1), ValueError, "b: dimension"),
    (lambda n, x, w, y: n.conv2d_forward_bfloat16(x, w, None, y.astype(np.float32),
                                                  1, 1, 0, 0, 1, 1), TypeError, "y: expected"),
    (lambda n, x, w, y: n.conv2d_forward_bfloat16(x, w, None, y, 0, 1, 0, 0, 1, 1),
     ValueError, "stride"),
    (lambda n, x, w, y: n.conv2d_backward_weight_bfloat16(y, x, w.astype(np.float64),
                                                          1, 1, 0, 0, 1, 1),
     TypeError, "dw_out: expected"),
])
def test_conv_bindings_refuse_bad_arrays(call, exc, msg):
    native = _native()
    x = np.ones((1, 2, 5, 5), cn.bfloat16)
    w = np.ones((5, 2, 3, 3), cn.bfloat16)
    y = np.zeros((1, 5, 3, 3), cn.bfloat16)
    with pytest.raises(exc, match=msg):
        call(native, x, w, y)
