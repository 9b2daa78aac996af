"""The tensor-core rows of benchmarks/bench_gpu.py (its stage "tensor cores").

Ours: convnet's tensor-core GEMM and implicit-GEMM convolutions (csrc/cuda/gemm_tc.cu,
conv2d_tc.cu) through the CUDA adapter, on float16, bfloat16 (CuPy's ml_dtypes bfloat16,
CuPy >= 14; skipped with a note otherwise) and float32 with TF32 allowed. Anchors, timed
in the same run: cuBLAS float16 (CuPy's matmul), cuBLAS bfloat16 and TF32 (PyTorch's
matmul), cuDNN in half/bfloat16 and with TF32 (PyTorch's conv2d and its backward).
``run(ctx, h)`` takes bench_gpu's context and helpers (say, row, gpu_ms, torch_ms,
over_budget) so that this file needs nothing from it at import time.
"""

from __future__ import annotations

import traceback

import numpy as np

TC_GEMM_SIZES = [(4096, 4096, 4096), (8192, 8192, 8192)]
TC_CONV_SHAPES = [
    # name, x, (K, R, S), stride, padding
    ("ResNet 3x3 56", (32, 64, 56, 56), (64, 3, 3), 1, 1),
    ("ResNet 3x3 14", (32, 256, 14, 14), (256, 3, 3), 1, 1),
]
DTYPES = ("float16", "bfloat16", "tf32")
SHORT = {"float16": "f16", "bfloat16": "bf16", "tf32": "tf32"}


def _np_dtype(name):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(np.float16 if name == "float16" else np.float32)


def _torch_dtype(torch, name):
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "tf32": torch.float32}[name]


class _TF32:
    """TF32 on for ours (convnet's flags) and the anchor (PyTorch's) inside the block."""

    def __init__(self, torch, on):
        self.torch, self.on = torch, on

    def __enter__(self):
        import convnet as cn

        self.saved = (cn.backends.cuda.matmul.allow_tf32, cn.backends.cudnn.allow_tf32)
        cn.backends.cuda.matmul.allow_tf32 = cn.backends.cudnn.allow_tf32 = self.on
        if self.torch is not None:
            self.saved_t = (self.torch.backends.cuda.matmul.allow_tf32,
                            self.torch.backends.cudnn.allow_tf32)
            self.torch.backends.cuda.matmul.allow_tf32 = self.on
            self.torch.backends.cudnn.allow_tf32 = self.on

    def __exit__(self, *exc):
        import convnet as cn

        cn.backends.cuda.matmul.allow_tf32, cn.backends.cudnn.allow_tf32 = self.saved
        if self.torch is not None:
            (self.torch.backends.cuda.matmul.allow_tf32,
             self.torch.backends.cudnn.allow_tf32) = self.saved_t


def _device(cp, a):
    try:
        return cp.asarray(a)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise _Skip(f"this CuPy cannot hold {a.dtype} arrays ({exc})") from exc


class _Skip(Exception):
    pass


def run(ctx, h):
    sizes = TC_GEMM_SIZES[:1] if ctx.quick else TC_GEMM_SIZES
    for dt in DTYPES:
        for m, n, k in sizes:
            _guard(h, f"tc gemm {dt} {m}x{n}x{k}", _gemm_case, ctx, h, dt, m, n, k)
    shapes = TC_CONV_SHAPES[:1] if ctx.quick else TC_CONV_SHAPES
    for dt in DTYPES:
        for case in shapes:
            _guard(h, f"tc conv {dt} {case[0]}", _conv_case, ctx, h, dt, *case)


def _guard(h, what, fn, *args):
    if h["over_budget"]():
        h["say"](f"{what}: skipped, over the time budget")
        return
    try:
        fn(*args)
    except _Skip as exc:
        h["say"](f"{what}: skipped, {exc}")
    except Exception:
        h["say"](f"!!! {what} failed:\n{traceback.format_exc()}")


