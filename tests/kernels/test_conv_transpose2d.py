"""Transposed convolution kernels (the convolution kernels with the roles swapped) against
PyTorch's conv_transpose2d, a direct scatter loop in float64, and finite differences."""

import math

import numpy as np
import pytest

import convnet as cn
from tests.helpers import assert_close, finite_difference, to_torch, torch_or_skip

K = cn.kernels

# (N, Cin, H, W), (Cout, R, S), stride, padding, output_padding, dilation
CASES = [
    ((1, 1, 1, 1), (1, 1, 1), 1, 0, 0, 1),
    ((2, 3, 5, 6), (4, 3, 3), 2, 1, 1, 1),              # the usual "double the size" block
    ((2, 3, 7, 7), (2, 4, 4), 2, 1, 0, 1),              # DCGAN's 4x4 stride 2
    ((1, 2, 4, 5), (3, 2, 3), (2, 3), (0, 1), (1, 2), (1, 3)),  # per-axis everything
    ((3, 5, 4, 4), (7, 3, 3), 3, 0, 2, 1),              # stride 3, largest output_padding
    ((2, 3, 5, 5), (2, 3, 3), 1, 3, 0, 1),              # padding beyond the kernel: shrinks
    ((2, 3, 4, 4), (2, 3, 3), 1, 2, 1, 2),              # output_padding < dilation, stride 1
    ((2, 3, 5, 5), (2, 3, 3), 3, 1, 2, 2),
    ((1, 4, 7, 3), (5, 1, 1), 2, 0, 1, 1),              # 1x1 kernel with stride: sparse output
    ((2, 17, 3, 3), (9, 5, 5), 1, 2, 0, 1),             # odd channels, stride 1
    ((4, 16, 7, 7), (8, 4, 4), 2, 1, 0, 1),             # generator-sized
    ((1, 1, 6, 6), (1, 2, 2), 2, 0, 0, 1),              # exact 2x "unpooling"
]
IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-op{c[4]}-d{c[5]}".replace(" ", "") for c in CASES]


