"""Every kernel of the manifest on bfloat16 and float16 storage, on each CPU backend,
against the float64 reference of the rounded inputs.

The bound, derived: the inputs are exactly representable (they are the rounded values
the reference also gets), so the only errors are the float32 computation and the final
rounding of each 16-bit output. With y the float64 result on those inputs, y32 the float32
kernel's, e32 = |y32 - y| <= T * max|y| (T: the float32 tolerance of ``convnet verify``,
1e-4 relative to the output's largest magnitude, which covers the float32 accumulation
terms such as K * 2**-24 * sum|a b| of a product) and the rounding to nearest
|y16 - y32| <= u |y32| with u = 2**-8 (bfloat16, 8 significant bits) or 2**-11 (float16,
11 bits):

    |y16 - y| <= u |y| + (1 + u) * T * max|y|       (element-wise)

Outputs kept in float32 (statistics, float32 accumulators) have u = 0. Max-pool indices
must match exactly (ties among rounded values are broken as the reference does).
"""

from __future__ import annotations

import numpy as np
import pytest

import convnet as cn
from convnet import verify
from convnet.kernels import _boundary, _registry, spec
from convnet.kernels import reference as ref

F32 = np.dtype(np.float32)
SIXTEEN = {"bfloat16": (np.dtype(cn.bfloat16), 2.0**-8), "float16": (np.dtype(np.float16),
                                                                      2.0**-11)}
T32 = verify.TOLERANCE[np.float32]
CHECKS = verify._checks()
BACKENDS = [b for b in ("native", "numba") if _registry.get(b) is not None]


def _is_float(a) -> bool:
    return isinstance(a, np.ndarray) and (a.dtype.kind == "f" or a.dtype == cn.bfloat16)


def _cases():
    """One (label, check) per kernel and geometry, the verify list cut to a few per kernel
    (the first two and the last: odd shapes are among them)."""
    by_kernel: dict[str, list] = {}
    for label, check in CHECKS:
        by_kernel.setdefault(check.kernel, []).append((label, check))
    return [c for cs in by_kernel.values() for c in (cs[:2] + cs[-1:] if len(cs) > 2 else cs)]


def _sixteen_bit_args(kernel, args, dt16, acc16):
    """The verify arguments in a 16-bit call: CALL arrays in ``dt16``, STAT arrays in
    float32, ACC arrays in ``dt16`` or float32; one array given twice stays one array."""
    out, seen = list(args), {}
    for i, a in enumerate(spec.BY_NAME[kernel].args):
        v = args[i]
        if not _is_float(v):
            continue
        if id(v) in seen:
            out[i] = seen[id(v)]
            continue
        want = F32 if a.dtype == spec.STAT or (a.dtype == spec.ACC and not acc16) else dt16
        with np.errstate(over="ignore", invalid="ignore"):
            out[i] = seen[id(v)] = v.astype(want)
    return out


def _expected(kernel, args16, outs):
    """The float64 reference on the (rounded) arguments of the call."""
    args64 = [np.array(a, np.float64) if _is_float(a)
              else (a.copy() if isinstance(a, np.ndarray) else a) for a in args16]
    for i, a in enumerate(spec.BY_NAME[kernel].args):
        if a.role == spec.OUT and not _shared(args16, i):
            args64[i][...] = 0
    _relink(args16, args64)
    getattr(ref, kernel)(*args64)
    return [args64[i] for i in outs]


def _shared(args, i):
    return any(j != i and args[j] is args[i] for j in range(len(args)))


def _relink(src, dst):
    """Make ``dst`` share arrays where ``src`` does (in-place pairs)."""
    for i in range(len(src)):
        for j in range(i):
            if isinstance(src[i], np.ndarray) and src[i] is src[j]:
                dst[i] = dst[j]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", list(SIXTEEN))
