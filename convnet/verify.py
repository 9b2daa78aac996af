"""``convnet verify``: every kernel of the manifest (``convnet/kernels/spec.py``) on every
available backend against the float64 reference (``convnet.kernels.reference``) and, when
installed, PyTorch CPU.

Inputs are random, over several shapes per kernel including odd ones. The error is the
largest absolute difference relative to the largest magnitude of the expected output. A
kernel of the manifest without a check here is a failure row, so the list cannot fall
behind the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .kernels import _boundary, _registry, spec
from .kernels import _checks as ck
from .kernels import reference as ref

TOLERANCE = {np.float32: 1e-4, np.float64: 1e-9}


@dataclass
class Check:
    kernel: str
    # (rng, dtype) -> (inputs tuple, outputs list, scalar args tuple), called as
    # kernel(*inputs, *outputs, *scalars); or -> (all arguments list, indices of the
    # outputs among them) for kernels whose arguments interleave
    make: Callable
    # inputs (float64 numpy) -> list of expected outputs, or None when torch is missing
    torch_oracle: Callable | None = None


def _conv_setup(x_shape, w_shape, stride, padding, dilation):
    sh, sw = ck.pair("stride", stride)
    dh, dw = ck.pair("dilation", dilation)
    pads = ck.conv_padding(padding, x_shape[2:], w_shape[2:], (sh, sw), (dh, dw))
    p, q = ck.conv_output_hw(x_shape[2:], w_shape[2:], (sh, sw), pads, (dh, dw), "w")
    return (x_shape[0], w_shape[0], p, q), (sh, sw, pads[0], pads[2], dh, dw), pads


CONV_GEOMETRIES = [
    ((2, 3, 9, 9), (4, 3, 3, 3), 1, 1, 1),
    ((1, 5, 8, 11), (7, 5, 2, 3), 2, "same", 1),
    ((3, 2, 10, 10), (3, 2, 3, 3), 3, 0, 2),
    ((2, 8, 6, 6), (5, 8, 1, 1), 1, 0, 1),
]
POOL_GEOMETRIES = [((2, 3, 9, 9), 3, 2, 1), ((1, 4, 8, 7), 2, 2, 0), ((2, 2, 6, 6), 2, 3, 1)]
BN_SHAPES = [(4, 3, 5, 5), (16, 7)]
GEMM_SHAPES = [(1, 1, 1), (17, 33, 65), (130, 70, 300)]


def _checks() -> list[tuple[str, Check]]:
    out = []
    for m, n, k in GEMM_SHAPES:
        for ta, tb in ((False, False), (True, True)):
            def make(rng, dt, m=m, n=n, k=k, ta=ta, tb=tb):
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(dt)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(dt)
                return (a, b), [np.empty((m, n), dt)], (1.0, 0.0, ta, tb)

            out.append((f"{m}x{n}x{k} T{int(ta)}{int(tb)}", Check("gemm", make)))
    for geo in CONV_GEOMETRIES:
        x_shape, w_shape, stride, padding, dilation = geo
        y_shape, args, pads = _conv_setup(*geo)
        label = f"x{x_shape} w{w_shape[2:]} s{stride} p{padding} d{dilation}".replace(" ", "")

        def inputs(rng, dt, x_shape=x_shape, w_shape=w_shape, y_shape=y_shape):
            x = rng.standard_normal(x_shape).astype(dt)
            w = rng.standard_normal(w_shape).astype(dt)
            dy = rng.standard_normal(y_shape).astype(dt)
            return x, w, dy

        def fwd(rng, dt, inputs=inputs, y_shape=y_shape, args=args):
            x, w, _ = inputs(rng, dt)
            b = rng.standard_normal(w.shape[0]).astype(dt)
            return (x, w, b), [np.empty(y_shape, dt)], args

        def bwd_data(rng, dt, inputs=inputs, args=args):
            x, w, dy = inputs(rng, dt)
            return (dy, w), [np.empty_like(x)], args

        def bwd_weight(rng, dt, inputs=inputs, args=args):
            x, w, dy = inputs(rng, dt)
            return (dy, x), [np.empty_like(w)], args

        def bwd_bias(rng, dt, inputs=inputs):
            _, w, dy = inputs(rng, dt)
            return (dy,), [np.empty(w.shape[0], dt)], ()

        def torch_fwd(ins, stride=stride, dilation=dilation, pads=pads):
            torch = _torch()
            if torch is None:
                return None
            x, w, b = (torch.from_numpy(a) for a in ins)
            xp = torch.nn.functional.pad(x, (pads[2], pads[3], pads[0], pads[1]))
            return [torch.nn.functional.conv2d(xp, w, b, stride, 0, dilation).numpy()]

        out += [
            (label, Check("conv2d_forward", fwd, torch_fwd)),
            (label, Check("conv2d_backward_data", bwd_data)),
            (label, Check("conv2d_backward_weight", bwd_weight)),
            (label, Check("conv2d_backward_bias", bwd_bias)),
        ]
    for shape, k, s, p in POOL_GEOMETRIES:
        y_shape = (*shape[:2], *ck.conv_output_hw(shape[2:], (k, k), (s, s), (p,) * 4, (1, 1),
                                                   "k"))
        label = f"x{shape} k{k} s{s} p{p}".replace(" ", "")
        args = (k, k, s, s, p, p)

        def max_fwd(rng, dt, shape=shape, y_shape=y_shape, args=args):
            x = rng.standard_normal(shape).astype(dt)
            return (x,), [np.empty(y_shape, dt), np.empty(y_shape, np.int64)], args

        def avg_fwd(rng, dt, shape=shape, y_shape=y_shape, args=args):
            x = rng.standard_normal(shape).astype(dt)
            return (x,), [np.empty(y_shape, dt)], (*args, False)

        def avg_bwd(rng, dt, shape=shape, y_shape=y_shape, args=args):
            dy = rng.standard_normal(y_shape).astype(dt)
            return (dy,), [np.empty(shape, dt)], (*args, True)

        def torch_max(ins, k=k, s=s, p=p):
            torch = _torch()
            if torch is None:
                return None
            y, i = torch.nn.functional.max_pool2d(torch.from_numpy(ins[0]), k, s, p,
                                                  return_indices=True)
            return [y.numpy(), i.numpy()]

        def max_bwd(rng, dt, shape=shape, y_shape=y_shape, args=args):
            dy = rng.standard_normal(y_shape).astype(dt)
            # indices of a real forward pass, so they are valid window positions
            x = rng.permutation(int(np.prod(shape))).reshape(shape).astype(dt)
            idx = np.empty(y_shape, np.int64)
            ref.max_pool2d_forward(x, np.empty(y_shape), idx, *args)
            return (dy, idx), [np.empty(shape, dt)], ()

        out += [
            (label, Check("max_pool2d_forward", max_fwd, torch_max)),
            (label, Check("max_pool2d_backward", max_bwd)),
            (label, Check("avg_pool2d_forward", avg_fwd)),
            (label, Check("avg_pool2d_backward", avg_bwd)),
        ]
    for shape in BN_SHAPES:
        n, c = shape[:2]
        length = int(np.prod(shape[2:])) if len(shape) > 2 else 1

        def bn_fwd(rng, dt, n=n, c=c, length=length):
            x = (rng.standard_normal((n, c, length)) * 2 + 3).astype(dt)
            w, b = rng.standard_normal(c).astype(dt), rng.standard_normal(c).astype(dt)
            outs = [np.empty_like(x)] + [np.empty(c, dt) for _ in range(3)]
            return (x, w, b), outs, (1e-5,)

        def bn_bwd(rng, dt, n=n, c=c, length=length):
            x = rng.standard_normal((n, c, length)).astype(dt)
            dy = rng.standard_normal((n, c, length)).astype(dt)
            w = rng.standard_normal(c).astype(dt)
            mean = x.mean(axis=(0, 2)).astype(dt)
            invstd = (1 / np.sqrt(x.astype(np.float64).var(axis=(0, 2)) + 1e-5)).astype(dt)
            outs = [np.empty_like(x), np.empty(c, dt), np.empty(c, dt)]
            return (dy, x, w, mean, invstd), outs, ()

        def bn_inf(rng, dt, n=n, c=c, length=length):
            x = rng.standard_normal((n, c, length)).astype(dt)
            w, b = rng.standard_normal(c).astype(dt), rng.standard_normal(c).astype(dt)
            rm, rv = rng.standard_normal(c).astype(dt), rng.uniform(0.5, 2, c).astype(dt)
            return (x, w, b, rm, rv), [np.empty_like(x)], (1e-5,)

        label = f"x{shape}".replace(" ", "")
        out += [
            (label, Check("batch_norm_forward_training", bn_fwd)),
            (label, Check("batch_norm_forward_inference", bn_inf)),
            (label, Check("batch_norm_backward", bn_bwd)),
        ]
    out += _activation_checks()
    out += _rnn_checks()
    out += _recurrence_checks()
    out += _upsample_checks()
    out += _epilogue_checks()
    return out


def _epilogue_checks() -> list[tuple[str, Check]]:
    """The fused kernels with every activation code of the epilogue, with and without bias."""
    out = []
    for act, kind in enumerate(spec.EPILOGUE_ACTS):
        p1, p2 = (1.0, 0.0) if kind == "gelu" else (0.1, 1.1)
        geo = CONV_GEOMETRIES[act % len(CONV_GEOMETRIES)]
        y_shape, args, _ = _conv_setup(*geo)

        def conv_act(rng, dt, geo=geo, y_shape=y_shape, args=args, act=act, p1=p1, p2=p2):
            x = rng.standard_normal(geo[0]).astype(dt)
            w = rng.standard_normal(geo[1]).astype(dt)
            b = rng.standard_normal(geo[1][0]).astype(dt) if act % 2 else None
            return (x, w, b), [np.empty(y_shape, dt)], (*args, act, p1, p2)

        def linear_act(rng, dt, act=act, p1=p1, p2=p2, m=3 + 5 * act, k=2 + 7 * act):
            x = rng.standard_normal((m, k)).astype(dt)
            w = (rng.standard_normal((9, k)) / np.sqrt(k)).astype(dt)
            b = rng.standard_normal(9).astype(dt) if act % 2 == 0 else None
            return (x, w, b), [np.empty((m, 9), dt)], (act, p1, p2)

        out += [(f"{kind} x{geo[0]}".replace(" ", ""), Check("conv2d_forward_act", conv_act)),
                (f"{kind} x({3 + 5 * act},{2 + 7 * act})", Check("linear_forward_act",
                                                                  linear_act))]
    return out


def _activation_checks() -> list[tuple[str, Check]]:
    """Every activation of the manifest, with each value of a small integer parameter (an
    approximation switch) or the manifest's example values."""
    import itertools

    out = []
    for kind, (params, _) in spec.ACTIVATION_KERNELS.items():
        choices = [range(int(a.lo), int(a.hi) + 1) if a.role == spec.INT and a.hi - a.lo <= 3
                   else (a.example,) for a in params]
        for args in itertools.product(*choices):
            def act_fwd(rng, dt, args=args):
                x = (rng.standard_normal((3, 37, 5)) * 4).astype(dt)
                return (x,), [np.empty_like(x)], args

            def act_bwd(rng, dt, args=args):
                dy = rng.standard_normal((3, 37, 5)).astype(dt)
                saved = rng.uniform(-1, 1, (3, 37, 5)).astype(dt)
                return (dy, saved), [np.empty_like(dy)], args

            label = f"x(3,37,5){args if args else ''}".replace(" ", "")
            out += [(label, Check(f"{kind}_forward", act_fwd)),
                    (label, Check(f"{kind}_backward", act_bwd))]
    return out


