"""F.conv_transpose2d and F.interpolate against PyTorch (forward, gradients) and float64
finite differences, over float32/float64 and the native/Numba kernel backends."""

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from tests.helpers import check_op


@pytest.fixture
def kernels_backend(backend):
    with cn.kernels.use_backend(backend):
        yield backend


@pytest.mark.parametrize("stride,padding,output_padding,dilation", [
    (1, 0, 0, 1), (2, 1, 1, 1), (3, 1, 2, 1), ((2, 1), (0, 2), (1, 0), 1), (1, 1, 1, 2),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d(torch, stride, padding, output_padding, dilation, bias, dtype,
                          kernels_backend, rng):
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((3, 4, 3, 2)) / 3
    b = rng.standard_normal(4)
    inputs = [x, w, b] if bias else [x, w]
    geo = (stride, padding, output_padding)

    def ours(*t):
        return F.conv_transpose2d(t[0], t[1], t[2] if bias else None, *geo, 1, dilation)

    def theirs(*t):
        return TF.conv_transpose2d(t[0], t[1], t[2] if bias else None, *geo, 1, dilation)

    check_op(ours, theirs, inputs, dtype)


def test_conv_transpose2d_groups_refused(rng):
    x = cn.tensor(rng.standard_normal((1, 2, 3, 3)).astype(np.float32))
    w = cn.tensor(rng.standard_normal((2, 1, 3, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="groups"):
        F.conv_transpose2d(x, w, groups=2)


@pytest.mark.parametrize("kw", [{"size": (7, 9)}, {"scale_factor": 2}, {"scale_factor": (1.5, 2.5)},
                                {"size": 3}, {"scale_factor": 0.5}])
@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("bilinear", False),
                                                ("bilinear", True), ("bilinear", None)])
def test_interpolate(torch, kw, mode, align_corners, dtype, kernels_backend, rng):
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, 5, 6))

    def ours(t):
        return F.interpolate(t, mode=mode, align_corners=align_corners, **kw)

    def theirs(t):
        return TF.interpolate(t, mode=mode, align_corners=align_corners, **kw)

    check_op(ours, theirs, [x], dtype)


def test_interpolate_recompute_scale_factor(torch, rng):
    TF = torch.nn.functional
    x = rng.standard_normal((1, 2, 3, 4))
    for mode in ("nearest", "bilinear"):
        y = F.interpolate(cn.tensor(x), scale_factor=1.7, mode=mode, recompute_scale_factor=True)
        yt = TF.interpolate(torch.tensor(x), scale_factor=1.7, mode=mode,
                            recompute_scale_factor=True)
        np.testing.assert_allclose(y.numpy(), yt.numpy(), rtol=1e-12, atol=1e-12)


def test_interpolate_bad_arguments(rng):
    x = cn.tensor(rng.standard_normal((1, 2, 3, 4)).astype(np.float32))
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(x, size=4, scale_factor=2)
    with pytest.raises(ValueError, match="mode"):
        F.interpolate(x, size=4, mode="bicubic")
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, size=4, mode="nearest", align_corners=True)
    with pytest.raises(ValueError, match="input: expected"):
        F.interpolate(cn.tensor(np.zeros((2, 3, 4), np.float32)), size=4)
    with pytest.raises(ValueError, match="at least 1x1"):
        F.interpolate(x, scale_factor=0.1)


def test_embedding(torch, dtype, rng):
    TF = torch.nn.functional
    idx = np.array([[1, 4, 4], [0, 1, 3]])
    w = rng.standard_normal((5, 6))
    check_op(lambda i, t: F.embedding(i, t), lambda i, t: TF.embedding(i, t), [idx, w], dtype,
             needs_grad=[False, True])
