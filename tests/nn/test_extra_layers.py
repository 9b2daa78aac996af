"""The model zoo's extra ops and layers against PyTorch: adaptive average pooling, local
response normalisation, constant padding and ceil-mode max pooling (forward, gradients,
float64 finite differences)."""

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from tests.helpers import assert_close, check_op


@pytest.mark.parametrize("shape,out", [
    ((2, 3, 7, 9), (3, 4)),      # uneven bins on both axes, overlapping
    ((1, 2, 5, 5), 3),
    ((2, 1, 1, 1), (6, 6)),      # AlexNet on its minimum input: 1x1 spread to 6x6
    ((3, 2, 13, 13), 6),         # AlexNet 13 -> 6
    ((2, 3, 8, 6), (4, 3)),      # even split: the average-pool kernel
    ((2, 3, 8, 6), (1, 1)),      # global average
    ((2, 3, 8, 7), (2, None)),   # None keeps the width
    ((3, 5, 7), (2, 3)),         # (C, H, W) input
])
def test_adaptive_avg_pool2d(torch, shape, out, dtype, rng):
    TF = torch.nn.functional
    x = rng.standard_normal(shape)
    check_op(lambda t: F.adaptive_avg_pool2d(t, out),
             lambda t: TF.adaptive_avg_pool2d(t, out), [x], dtype, rng=rng)


def test_adaptive_avg_pool2d_bins_are_pytorch_rule():
    # 5 -> 3: bins [0, 2), [1, 4), [3, 5): a wrong rule (e.g. floor ends) changes these values
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    y = F.adaptive_avg_pool2d(cn.tensor(x), (1, 3)).numpy().ravel()
    np.testing.assert_allclose(y, [0.5, 2.0, 3.5])


def test_adaptive_avg_pool2d_refuses_bad_sizes():
    x = cn.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, 0)
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))
    with pytest.raises(ValueError, match="adaptive_avg_pool2d"):
        F.adaptive_avg_pool2d(cn.zeros(4, 4), 2)


@pytest.mark.parametrize("shape,size,alpha,beta,k", [
    ((2, 7, 3, 4), 5, 1e-4, 0.75, 1.0),    # AlexNet's window, odd channel count
    ((2, 6, 3, 3), 4, 0.5, 0.75, 2.0),     # even size: the window is not centred
    ((1, 3, 2, 5), 7, 1.0, 1.5, 0.5),      # window wider than the channels
    ((3, 4, 5), 2, 0.3, 0.6, 1.0),         # (N, C, L)
    ((2, 5, 2, 2), 1, 0.8, 0.75, 1.0),     # size 1: each channel alone
])
def test_local_response_norm(torch, shape, size, alpha, beta, k, dtype, rng):
    TF = torch.nn.functional
    # alpha large enough for the normalisation (and its gradient term) to matter
    x = rng.standard_normal(shape) * 2
    check_op(lambda t: F.local_response_norm(t, size, alpha, beta, k),
             lambda t: TF.local_response_norm(t, size, alpha, beta, k), [x], dtype, rng=rng)


def test_local_response_norm_refuses_bad_input():
    with pytest.raises(ValueError, match="3 dims"):
        F.local_response_norm(cn.zeros(2, 3), 2)
    with pytest.raises(ValueError, match="size"):
        F.local_response_norm(cn.zeros(2, 3, 4), 0)


@pytest.mark.parametrize("widths", [(1, 2), (0, 1, 2, 0), (1, 1, 0, 0, 2, 3)])
def test_pad(torch, widths, dtype, rng):
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, 4, 5))
    check_op(lambda t: F.pad(t, widths, value=0.5), lambda t: TF.pad(t, widths, value=0.5),
             [x], dtype, rng=rng)
    with pytest.raises(ValueError, match="negative"):
        F.pad(cn.tensor(x), (-1, 0))


@pytest.mark.parametrize("shape,kernel,stride,padding", [
    ((2, 3, 16, 16), 3, 2, 0),      # GoogLeNet's 3/2 pools: 16 -> 8 (floor mode: 7)
    ((1, 2, 7, 8), 3, 2, 1),
    ((2, 2, 5, 7), 2, 2, 0),        # odd sizes with the 2/2 pool
    ((1, 1, 1, 1), 2, 2, 0),        # a window that is half padding
    ((1, 2, 4, 4), 2, 3, 1),        # stride > kernel: a last window in the padding is dropped
    ((2, 2, 6, 5), (3, 2), (2, 3), (1, 0)),
])
def test_max_pool2d_ceil_mode(torch, shape, kernel, stride, padding, dtype, rng):
    TF = torch.nn.functional
    x = rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0  # distinct: no ties
    check_op(lambda t: F.max_pool2d(t, kernel, stride, padding, ceil_mode=True),
             lambda t: TF.max_pool2d(t, kernel, stride, padding, ceil_mode=True), [x], dtype,
             rng=rng)


def test_modules_match_torch(torch, dtype, rng):
    x = rng.standard_normal((2, 6, 11, 10)) * 3
    pairs = [
        (cn.nn.AdaptiveAvgPool2d((4, 3)), torch.nn.AdaptiveAvgPool2d((4, 3))),
        (cn.nn.AdaptiveAvgPool2d(5), torch.nn.AdaptiveAvgPool2d(5)),
        (cn.nn.LocalResponseNorm(3, alpha=0.1, k=2.0),
         torch.nn.LocalResponseNorm(3, alpha=0.1, k=2.0)),
        (cn.nn.MaxPool2d(3, 2, ceil_mode=True), torch.nn.MaxPool2d(3, 2, ceil_mode=True)),
    ]
    for ours, theirs in pairs:
        xo = cn.tensor(x.astype(dtype), requires_grad=True)
        xt = torch.tensor(x.astype(dtype).astype(np.float64), requires_grad=True)
        y, yt = ours(xo), theirs(xt)
        assert_close(y.numpy(), yt.detach().numpy(), dtype, repr(ours))
        dy = rng.standard_normal(y.shape)
        y.backward(cn.tensor(dy.astype(dtype)))
        yt.backward(torch.tensor(dy))
        assert_close(xo.grad.numpy(), xt.grad.numpy(), dtype, f"{ours!r} grad")
        assert ours.state_dict() == {}
