"""Hypothesis fuzz over the manifest's argument roles, on the native and Numba backends:
every backend-level call, built from random arrays (ranks, sizes, dtypes, memory overlap,
index values) and scalars (in and out of range, NaN, huge), or from a valid call of
``convnet verify`` with one argument changed according to its role, either is refused
with a ValueError/TypeError or gives what the float64 reference gives. A crash or an
out-of-bounds write would kill or corrupt this process; a silent wrong answer fails."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convnet as cn  # noqa: E402
from convnet.kernels import _boundary, spec  # noqa: E402
from convnet.kernels import reference as ref  # noqa: E402

SIZES = st.integers(0, 3) | st.just(1)
INTS = st.sampled_from([0, 1, 1, 2, 3, -1, 2**31, 2**62 + 1])
FLOATS = st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, 1e-20, float("nan"), float("inf"), 1e308])


@st.composite
def _array(draw, arg):
    ndim = arg.ndim if arg.ndim is not None and draw(st.integers(0, 9)) else draw(
        st.integers(1, 3))
    shape = tuple(draw(st.lists(SIZES, min_size=ndim, max_size=ndim)))
    if arg.role in (spec.INDEX, spec.INDEX_OUT):
        dtype = draw(st.sampled_from([np.int64, np.int64, np.int32]))
        return np.asarray(draw(st.lists(st.integers(-2, 40), min_size=int(np.prod(shape)),
                                        max_size=int(np.prod(shape)))),
                          dtype).reshape(shape)
    dtype = draw(st.sampled_from([np.float64, np.float64, np.float64, np.float32, np.int64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = rng.uniform(-2, 2, shape).astype(dtype)
    if draw(st.integers(0, 9)) == 0 and a.ndim >= 1 and a.shape[-1] > 1:
        a = a[..., ::2]  # non-contiguous
    return a


@st.composite
def _call(draw, kernel):
    args = []
    for a in kernel.args:
        if a.role in spec.ARRAY_ROLES:
            if a.role in (spec.OPT, spec.OPT_INOUT) and draw(st.booleans()):
                args.append(None)
            elif args and draw(st.integers(0, 14)) == 0:
                args.append(next((v for v in args if isinstance(v, np.ndarray)), None))
            else:
                args.append(draw(_array(a)))
        elif a.role == spec.INT:
            lo, hi = int(a.lo), int(min(a.hi, 4))
            args.append(draw(st.integers(lo, max(lo, hi)) | INTS))
        elif a.role == spec.FLOAT:
            args.append(draw(st.floats(-3, 3) | FLOATS))
        else:
            args.append(draw(st.booleans() | st.just(1)))
    return args


def _templates(name):
    """Valid calls of the kernel: the cases of ``convnet verify`` (float32 and float64)."""
    from convnet import verify

    out = []
    for _, check in verify._checks():
        if check.kernel == name and len(out) < 6:
            for dt in (np.float64, np.float32):
                args, _ = verify._arguments(check, np.random.default_rng(0), dt)
                out.append(args)
    return out


@st.composite
def _mutated(draw, kernel, templates):
    """A valid call with at most one argument changed, the change chosen by its role."""
    args = _copy(draw(st.sampled_from(templates)))
    i = draw(st.integers(-1, len(args) - 1))
    if i < 0:
        return args  # unchanged: must run and agree with the reference
    a, v = kernel.args[i], args[i]
    if a.role in spec.ARRAY_ROLES and v is not None:
        how = draw(st.sampled_from(["dim", "dtype", "strided", "alias", "none", "values"]))
        if how == "dim" and v.ndim:
            shape = list(v.shape)
            d = draw(st.integers(0, v.ndim - 1))
            shape[d] = max(0, shape[d] + draw(st.sampled_from([-1, 1, -shape[d]])))
            v = np.resize(v, shape)
        elif how == "dtype":
            with np.errstate(all="ignore"):
                v = v.astype(draw(st.sampled_from([np.float32, np.float64, np.int64,
                                                   np.int32])))
        elif how == "strided" and v.ndim and v.shape[-1] > 1:
            v = np.repeat(v, 2, axis=-1)[..., ::2]
        elif how == "alias":
            others = [u for u in args if isinstance(u, np.ndarray) and u is not v]
            v = draw(st.sampled_from(others)) if others else v
        elif how == "none":
            v = None
        elif v.size:
            flat = v.reshape(-1)
            flat[draw(st.integers(0, v.size - 1))] = draw(st.sampled_from(
                [-1, 10**9, v.size, 2**40] if v.dtype.kind == "i" else [np.nan, np.inf]))
    elif a.role == spec.INT:
        v = draw(INTS | st.sampled_from([int(a.lo) - 1, int(min(a.hi, 2**62)) + 1]))
    elif a.role == spec.FLOAT:
        v = draw(FLOATS)
    elif a.role == spec.BOOL:
        v = draw(st.sampled_from([not v, 1, None]))
    args[i] = v
    return args


def _copy(args, dtype=None):
    """Fresh arrays (float ones as ``dtype`` when given), the same object where the call
    passed one array twice, so the overlap reaches the boundary."""
    memo, out = {}, []
    for v in args:
        if isinstance(v, np.ndarray):
            if id(v) not in memo:
                memo[id(v)] = v.astype(dtype if dtype is not None and v.dtype.kind == "f"
                                       else v.dtype)
            v = memo[id(v)]
        out.append(v)
    return out


# Outputs whose contents after the call are a backend's own business (scratch buffers).
SCRATCH = {"rnn_recurrence_forward": {"xproj"}, "rnn_recurrence_backward": {"dH"}}


def _available(be):
    info = cn.backends()[be]
    if not info["available"]:
        pytest.skip(f"{be}: {info['detail']}")


@pytest.mark.parametrize("backend_name", ["native", "numba"])
@pytest.mark.parametrize("name", spec.NAMES)
def test_fuzz_every_kernel(name, backend_name):
    _available(backend_name)
    kernel = spec.BY_NAME[name]

    @settings(max_examples=30, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(_call(kernel), _mutated(kernel, _templates(name))))
    def check(args):
        mine = _copy(args)
        try:
            _boundary.launch(name, backend_name, *mine)
        except (ValueError, TypeError):
            return
        if any(isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all()
               for v in args):
            return  # ran without a crash; NaN spreads differently through the oracle's matmuls
        expected = _copy(args, np.float64)
        ref_args = expected
        # the backend accepted it: the reference must too, and agree
        getattr(ref, name)(*ref_args)
        for a, got, want in zip(kernel.args, mine, ref_args, strict=True):
            if a.role not in spec.WRITTEN_ROLES or got is None:
                continue
            if a.name in SCRATCH.get(name, ()):
                continue
            if got.dtype.kind == "i":  # pooling positions
                np.testing.assert_array_equal(got, want, err_msg=f"{name}: {a.name}")
                continue
            tol = 2e-4 if got.dtype == np.float32 else 1e-9
            scale = max(1.0, float(np.nanmax(np.abs(want), initial=0.0)))
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, equal_nan=True,
                                       err_msg=f"{name}: {a.name}")

    check()
