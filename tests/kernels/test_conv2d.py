import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convnet as cn
from tests.helpers import assert_close, finite_difference, to_torch, torch_or_skip

K = cn.kernels

# (N, C, H, W), (K, R, S), stride, padding, dilation
CASES = [
    ((1, 1, 5, 5), (1, 3, 3), 1, 0, 1),
    ((2, 3, 7, 9), (5, 3, 5), 1, (1, 2), 1),            # non-square kernel, per-axis padding
    ((3, 2, 8, 8), (4, 2, 2), 3, 0, 1),                 # stride larger than the kernel
    ((2, 3, 7, 7), (4, 2, 2), 1, "same", 1),            # even kernel: padding on one side
    ((2, 5, 11, 10), (3, 3, 3), 2, "same", 1),          # TF SAME with stride 2
    ((1, 4, 9, 9), (6, 3, 3), 1, 2, 2),                 # dilation
    ((2, 8, 6, 6), (16, 1, 1), 1, 0, 1),                # pointwise: plain GEMM path
    ((4, 3, 10, 10), (7, 1, 1), 2, 0, 1),               # 1x1 with stride
    ((2, 6, 14, 14), (16, 5, 5), 1, 0, 1),              # LeNet C3
    ((1, 3, 35, 35), (8, 11, 11), 4, 2, 1),             # AlexNet-like 11x11 stride 4
    ((2, 17, 5, 5), (33, 3, 3), 1, 1, 1),               # odd channels across tile edges
    ((2, 40, 6, 6), (20, 3, 3), 1, 1, 1),               # C*R*S = 360 > one GEMM depth block
    ((1, 2, 4, 70), (3, 3, 3), 1, 1, 1),                # rows wider than a SIMD panel
    ((3, 2, 5, 6), (2, 3, 2), (2, 1), ((1, 0), (0, 2)), (1, 2)),  # explicit asymmetric pads
    ((1, 1, 1, 1), (2, 1, 1), 1, 0, 1),
    ((5, 2, 3, 3), (3, 3, 3), 1, "valid", 1),
    ((3, 64, 20, 20), (100, 5, 5), 1, 2, 1),            # col2im chunks that split an image
    ((41, 2, 5, 5), (1024, 1, 1), 1, 0, 1),             # few pixels: chunks of images
    ((128, 16, 5, 5), (120, 5, 5), 1, 0, 1),            # LeNet C5: one output pixel
    ((3, 16, 13, 11), (32, 3, 3), 2, 1, 1),             # strided on stride phases; sub-pixel dx
    ((2, 16, 14, 14), (32, 4, 4), 2, 1, 1),             # DCGAN's 4x4/2 on the same paths
    ((7, 12, 7, 7), (24, 2, 2), 1, 1, 1),               # small planes: images end to end
]
IDS = [f"x{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}-d{c[4]}".replace(" ", "") for c in CASES]


def explicit_pads(x_shape, kernel, stride, padding, dilation):
    """(top, bottom, left, right), computed independently of convnet's own code."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        out = []
        for size, k, s, d in ((x_shape[2], kernel[1], sh, dh), (x_shape[3], kernel[2], sw, dw)):
            total = max((math.ceil(size / s) - 1) * s + d * (k - 1) + 1 - size, 0)
            out += [total // 2, total - total // 2]
        return tuple(out)
    if isinstance(padding, int):
        return (padding,) * 4
    if isinstance(padding[0], int):
        return padding[0], padding[0], padding[1], padding[1]
    return (*padding[0], *padding[1])


def torch_conv(x, w, b, stride, pads, dilation):
    """PyTorch's conv2d in float64 with its gradients: (y, dx, dw, db) for a given dy."""
    torch = torch_or_skip()
    F = torch.nn.functional
    xt, wt = to_torch(x, True), to_torch(w, True)
    bt = to_torch(b, True) if b is not None else None
    t, bo, left, right = pads
    y = F.conv2d(F.pad(xt, (left, right, t, bo)), wt, bt, stride=stride, dilation=dilation)
    return y, xt, wt, bt


def make(rng, x_shape, kshape, dtype):
    n, c, h, w = x_shape
    k, r, s = kshape
    x = rng.standard_normal(x_shape).astype(dtype)
    wt = rng.standard_normal((k, c, r, s)).astype(dtype) / math.sqrt(c * r * s)
    b = rng.standard_normal(k).astype(dtype)
    return x, wt, b


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_matches_torch(case, backend, dtype, rng):
    x_shape, kshape, stride, padding, dilation = case
    x, w, b = make(rng, x_shape, kshape, dtype)
    pads = explicit_pads(x_shape, kshape, stride, padding, dilation)
    y_t, xt, wt, bt = torch_conv(x, w, b, stride, pads, dilation)

    y = K.conv2d_forward(x, w, b, stride, padding, dilation, backend=backend)
    assert y.dtype == dtype
    assert_close(y, y_t.detach().numpy(), dtype, "forward")

    dy = rng.standard_normal(y.shape).astype(dtype)
    y_t.backward(to_torch(dy))
    dx = K.conv2d_backward_data(dy, w, x.shape, stride, padding, dilation, backend=backend)
    dw = K.conv2d_backward_weight(dy, x, w.shape, stride, padding, dilation, backend=backend)
    db = K.conv2d_backward_bias(dy, backend=backend)
    assert_close(dx, xt.grad.numpy(), dtype, "backward data")
    assert_close(dw, wt.grad.numpy(), dtype, "backward weight", scale=4)
    assert_close(db, bt.grad.numpy(), dtype, "backward bias")


