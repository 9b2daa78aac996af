"""The one place that compares kernels with their oracles.

``torch_or_skip`` gives PyTorch CPU (the independent oracle) or skips with the reason;
``assert_close`` compares with a tolerance relative to the expected output's largest
magnitude (float32: 1e-4 of the norm, tight enough to catch a wrong index or a missing
term; float64: 1e-10).
"""

import numpy as np
import pytest

TOLERANCE = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed; "
                               "pip install torch==2.13.0 to run the oracle comparisons")


def to_torch(a, requires_grad=False):
    torch = torch_or_skip()
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def assert_close(actual, expected, dtype=None, what="", scale=1.0):
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values in the result"
    dtype = np.dtype(dtype if dtype is not None else actual.dtype)
    # rounding grows with the reduction length; `scale` lets a test with long sums say so
    tol = TOLERANCE[dtype] * scale
    norm = max(float(np.abs(expected).max(initial=0.0)), 1e-30)
    err = float(np.abs(actual.astype(np.float64) - expected).max(initial=0.0)) / norm
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.1g}"
    return err


def finite_difference(f, x, direction, eps=1e-6):
    """Directional derivative of sum(f(x) * weight) style scalar functions, central."""
    return (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)