def _gemm_case(ctx, h, dt, m, n, k):
    cp, cu, torch = ctx.cp, ctx.cu, ctx.torch
    rng = np.random.default_rng(0)
    dtype = _np_dtype(dt)
    ah = rng.standard_normal((m, k)).astype(np.float32)
    bh = rng.standard_normal((k, n)).astype(np.float32)
    a, b = _device(cp, ah.astype(dtype)), _device(cp, bh.astype(dtype))
    c = cp.empty((m, n), dtype=dtype)
    flops = 2.0 * m * n * k
    shape = f"{m}x{n}x{k}"
    with _TF32(torch, dt == "tf32"):
        ours = h["gpu_ms"](lambda: cu.gemm(a, b, c, 1.0, 0.0, False, False), cp)
        anchor, name = None, ""
        if dt == "float16":
            ref = cp.matmul(a, b)
            anchor, name = h["gpu_ms"](lambda: cp.matmul(a, b, out=ref), cp), "cuBLAS"
        elif torch is not None:
            at = torch.as_tensor(ah, device="cuda").to(_torch_dtype(torch, dt))
            bt = torch.as_tensor(bh, device="cuda").to(_torch_dtype(torch, dt))
            anchor = h["torch_ms"](lambda: torch.matmul(at, bt), torch)
            name = "cuBLAS"
    h["row"](f"tc gemm {SHORT[dt]}", shape, ours, flops / ours / 1e9, "TFLOP/s",
             anchor / ours if anchor else None, name)
    if anchor:
        h["row"](f"  cuBLAS {SHORT[dt]}", shape, anchor, flops / anchor / 1e9, "TFLOP/s")
    h["say"](f"tc gemm {dt} {shape}: ours {ours:.3f} ms"
             + (f", cuBLAS {anchor:.3f} ms" if anchor else ""))


def _conv_case(ctx, h, dt, name, x_shape, kernel, stride, padding):
    import convnet as cn

    cp, cu, torch = ctx.cp, ctx.cu, ctx.torch
    k, r, s = kernel
    c = x_shape[1]
    rng = np.random.default_rng(1)
    dtype = _np_dtype(dt)
    xh = rng.standard_normal(x_shape).astype(np.float32)
    wh = (rng.standard_normal((k, c, r, s)) / np.sqrt(c * r * s)).astype(np.float32)
    y_shape, args = cn.kernels._conv_geometry(x_shape, wh.shape, stride, padding, 1)
    dyh = rng.standard_normal(y_shape).astype(np.float32)
    x, w, dy = (_device(cp, v.astype(dtype)) for v in (xh, wh, dyh))
    y, dx, dw = cp.empty(y_shape, dtype), cp.empty(x_shape, dtype), cp.empty(wh.shape, dtype)
    flops = 2.0 * y_shape[0] * k * y_shape[2] * y_shape[3] * c * r * s
    runs = {
        "fwd": lambda: cu.conv2d_forward(x, w, None, y, *args),
        "bwd data": lambda: cu.conv2d_backward_data(dy, w, dx, *args),
        "bwd wgt": lambda: cu.conv2d_backward_weight(dy, x, dw, *args),
    }
    anchors = {}
    if torch is not None:
        tdt = _torch_dtype(torch, dt)
        xt, wt, dyt = (torch.as_tensor(v, device="cuda").to(tdt) for v in (xh, wh, dyh))
        bwd = torch.ops.aten.convolution_backward
        st, pd = [stride] * 2, [padding] * 2
        anchors = {
            "fwd": lambda: torch.nn.functional.conv2d(xt, wt, None, stride, padding),
            "bwd data": lambda: bwd(dyt, xt, wt, None, st, pd, [1, 1], False, [0, 0], 1,
                                    [True, False, False]),
            "bwd wgt": lambda: bwd(dyt, xt, wt, None, st, pd, [1, 1], False, [0, 0], 1,
                                   [False, True, False]),
        }
    with _TF32(torch, dt == "tf32"):
        for what, fn in runs.items():
            ours = h["gpu_ms"](fn, cp, reps=20)
            anchor = h["torch_ms"](anchors[what], torch, reps=20) if what in anchors else None
            h["row"](f"tc conv {what} {SHORT[dt]}", f"{name} {x_shape}x{kernel}", ours,
                     flops / ours / 1e9, "TFLOP/s", anchor / ours if anchor else None, "cuDNN")
            if anchor:
                h["row"](f"  cuDNN {what} {SHORT[dt]}", name, anchor, flops / anchor / 1e9,
                         "TFLOP/s")