RECURRENCE_SHAPES = [(1, 1, 1), (4, 3, 7)]  # (T, B, H)


def _recurrence_state(rng, dt, mode, t_len, b, h):
    g = (4, 3, 1, 1)[mode]
    xproj = rng.standard_normal((t_len, b, g * h))
    w_hh = rng.standard_normal((g * h, h)) * 0.5
    b_ih, b_hh = rng.standard_normal(g * h), rng.standard_normal(g * h)
    hbuf = np.zeros((t_len + 1, b, h))
    hbuf[0] = rng.standard_normal((b, h))
    cbuf = act = None
    if mode == 0:
        cbuf = np.zeros((t_len + 1, b, h))
        cbuf[0] = rng.standard_normal((b, h))
    if mode == 1:
        act = np.zeros((t_len, b, 4 * h))
    arrays = [a.astype(dt) if a is not None else None
              for a in (xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act)]
    return arrays


def _recurrence_checks() -> list[tuple[str, Check]]:
    """The whole-sequence recurrences, each mode, both directions."""
    out = []
    for t_len, b, h in RECURRENCE_SHAPES:
        for mode, name in enumerate(("lstm", "gru", "rnn_tanh", "rnn_relu")):
            for reverse in (False, True):
                def fwd(rng, dt, mode=mode, t=t_len, b=b, h=h, reverse=reverse):
                    xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act = _recurrence_state(
                        rng, dt, mode, t, b, h)
                    if reverse:  # the initial state sits in the last slot
                        hbuf = hbuf[::-1].copy()
                        cbuf = None if cbuf is None else cbuf[::-1].copy()
                    args = [mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act, reverse]
                    # xproj is consumed; its contents after are the LSTM's gates only
                    keep = (1, 5, 6) if mode == 0 else (5, 7)
                    return args, [i for i in keep if args[i] is not None]

                def bwd(rng, dt, mode=mode, t=t_len, b=b, h=h, reverse=reverse):
                    xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act = (
                        None if a is None else a.astype(np.float64)
                        for a in _recurrence_state(rng, dt, mode, t, b, h))
                    if reverse:
                        hbuf = hbuf[::-1].copy()
                        cbuf = None if cbuf is None else cbuf[::-1].copy()
                    ref.rnn_recurrence_forward(mode, xproj, w_hh, b_ih, b_hh, hbuf, cbuf, act,
                                               reverse)
                    saved = xproj if mode == 0 else act
                    g = w_hh.shape[0]
                    d_h = rng.standard_normal(hbuf.shape)
                    dc = rng.standard_normal((b, h)) if mode == 0 else None
                    dgx = np.zeros((t, b, g))
                    dgh = np.zeros((t, b, g)) if mode == 1 else dgx
                    dbx = np.zeros(g)
                    dbh = np.zeros(g) if mode == 1 else dbx
                    args = [mode, w_hh, hbuf, cbuf, saved, d_h, dc, dgx, dgh, dbx, dbh, reverse]
                    args = [a.astype(dt) if isinstance(a, np.ndarray) else a for a in args]
                    if mode != 1:  # one array for both, as the layers pass them
                        args[8], args[10] = args[7], args[9]
                    return args, [i for i in (5, 6, 7, 8, 9, 10) if args[i] is not None]

                label = f"T{t_len}B{b}H{h} {name}{' reverse' if reverse else ''}"
                out += [(label, Check("rnn_recurrence_forward", fwd)),
                        (label, Check("rnn_recurrence_backward", bwd))]
    return out