@pytest.mark.parametrize("case", CASES[:6] + CASES[13:14], ids=IDS[:6] + IDS[13:14])
def test_conv2d_matches_float64_reference(case, backend, rng):
    from convnet.kernels import reference as ref

    x_shape, kshape, stride, padding, dilation = case
    x, w, b = make(rng, x_shape, kshape, np.float64)
    y = K.conv2d_forward(x, w, b, stride, padding, dilation, backend=backend)
    pads = explicit_pads(x_shape, kshape, stride, padding, dilation)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw_ = (dilation, dilation) if isinstance(dilation, int) else dilation
    args = (sh, sw, pads[0], pads[2], dh, dw_)
    expected = np.empty_like(y)
    ref.conv2d_forward(x, w, b, expected, *args)
    assert_close(y, expected, np.float64, "forward")
    dy = rng.standard_normal(y.shape)
    expected_dx = np.empty_like(x)
    ref.conv2d_backward_data(dy, w, expected_dx, *args)
    assert_close(K.conv2d_backward_data(dy, w, x.shape, stride, padding, dilation,
                                        backend=backend), expected_dx, np.float64, "dx")
    expected_dw = np.empty_like(w)
    ref.conv2d_backward_weight(dy, x, expected_dw, *args)
    assert_close(K.conv2d_backward_weight(dy, x, w.shape, stride, padding, dilation,
                                          backend=backend), expected_dw, np.float64, "dw")


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5], CASES[13]],
                         ids=[IDS[1], IDS[3], IDS[5], IDS[13]])
def test_conv2d_gradients_finite_difference(case, backend, rng):
    """The backward kernels are the derivative of the forward kernel (float64)."""
    x_shape, kshape, stride, padding, dilation = case
    x, w, b = make(rng, x_shape, kshape, np.float64)
    y = K.conv2d_forward(x, w, b, stride, padding, dilation, backend=backend)
    dy = rng.standard_normal(y.shape)

    def loss_x(xv):
        return float(np.sum(K.conv2d_forward(xv, w, b, stride, padding, dilation,
                                             backend=backend) * dy))

    def loss_w(wv):
        return float(np.sum(K.conv2d_forward(x, wv, b, stride, padding, dilation,
                                             backend=backend) * dy))

    vx = rng.standard_normal(x.shape)
    vw = rng.standard_normal(w.shape)
    dx = K.conv2d_backward_data(dy, w, x.shape, stride, padding, dilation, backend=backend)
    dw = K.conv2d_backward_weight(dy, x, w.shape, stride, padding, dilation, backend=backend)
    assert np.sum(dx * vx) == pytest.approx(finite_difference(loss_x, x, vx), rel=1e-7)
    assert np.sum(dw * vw) == pytest.approx(finite_difference(loss_w, w, vw), rel=1e-7)


def test_backends_agree(rng):
    avail = [n for n in ("native", "numba") if cn.backends()[n]["available"]]
    if len(avail) < 2:
        pytest.skip(f"only {avail} available")
    x, w, b = make(rng, (3, 5, 12, 11), (7, 3, 3), np.float32)
    ys = [K.conv2d_forward(x, w, b, 2, "same", backend=n) for n in avail]
    assert_close(ys[1], ys[0], np.float32, "numba vs native")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 3), c=st.integers(1, 6), k=st.integers(1, 9),
    h=st.integers(1, 12), w=st.integers(1, 12), r=st.integers(1, 4), s=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
    dh=st.integers(1, 2), dw=st.integers(1, 2),
)
def test_conv2d_random_geometry(n, c, k, h, w, r, s, sh, sw, ph, pw, dh, dw):
    torch = torch_or_skip()
    if h + 2 * ph < (r - 1) * dh + 1 or w + 2 * pw < (s - 1) * dw + 1:
        with pytest.raises(ValueError, match="larger than the padded input"):
            K.conv2d_output_shape((n, c, h, w), (k, c, r, s), (sh, sw), (ph, pw), (dh, dw))
        return
    rng = np.random.default_rng(n * 1000 + c * 100 + k)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, r, s)).astype(np.float32)
    args = ((sh, sw), (ph, pw), (dh, dw))
    xt, wtt = to_torch(x, True), to_torch(wt, True)
    yt = torch.nn.functional.conv2d(xt, wtt, None, *args)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(to_torch(dy))
    assert_close(K.conv2d_forward(x, wt, None, *args), yt.detach().numpy(), np.float32, "y")
    assert_close(K.conv2d_backward_data(dy, wt, x.shape, *args), xt.grad.numpy(), np.float32,
                 "dx")
    assert_close(K.conv2d_backward_weight(dy, x, wt.shape, *args), wtt.grad.numpy(),
                 np.float32, "dw", scale=4)


def test_noncontiguous_input_is_copied(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xs = np.asfortranarray(x)
    assert not xs.flags.c_contiguous
    np.testing.assert_array_equal(K.conv2d_forward(xs, w, padding=1),
                                  K.conv2d_forward(x, w, padding=1))
    xv = np.repeat(x, 2, axis=3)[..., ::2]
    np.testing.assert_array_equal(K.conv2d_forward(xv, w, padding=1),
                                  K.conv2d_forward(x, w, padding=1))


def test_output_shape_same_padding():
    assert K.conv2d_output_shape((1, 3, 224, 224), (64, 3, 7, 7), 2, "same") == (1, 64, 112, 112)
    assert K.conv2d_output_shape((1, 3, 7, 7), (1, 3, 2, 2), 1, "same") == (1, 1, 7, 7)
    assert K.conv2d_output_shape((2, 3, 227, 227), (96, 3, 11, 11), 4) == (2, 96, 55, 55)
