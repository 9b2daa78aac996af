"""The one place that compares kernels with their oracles.

``torch_or_skip`` gives PyTorch CPU (the independent oracle) or skips with the reason;
``assert_close`` compares twice: with a tolerance relative to the expected output's largest
magnitude (float32: 2e-5 of the norm, tight enough to catch a wrong index or a missing
term; float64: 1e-10), and per element, |actual - expected| <= atol + rtol * |expected|,
which holds the small elements to their own size where the norm check alone would let
each be off by 2e-5 of the largest one.
"""

import numpy as np
import pytest

TOLERANCE = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}
# Per element: rtol of the element itself, atol in units of the expected output's largest
# magnitude (so that it means the same whatever the data's scale), four times (float32)
# and ten times (float64) tighter than the norm check. Measured over the CPU kernel,
# functional, layer and model tests with these rtols, the largest atol a comparison needed
# was 2.3e-6 (float32: the gradient of a bias that batch norm cancels, exactly 0 in float64,
# a long float32 sum of terms that cancel; GEMM and conv2d sums needed 3.8e-7) and below
# 1e-16 (float64).
ELEMENT_TOLERANCE = {np.dtype(np.float32): (1e-4, 5e-6), np.dtype(np.float64): (1e-9, 1e-11)}


def bf16_gemm_paths():
    """The bfloat16 GEMM paths the native build can force on this CPU (for the
    ``bf16_path`` fixture of tests/kernels/conftest.py)."""
    import convnet as cn

    native = cn.kernels._registry.get("native")
    if native is None or not hasattr(native, "bf16_gemm_paths"):
        return []
    return native.bf16_gemm_paths()


def torch_or_skip():
    return pytest.importorskip("torch", reason="PyTorch (the oracle) is not installed; "
                               "pip install torch==2.13.0 to run the oracle comparisons")


def to_torch(a, requires_grad=False):
    torch = torch_or_skip()
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def assert_close(actual, expected, dtype=None, what="", scale=1.0, floor=1e-30):
    """``floor`` bounds the normaliser from below, for outputs that are ~0 by construction."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values in the result"
    dtype = np.dtype(dtype if dtype is not None else actual.dtype)
    # rounding grows with the reduction length; `scale` lets a test with long sums say so
    tol = TOLERANCE[dtype] * scale
    norm = max(float(np.abs(expected).max(initial=0.0)), floor)
    diff = np.abs(actual.astype(np.float64) - expected)
    err = float(diff.max(initial=0.0)) / norm
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.1g}"
    rtol, atol = ELEMENT_TOLERANCE[dtype]
    bound = atol * scale * norm + rtol * scale * np.abs(expected)
    bad = diff > bound
    if bad.any():
        i = np.unravel_index(int(np.argmax(diff - bound)), diff.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} element(s) beyond atol + rtol * |expected| "
            f"(atol {atol * scale * norm:.2g}, rtol {rtol * scale:.1g}); worst at {i}: "
            f"{actual[i]!r} vs {expected[i]!r}")
    return err


def finite_difference(f, x, direction, eps=1e-6):
    """Directional derivative of sum(f(x) * weight) style scalar functions, central."""
    return (f(x + eps * direction) - f(x - eps * direction)) / (2 * eps)


def check_op(fn, torch_fn, inputs, dtype, *, grad=True, fd=True, scale=1.0, fd_eps=1e-6,
             needs_grad=None, rng=None):
    """Check a differentiable op against PyTorch, forward and gradients, and with float64
    central finite differences.

    fn(*tensors) -> convnet Tensor; torch_fn(*torch_tensors) -> torch tensor; inputs are
    NumPy arrays (float ones get gradients unless ``needs_grad`` says otherwise). The
    float64 finite-difference check needs no oracle: it compares the analytic directional
    derivative <grad, v> with (L(x + eps v) - L(x - eps v)) / (2 eps) for L = sum(f * dy).
    Inputs at kinks (ReLU at 0, max-pool ties) should be avoided by the caller.
    """
    import convnet as cn

    torch = torch_or_skip()
    rng = rng or np.random.default_rng(0)
    if needs_grad is None:
        needs_grad = [np.issubdtype(np.asarray(a).dtype, np.floating) for a in inputs]
    cast = [np.asarray(a, dtype) if ng else np.asarray(a) for a, ng in zip(inputs, needs_grad)]
    ours = [cn.tensor(a, requires_grad=bool(ng and grad)) for a, ng in zip(cast, needs_grad)]
    theirs = [torch.tensor(np.asarray(a, np.float64) if ng else a, requires_grad=bool(ng and grad))
              for a, ng in zip(cast, needs_grad)]
    y = fn(*ours)
    yt = torch_fn(*theirs)
    assert y.dtype == np.dtype(dtype), f"output dtype {y.dtype}, expected {np.dtype(dtype)}"
    assert_close(y.numpy(), yt.detach().numpy(), dtype, "forward", scale)
    if not grad:
        return
    dy = rng.standard_normal(y.shape)
    y.backward(cn.tensor(dy.astype(dtype)))
    yt.backward(torch.tensor(dy))
    for i, (a, b, ng) in enumerate(zip(ours, theirs, needs_grad)):
        if ng:
            assert a.grad is not None, f"input {i}: no gradient"
            assert_close(a.grad.numpy(), b.grad.numpy(), dtype, f"grad of input {i}", scale)
    if not fd or np.dtype(dtype) != np.float64:
        return
    for i, ng in enumerate(needs_grad):
        if not ng:
            continue
        v = rng.standard_normal(cast[i].shape)

        def loss(xi, i=i):
            args = [cn.tensor(a) for a in cast]
            args[i] = cn.tensor(xi)
            with cn.no_grad():
                return float(np.sum(fn(*args).numpy() * dy))

        numeric = finite_difference(loss, cast[i], v, fd_eps)
        analytic = float(np.sum(ours[i].grad.numpy() * v))
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-7), \
            f"input {i}: analytic {analytic} vs finite difference {numeric}"