def make(rng, x_shape, kshape, dtype):
    cin = x_shape[1]
    cout, r, s = kshape
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal((cin, cout, r, s)) / math.sqrt(cin * r * s)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    return x, w, b


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def scatter_reference(x, w, b, stride, padding, output_padding, dilation):
    """Every input pixel adds x * w[cin] at (h*s - p + r*d, w*s - p + s*d): loops, float64."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    (oph, opw), (dh, dw) = pair(output_padding), pair(dilation)
    n, cin, h, wd = x.shape
    _, cout, r, s = w.shape
    ho = (h - 1) * sh - 2 * ph + dh * (r - 1) + oph + 1
    wo = (wd - 1) * sw - 2 * pw + dw * (s - 1) + opw + 1
    y = np.zeros((n, cout, ho, wo)) + np.asarray(b, np.float64)[None, :, None, None]
    for i in range(h):
        for j in range(wd):
            for a in range(r):
                for c in range(s):
                    oh, ow = i * sh - ph + a * dh, j * sw - pw + c * dw
                    if 0 <= oh < ho and 0 <= ow < wo:
                        y[:, :, oh, ow] += np.einsum("nc,ck->nk", x[:, :, i, j], w[:, :, a, c])
    return y


def torch_convt(x, w, b, stride, padding, output_padding, dilation):
    torch = torch_or_skip()
    xt, wt, bt = to_torch(x, True), to_torch(w, True), to_torch(b, True)
    y = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride, padding, output_padding, 1,
                                             dilation)
    return y, xt, wt, bt


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv_transpose2d_matches_torch(case, backend, dtype, rng):
    x_shape, kshape, *geo = case
    x, w, b = make(rng, x_shape, kshape, dtype)
    y_t, xt, wt, bt = torch_convt(x, w, b, *geo)
    y = K.conv_transpose2d_forward(x, w, b, *geo, backend=backend)
    assert y.dtype == dtype
    assert y.shape == tuple(y_t.shape) == K.conv_transpose2d_output_shape(x.shape, w.shape, *geo)
    assert_close(y, y_t.detach().numpy(), dtype, "forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(to_torch(dy))
    dx = K.conv_transpose2d_backward_data(dy, w, x.shape, *geo, backend=backend)
    dw = K.conv_transpose2d_backward_weight(dy, x, w.shape, *geo, backend=backend)
    db = K.conv2d_backward_bias(dy, backend=backend)
    assert_close(dx, xt.grad.numpy(), dtype, "backward data")
    assert_close(dw, wt.grad.numpy(), dtype, "backward weight", scale=4)
    assert_close(db, bt.grad.numpy(), dtype, "backward bias")


@pytest.mark.parametrize("case", CASES[:9], ids=IDS[:9])
def test_conv_transpose2d_matches_scatter_loops(case, backend, rng):
    x_shape, kshape, *geo = case
    x, w, b = make(rng, x_shape, kshape, np.float64)
    y = K.conv_transpose2d_forward(x, w, b, *geo, backend=backend)
    assert_close(y, scatter_reference(x, w, b, *geo), np.float64, "forward")


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5], CASES[6], CASES[7]],
                         ids=[IDS[1], IDS[3], IDS[5], IDS[6], IDS[7]])
def test_conv_transpose2d_gradients_finite_difference(case, backend, rng):
    x_shape, kshape, *geo = case
    x, w, b = make(rng, x_shape, kshape, np.float64)
    y = K.conv_transpose2d_forward(x, w, b, *geo, backend=backend)
    dy = rng.standard_normal(y.shape)

    def loss_x(xv):
        return float(np.sum(K.conv_transpose2d_forward(xv, w, b, *geo, backend=backend) * dy))

    def loss_w(wv):
        return float(np.sum(K.conv_transpose2d_forward(x, wv, b, *geo, backend=backend) * dy))

    vx, vw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
    dx = K.conv_transpose2d_backward_data(dy, w, x.shape, *geo, backend=backend)
    dw = K.conv_transpose2d_backward_weight(dy, x, w.shape, *geo, backend=backend)
    assert np.sum(dx * vx) == pytest.approx(finite_difference(loss_x, x, vx), rel=1e-7)
    assert np.sum(dw * vw) == pytest.approx(finite_difference(loss_w, w, vw), rel=1e-7)


def test_backends_agree(rng):
    avail = [n for n in ("native", "numba") if cn.backends()[n]["available"]]
    if len(avail) < 2:
        pytest.skip(f"only {avail} available")
    x, w, b = make(rng, (3, 6, 9, 8), (5, 4, 4), np.float32)
    ys = [K.conv_transpose2d_forward(x, w, b, 2, 1, backend=n) for n in avail]
    assert_close(ys[1], ys[0], np.float32, "numba vs native")


def test_output_shapes():
    assert K.conv_transpose2d_output_shape((1, 100, 1, 1), (100, 64, 7, 7)) == (1, 64, 7, 7)
    assert K.conv_transpose2d_output_shape((2, 64, 7, 7), (64, 32, 4, 4), 2, 1) == (2, 32, 14, 14)
    assert K.conv_transpose2d_output_shape((2, 8, 7, 7), (8, 1, 3, 3), 2, 1, 1) == (2, 1, 14, 14)


def test_bad_arguments_are_refused(rng):
    x, w, b = make(rng, (2, 3, 5, 5), (4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="output_padding"):
        K.conv_transpose2d_forward(x, w, b, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="w: has 4 input channels"):
        K.conv_transpose2d_forward(x, np.ascontiguousarray(w.transpose(1, 0, 2, 3)))
    with pytest.raises(ValueError, match="b: expected shape"):
        K.conv_transpose2d_forward(x, w, b[:2])
    with pytest.raises(ValueError, match="padding"):
        K.conv_transpose2d_forward(x, w, padding=5)
    with pytest.raises(ValueError, match="padding"):
        K.conv_transpose2d_forward(x, w, padding="same")
    with pytest.raises(TypeError, match="w: dtype"):
        K.conv_transpose2d_forward(x, w.astype(np.float64))
    with pytest.raises(ValueError, match="dy: expected the output shape"):
        K.conv_transpose2d_backward_data(np.zeros((2, 4, 6, 6), np.float32), w, x.shape)
