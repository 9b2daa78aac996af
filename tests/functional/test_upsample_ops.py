"""F.conv_transpose2d and F.interpolate against PyTorch (forward, gradients) and float64
finite differences, over float32/float64 and the native/Numba kernel backends."""

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from tests.helpers import check_op

torch = pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed")
TF = torch.nn.functional


@pytest.fixture
def kernels_backend(backend):
    with cn.kernels.use_backend(backend):
        yield backend


@pytest.mark.parametrize("stride,padding,output_padding,dilation", [
    (1, 0, 0, 1), (2, 1, 1, 1), (3, 1, 2, 1), ((2, 1), (0, 2), (1, 0), 1), (1, 1, 1, 2),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d(stride, padding, output_padding, dilation, bias, dtype,
                          kernels_backend, rng):
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
