"""``convnet verify``: every kernel on every available backend against the float64
reference (``convnet.kernels.reference``) and, when installed, PyTorch CPU.

Inputs are random, over several shapes per kernel including odd ones. The error is the
largest absolute difference relative to the largest magnitude of the expected output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .kernels import _checks as ck
from .kernels import _registry
from .kernels import reference as ref

TOLERANCE = {np.float32: 1e-4, np.float64: 1e-9}


@dataclass
class Check:
    kernel: str
    # (rng, dtype) -> (inputs tuple, outputs list, scalar args tuple)
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
    for kind, args in (("tanh", ()), ("sigmoid", ()), ("leaky_relu", (0.1,)),
                       ("elu", (1.0, 1.0))):
        def act_fwd(rng, dt, args=args):
            x = (rng.standard_normal((3, 37, 5)) * 4).astype(dt)
            return (x,), [np.empty_like(x)], args

        def act_bwd(rng, dt, args=args):
            dy = rng.standard_normal((3, 37, 5)).astype(dt)
            saved = rng.uniform(-1, 1, (3, 37, 5)).astype(dt)
            return (dy, saved), [np.empty_like(dy)], args

        out += [("x(3,37,5)", Check(f"{kind}_forward", act_fwd)),
                ("x(3,37,5)", Check(f"{kind}_backward", act_bwd))]
    out += _rnn_checks()
    out += _upsample_checks()
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


def run(backends: list[str] | None = None, seed: int = 0) -> tuple[list[dict], bool]:
    """Returns one row per (kernel, backend, dtype) with the worst errors, and overall ok."""
    if backends is None:
        backends = [b for b in ("native", "numba", "cuda") if _registry.get(b) is not None]
    worst: dict[tuple[str, str, str], dict] = {}
    for label, check in _checks():
        for dt in (np.float32, np.float64):
            rng = np.random.default_rng(seed)
            inputs, outs, args = check.make(rng, dt)
            inputs64 = tuple(a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs)
            expected = [np.empty(o.shape, np.float64 if o.dtype != np.int64 else np.int64)
                        for o in outs]
            getattr(ref, check.kernel)(*inputs64, *expected, *args)
            oracle = check.torch_oracle(inputs64) if check.torch_oracle else None
            for be in backends:
                impl = _registry.require(be)
                if hasattr(impl, check.kernel):
                    err_ref, err_torch = _run_check(impl, be, check, inputs, outs, args,
                                                    expected, oracle)
                else:
                    # an extension built before the kernel existed: a failure, not a skip
                    err_ref, err_torch = float("inf"), None
                key = (check.kernel, be, np.dtype(dt).name)
                row = worst.setdefault(key, {"kernel": check.kernel, "backend": be,
                                             "dtype": np.dtype(dt).name, "cases": 0,
                                             "err_reference": 0.0, "err_torch": None,
                                             "worst_case": ""})
                row["cases"] += 1
                if err_ref >= row["err_reference"]:
                    row["err_reference"] = err_ref
                    row["worst_case"] = label if np.isfinite(err_ref) else (
                        "kernel missing from the backend (rebuild: pip install -e .)")
                if err_torch is not None:
                    row["err_torch"] = max(row["err_torch"] or 0.0, err_torch)
    rows = list(worst.values())
    ok = True
    for row in rows:
        tol = TOLERANCE[np.float32 if row["dtype"] == "float32" else np.float64]
        errs = [row["err_reference"]] + ([row["err_torch"]] if row["err_torch"] is not None
                                         else [])
        row["ok"] = all(e <= tol for e in errs)
        ok &= row["ok"]
    return rows, ok


def _run_check(impl, be, check, inputs, outs, args, expected, oracle):
    """Run one kernel on NaN-poisoned outputs; its worst error vs the reference and torch."""
    mine = [np.full(o.shape, np.nan, o.dtype) if o.dtype != np.int64 else
            np.full(o.shape, -1, np.int64) for o in outs]
    if be == "cuda":
        import cupy

        dev = [cupy.asarray(a) for a in inputs]
        dev_out = [cupy.asarray(o) for o in mine]
        getattr(impl, check.kernel)(*dev, *dev_out, *args)
        mine = [cupy.asnumpy(o) for o in dev_out]
    else:
        getattr(impl, check.kernel)(*inputs, *mine, *args)
    err_ref = max(_rel_err(m, e) for m, e in zip(mine, expected, strict=True))
    err_torch = (max(_rel_err(m, e) for m, e in zip(mine, oracle, strict=True))
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