RNN_CELL_SHAPES = [(1, 1), (5, 7), (64, 37)]


def _rnn_checks() -> list[tuple[str, Check]]:
    """The recurrent-cell kernels (one time step over a batch of B, hidden size H)."""
    out = []
    for b, h in RNN_CELL_SHAPES:
        label = f"B{b}H{h}"

        def lstm_fwd(rng, dt, b=b, h=h):
            ins = (rng.standard_normal((b, 4 * h)) * 2, rng.standard_normal(4 * h),
                   rng.standard_normal((b, h)))
            return tuple(a.astype(dt) for a in ins), [np.empty((b, h), dt), np.empty((b, h), dt),
                                                      np.empty((b, 4 * h), dt)], ()

        def lstm_torch(ins):
            # torch's own LSTM cell with W_ih = I and W_hh = 0 sees the gates as its input
            torch = _torch()
            if torch is None:
                return None
            gates, bias, c_prev = (torch.from_numpy(a) for a in ins)
            n = gates.shape[1]
            eye, zeros = torch.eye(n, dtype=gates.dtype), torch.zeros(n, n // 4, dtype=gates.dtype)
            h1, c1 = torch.lstm_cell(gates, (torch.zeros_like(c_prev), c_prev), eye, zeros, bias,
                                     torch.zeros_like(bias))
            i, f, g, o = (gates + bias).chunk(4, 1)
            act = torch.cat([i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()], 1)
            return [h1.numpy(), c1.numpy(), act.numpy()]

        def lstm_bwd(rng, dt, b=b, h=h):
            act = rng.uniform(0.05, 0.95, (b, 4 * h))
            act[:, 2 * h:3 * h] = rng.uniform(-0.95, 0.95, (b, h))
            ins = (act,) + tuple(rng.standard_normal((b, h)) for _ in range(4))
            outs = [np.empty((b, 4 * h), dt), np.empty((b, h), dt), np.empty(4 * h, dt)]
            return tuple(a.astype(dt) for a in ins), outs, (False,)

        def gru_fwd(rng, dt, b=b, h=h):
            ins = (rng.standard_normal((b, 3 * h)) * 2, rng.standard_normal((b, 3 * h)) * 2,
                   rng.standard_normal(3 * h), rng.standard_normal(3 * h),
                   rng.standard_normal((b, h)))
            return tuple(a.astype(dt) for a in ins), [np.empty((b, h), dt),
                                                      np.empty((b, 4 * h), dt)], ()

        def gru_bwd(rng, dt, b=b, h=h):
            act = rng.uniform(0.05, 0.95, (b, 4 * h))
            act[:, 2 * h:3 * h] = rng.uniform(-0.95, 0.95, (b, h))
            act[:, 3 * h:] = rng.standard_normal((b, h))
            ins = (act, rng.standard_normal((b, h)), rng.standard_normal((b, h)))
            outs = [np.empty((b, 3 * h), dt), np.empty((b, 3 * h), dt), np.empty((b, h), dt),
                    np.empty(3 * h, dt), np.empty(3 * h, dt)]
            return tuple(a.astype(dt) for a in ins), outs, (False,)

        out += [(label, Check("lstm_cell_forward", lstm_fwd, lstm_torch)),
                (label, Check("lstm_cell_backward", lstm_bwd)),
                (label, Check("gru_cell_forward", gru_fwd)),
                (label, Check("gru_cell_backward", gru_bwd))]
        for relu in (False, True):
            def rnn_fwd(rng, dt, b=b, h=h, relu=relu):
                ins = (rng.standard_normal((b, h)) * 2, rng.standard_normal(h))
                return tuple(a.astype(dt) for a in ins), [np.empty((b, h), dt)], (relu,)

            def rnn_bwd(rng, dt, b=b, h=h, relu=relu):
                y = rng.uniform(-0.95, 0.95, (b, h))
                ins = (np.maximum(y, 0) if relu else y, rng.standard_normal((b, h)))
                return (tuple(a.astype(dt) for a in ins),
                        [np.empty((b, h), dt), np.empty(h, dt)], (relu, False))

            name = f"{label}{'relu' if relu else 'tanh'}"
            out += [(name, Check("rnn_cell_forward", rnn_fwd)),
                    (name, Check("rnn_cell_backward", rnn_bwd))]
    return out


# (x shape, output size, scale factors or None)
UPSAMPLE_GEOMETRIES = [((2, 3, 5, 7), (11, 13), None), ((1, 2, 4, 4), (8, 8), (2.0, 2.0)),
                       ((2, 2, 6, 9), (4, 5), None), ((1, 3, 3, 4), (7, 6), (2.5, 1.7))]


def _upsample_checks() -> list[tuple[str, Check]]:
    out = []
    for x_shape, size, scales in UPSAMPLE_GEOMETRIES:
        y_shape = (*x_shape[:2], *size)
        sargs = tuple(scales) if scales else (0.0, 0.0)
        label = f"x{x_shape} to{size} s{scales}".replace(" ", "")
        for mode, corners in (("nearest", ()), ("bilinear", (False,)), ("bilinear", (True,))):
            def fwd(rng, dt, x_shape=x_shape, y_shape=y_shape, args=corners + sargs):
                x = rng.standard_normal(x_shape).astype(dt)
                return (x,), [np.empty(y_shape, dt)], args

            def bwd(rng, dt, x_shape=x_shape, y_shape=y_shape, args=corners + sargs):
                dy = rng.standard_normal(y_shape).astype(dt)
                return (dy,), [np.empty(x_shape, dt)], args

            def torch_fwd(ins, size=size, scales=scales, mode=mode, corners=corners):
                torch = _torch()
                if torch is None:
                    return None
                kw = {"size": size} if scales is None else {"scale_factor": scales}
                return [torch.nn.functional.interpolate(
                    torch.from_numpy(ins[0]), mode=mode, **kw,
                    align_corners=corners[0] if corners else None).numpy()]

            tag = label + (f" corners={corners[0]}" if corners else "")
            out += [(tag, Check(f"upsample_{mode}2d_forward", fwd, torch_fwd)),
                    (tag, Check(f"upsample_{mode}2d_backward", bwd))]
    return out


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _rel_err(actual, expected) -> float:
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if actual.shape != expected.shape:
        return float("inf")
    norm = max(float(np.abs(expected).max(initial=0.0)), 1e-30)
    diff = np.abs(actual - expected)
    if np.isnan(diff).any():
        return float("inf")
    return float(diff.max(initial=0.0)) / norm


def _arguments(check, rng, dt):
    """(all arguments, indices of the outputs) of one check."""
    made = check.make(rng, dt)
    if len(made) == 2:
        return list(made[0]), list(made[1])
    inputs, outs, scalars = made
    return [*inputs, *outs, *scalars], list(range(len(inputs), len(inputs) + len(outs)))


def _copy(a, dtype=None):
    if not isinstance(a, np.ndarray):
        return a
    with np.errstate(invalid="ignore", over="ignore"):  # outputs hold garbage before a run
        return np.array(a, dtype=dtype if a.dtype.kind == "f" else a.dtype, order="C")


def _written_only(kernel):
    """Positions of the arguments a kernel only writes (poisoned before a run)."""
    return [i for i, a in enumerate(spec.BY_NAME[kernel].args)
            if a.role in (spec.OUT, spec.INDEX_OUT)]


def run(backends: list[str] | None = None, seed: int = 0) -> tuple[list[dict], bool]:
    """Returns one row per (kernel, backend, dtype) with the worst errors, and overall ok."""
    if backends is None:
        backends = [b for b in ("native", "numba", "cuda") if _registry.get(b) is not None]
    worst: dict[tuple[str, str, str], dict] = {}
    checks = _checks()
    for label, check in checks:
        for dt in (np.float32, np.float64):
            rng = np.random.default_rng(seed)
            args, outs = _arguments(check, rng, dt)
            args64 = [_copy(a, np.float64) for a in args]
            for i in _written_only(check.kernel):
                if check.kernel != "rnn_recurrence_backward":  # that one shares dgx, dgh
                    args64[i] = np.zeros_like(args64[i])
            if check.kernel == "rnn_recurrence_backward" and args64[0] != 1:
                args64[8], args64[10] = args64[7], args64[9]
            getattr(ref, check.kernel)(*args64)
            expected = [args64[i] for i in outs]
            inputs64 = tuple(args64[i] for i in range(len(args)) if i not in outs
                             and isinstance(args64[i], np.ndarray))
            oracle = check.torch_oracle(inputs64) if check.torch_oracle else None
            for be in backends:
                if not hasattr(_registry.require(be), check.kernel):
                    # an extension built before the kernel existed: a failure, not a skip
                    _record(worst, check.kernel, be, dt, "kernel missing from the backend "
                            "(rebuild: pip install -e .)", float("inf"), None)
                    continue
                err_ref, err_torch = _run_check(be, check, args, outs, expected, oracle)
                _record(worst, check.kernel, be, dt, label, err_ref, err_torch)
    for k in spec.KERNELS:  # a kernel of the manifest that nothing here checks
        if not any(c.kernel == k.name for _, c in checks):
            for be in backends:
                for dt in (np.float32, np.float64):
                    _record(worst, k.name, be, dt, "no check in convnet/verify.py",
                            float("inf"), None)
    rows = list(worst.values())
    ok = True
    for row in rows:
        tol = TOLERANCE[np.float32 if row["dtype"] == "float32" else np.float64]
        errs = [row["err_reference"]] + ([row["err_torch"]] if row["err_torch"] is not None
                                         else [])
        row["ok"] = all(e <= tol for e in errs)
        ok &= row["ok"]
    return rows, ok


def _record(worst, kernel, be, dt, label, err_ref, err_torch):
    key = (kernel, be, np.dtype(dt).name)
    row = worst.setdefault(key, {"kernel": kernel, "backend": be, "dtype": np.dtype(dt).name,
                                 "cases": 0, "err_reference": 0.0, "err_torch": None,
                                 "worst_case": ""})
    row["cases"] += 1
    if err_ref >= row["err_reference"]:
        row["err_reference"] = err_ref
        row["worst_case"] = label
    if err_torch is not None:
        row["err_torch"] = max(row["err_torch"] or 0.0, err_torch)


def _run_check(be, check, args, outs, expected, oracle):
    """Run one kernel through the validation boundary, its outputs poisoned with NaN (or -1
    for indices) unless they also carry inputs; its worst error vs the reference and torch."""
    mine = [_copy(a) for a in args]
    for i in _written_only(check.kernel):
        mine[i] = np.full(mine[i].shape, np.nan if mine[i].dtype.kind == "f" else -1,
                          mine[i].dtype)
    if check.kernel == "rnn_recurrence_backward" and mine[0] != 1:
        mine[8], mine[10] = mine[7], mine[9]
    if be == "cuda":
        import cupy

        dev = [cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in mine]
        if check.kernel == "rnn_recurrence_backward" and dev[0] != 1:
            dev[8], dev[10] = dev[7], dev[9]
        _boundary.launch(check.kernel, be, *dev)
        mine = [cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else a for a in dev]
    else:
        _boundary.launch(check.kernel, be, *mine)
    got = [mine[i] for i in outs]
    err_ref = max(_rel_err(m, e) for m, e in zip(got, expected, strict=True))
    err_torch = (max(_rel_err(m, e) for m, e in zip(got, oracle, strict=True))
                 if oracle is not None else None)
    return err_ref, err_torch


def format_rows(rows: list[dict]) -> str:
    head = (f"{'kernel':<30}{'backend':<9}{'dtype':<9}{'cases':>6}{'vs float64 ref':>16}"
            f"{'vs torch':>11}  {'':<4}worst case")
    lines = [head, "-" * (len(head) + 20)]
    for r in rows:
        torch_err = f"{r['err_torch']:.1e}" if r["err_torch"] is not None else "-"
        lines.append(f"{r['kernel']:<30}{r['backend']:<9}{r['dtype']:<9}{r['cases']:>6}"
                     f"{r['err_reference']:>16.1e}{torch_err:>11}  "
                     f"{'ok' if r['ok'] else 'FAIL':<4}{r['worst_case']}")
    return "\n".join(lines)