@pytest.mark.parametrize("acc16", [True, False], ids=["acc16", "acc32"])
def test_every_kernel_on_16bit_storage(backend, dtype, acc16):
    dt16, u = SIXTEEN[dtype]
    failures, kernels = [], set()
    for label, check in _cases():
        k = spec.BY_NAME[check.kernel]
        if not acc16 and not any(a.dtype == spec.ACC for a in k.args):
            continue
        kernels.add(k.name)
        args, outs = verify._arguments(check, np.random.default_rng(7), np.float64)
        args16 = _sixteen_bit_args(k.name, args, dt16, acc16)
        expected = _expected(k.name, args16, outs)
        mine = list(args16)
        for i in verify._written_only(k.name):  # poison what the kernel must write
            if not _shared(mine, i):
                fill = np.nan if _is_float(mine[i]) else -1
                mine[i] = np.full(mine[i].shape, fill, mine[i].dtype)
        _relink(args16, mine)
        _boundary.launch(k.name, backend, *mine)
        for i, want in zip(outs, expected, strict=True):
            got = mine[i]
            if not _is_float(got):
                if not np.array_equal(got, want):
                    failures.append(f"{k.name} {label} {k.args[i].name}: indices differ")
                continue
            assert got.dtype == args16[i].dtype  # written in place, in the caller's dtype
            uu = u if got.dtype in (SIXTEEN["bfloat16"][0], SIXTEEN["float16"][0]) else 0.0
            g = got.astype(np.float64)
            norm = np.abs(want).max(initial=0.0)
            bound = uu * np.abs(want) + (1 + uu) * T32 * norm
            bad = ~(np.abs(g - want) <= bound)
            if bad.any():
                failures.append(f"{k.name} {label} {k.args[i].name}: "
                                f"{int(bad.sum())} values beyond the bound, worst "
                                f"{np.abs(g - want).max():.3g} (norm {norm:.3g})")
    assert not failures, "\n".join(failures)
    if acc16:  # the whole manifest was covered
        assert kernels == set(spec.NAMES)


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place_pairs_stay_in_place_on_16bit(backend):
    # rnn_cell_forward may write h over pre: the float32 copy must be shared, not two copies
    rng = np.random.default_rng(0)
    pre = rng.standard_normal((3, 5)).astype(cn.bfloat16)
    bias = rng.standard_normal(5).astype(cn.bfloat16)
    want = np.tanh(pre.astype(np.float64) + bias.astype(np.float64))
    _boundary.launch("rnn_cell_forward", backend, pre, bias, pre, False)
    assert np.all(np.abs(pre.astype(np.float64) - want) <= 2.0**-8 * np.abs(want) + 1e-6)


def test_partly_overlapping_in_place_pair_is_refused():
    buf = np.zeros((4, 5), cn.bfloat16)
    pre, h = buf[:3], buf[1:]
    with pytest.raises(ValueError, match="overlap"):
        _boundary.launch("rnn_cell_forward", "native" if BACKENDS[0] == "native" else "numba",
                         pre, np.zeros(5, cn.bfloat16), h, False)


def test_overlapping_inputs_that_are_only_read_are_fine():
    backend = BACKENDS[0]
    buf = np.random.default_rng(3).standard_normal((6, 8)).astype(cn.bfloat16)
    gates = buf[:2]  # (2, 8): B = 2, H = 2
    c_prev = buf.reshape(-1)[4:8].reshape(2, 2)  # inside gates' memory, read only
    h, c, act = (np.empty((2, 2), cn.bfloat16), np.empty((2, 2), cn.bfloat16),
                 np.empty((2, 8), cn.bfloat16))
    _boundary.launch("lstm_cell_forward", backend, gates, np.zeros(8, cn.bfloat16), c_prev,
                     h, c, act)
    want = [np.empty((2, 2)), np.empty((2, 2)), np.empty((2, 8))]
    ref.lstm_cell_forward(gates.astype(np.float64), np.zeros(8), c_prev.astype(np.float64),
                          *want)
    for got, w in zip((h, c, act), want, strict=True):
        assert np.all(np.abs(got.astype(np.float64) - w) <= 2.0**-8 * np.abs(w) + 1e-6)


def test_rounding_is_to_nearest_even_into_the_output():
    # 1 + 2**-8 is halfway between two bfloat16 values: it rounds to even (1.0); 1 + 3*2**-8
    # rounds up to 1 + 2**-6. leaky_relu with slope 1 is the identity on float32 compute.
    backend = BACKENDS[0]
    a = np.array([[1 + 2.0**-8], [1 + 3 * 2.0**-8]], np.float32)
    b = np.ones((1, 1), cn.bfloat16)
    c = np.empty((2, 1), cn.bfloat16)
    cn.kernels.gemm(a.astype(np.float64).astype(cn.bfloat16), b, c, backend=backend)
    # the inputs were rounded already; build the halfway cases through a float32 C instead
    c32 = np.zeros((2, 1), np.float32)
    cn.kernels.gemm(np.ones((2, 1), cn.bfloat16), b, c32, alpha=1.0, beta=0.0,
                    backend=backend)
    assert c32.tolist() == [[1.0], [1.0]]
    out = np.empty((2, 1), cn.bfloat16)
    _boundary.launch("leaky_relu_forward", backend, a.astype(cn.bfloat16), out, 1.0)
    half = np.empty((2, 1), cn.bfloat16)
    half[...] = a  # NumPy/ml_dtypes rounding, the reference for the kernels layer
    assert half.astype(np.float32).ravel().tolist() == [1.0, 1 + 2.0**-6]
    c2 = np.zeros((2, 1), cn.bfloat16)
    cn.kernels.gemm(np.eye(2, dtype=cn.bfloat16), np.ones((2, 1), cn.bfloat16), c2,
                    alpha=1 + 3 * 2.0**-8, beta=0.0, backend=backend)
    assert c2.astype(np.float32).ravel().tolist() == [1 + 2.0**-6] * 2


@pytest.mark.parametrize("name,args,msg", [
    ("batch_norm_forward_training", "mean16", "mean: expected dtype float32"),
    ("gemm", "c64", "c: expected dtype bfloat16 or float32"),
])
def test_statistics_and_accumulators_dtypes_are_checked(name, args, msg):
    x = np.ones((2, 3, 4), cn.bfloat16)
    if name == "gemm":
        call = (np.ones((2, 3), cn.bfloat16), np.ones((3, 2), cn.bfloat16),
                np.zeros((2, 2), np.float64), 1.0, 0.0, False, False)
    else:
        stat = [np.empty(3, np.float32) for _ in range(3)]
        stat[0] = np.empty(3, cn.bfloat16)
        call = (x, np.ones(3, np.float32), np.zeros(3, np.float32), np.empty_like(x), *stat,
                1e-5)
    with pytest.raises(TypeError, match=msg):
        _boundary.launch(name, None, *call)


def test_array_level_16bit_batch_norm_keeps_float32_statistics():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 5, 5)).astype(cn.bfloat16)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y, mean, invstd = cn.kernels.batch_norm_forward_training(x, running_mean=rm,
                                                             running_var=rv)
    assert y.dtype == x.dtype and mean.dtype == invstd.dtype == np.float32
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    dx, dw, db = cn.kernels.batch_norm_backward(x, x, mean, invstd)
    assert dx.dtype == x.dtype and dw.dtype == db.dtype == np.float32
    with pytest.raises(TypeError, match="mean"):
        cn.kernels.batch_norm_backward(x, x, mean.astype(cn.bfloat16), invstd)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_native_conversions_match_numpy_bit_for_bit(dtype):
    native = _registry.get("native")
    if native is None or not hasattr(native, "widen16"):
        pytest.skip("native backend without the 16-bit conversions")
    dt = SIXTEEN[dtype][0]
    if dtype == "float16" and not hasattr(native, "gemm_float16"):
        pytest.skip("built without F16C")
    # every 16-bit pattern widens exactly (NaNs stay NaNs)
    every = np.arange(2**16, dtype=np.uint16).view(dt)
    wide = np.empty(every.shape, np.float32)
    native.widen16(every, wide)
    want = every.astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(wide), nan)
    assert np.array_equal(wide[~nan].view(np.uint32), want[~nan].view(np.uint32))
    # float32 values around every 16-bit value: halfway points (ties to even), just off
    # them, subnormals, overflow to inf, signed zeros, NaN
    rng = np.random.default_rng(0)
    base = want[~nan & np.isfinite(want)].astype(np.float64)
    step = np.abs(base) * (2.0**-8 if dtype == "bfloat16" else 2.0**-11)
    vals = np.concatenate([base + step / 2, base - step / 2, base + step * 0.49,
                           base + step * 0.51, rng.standard_normal(10000) * 1e-6,
                           [0.0, -0.0, 1e30, -1e30, 65520.0, 65519.0, np.inf, -np.inf]])
    with np.errstate(over="ignore"):
        src = np.concatenate([vals.astype(np.float32), [np.float32("nan")]])
        want16 = src.astype(dt)
    got16 = np.empty(src.shape, dt)
    native.narrow16(src, got16)
    nan = np.isnan(want16.astype(np.float32))
    assert np.array_equal(np.isnan(got16.astype(np.float32)), nan)
    assert np.array_equal(got16.view(np.uint16)[~nan], want16.view(np.uint16)[~nan])
    with pytest.raises(TypeError, match="dst: expected dtype float32"):
        native.widen16(every, np.empty(every.shape, np.float64))
    with pytest.raises(ValueError, match="shape"):
        native.narrow16(src, np.empty(3, dt))
