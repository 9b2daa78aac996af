"""CUDA kernels against their anchors, timed side by side in one run on the GPU.

    python benchmarks/bench_gpu.py [--quick] [--out FILE]

Anchors: cuBLAS (CuPy matmul) for GEMM; cuDNN (PyTorch, TF32 off) for convolutions;
the device-to-device copy bandwidth measured at the start of the run for pooling, batch
norm and the activations. Each GPU figure is the median over many repeats timed with CUDA
events (a repeat is a block of calls long enough to hide the launch overhead); the CPU
figure is the native kernel's median over a few runs. The table comes last.

GB/s counts the bytes each of our kernels moves as written (batch norm's training
forward reads x twice: statistics, then the normalisation), so "ratio" is the fraction of
the copy bandwidth it reaches; PyTorch's time for the same op is listed beside it.
Every stage is guarded: a failure prints its error and the run goes on.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import convnet as cn  # noqa: E402

K = cn.kernels
ROWS: list[dict] = []
LOG: list[str] = []
_OUT = {"file": None}
_DEADLINE = {"t": float("inf")}


def say(msg=""):
    print(msg, flush=True)
    LOG.append(msg)
    if _OUT["file"] is not None:  # written as it goes: a run cut short keeps its lines
        _OUT["file"].write(msg + "\n")
        _OUT["file"].flush()


def over_budget() -> bool:
    return time.perf_counter() > _DEADLINE["t"]


def row(kernel, shape, ms, rate, unit, ratio=None, anchor="", cpu_ms=None):
    ROWS.append(dict(kernel=kernel, shape=shape, ms=ms, rate=rate, unit=unit, ratio=ratio,
                     anchor=anchor, cpu_ms=cpu_ms))


def stage(name):
    """Decorator: run the stage, report its error and carry on."""
    def wrap(fn):
        def run(*args, **kw):
            t0 = time.perf_counter()
            if over_budget():
                say(f"--- {name}: skipped, over the time budget")
                return
            say(f"--- {name}")
            try:
                fn(*args, **kw)
            except Exception:
                say(f"!!! stage {name} failed:\n{traceback.format_exc()}")
            say(f"--- {name}: {time.perf_counter() - t0:.1f} s")
        return run
    return wrap


# --------------------------------------------------------------------------- timing


def gpu_ms(fn, cp, reps=30, target_ms=20.0, max_inner=200):
    """Median ms per call of fn over `reps` blocks, CUDA events on CuPy's stream."""
    fn()
    cp.cuda.get_current_stream().synchronize()
    t0 = time.perf_counter()
    fn()
    cp.cuda.get_current_stream().synchronize()
    est = max((time.perf_counter() - t0) * 1e3, 1e-3)
    inner = int(min(max_inner, max(1, target_ms / est)))
    start, end = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(reps):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / inner)
    return float(np.median(times))


def torch_ms(fn, torch, reps=30, target_ms=20.0, max_inner=200):
    """As gpu_ms, with PyTorch's events on PyTorch's current stream."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    est = max((time.perf_counter() - t0) * 1e3, 1e-3)
    inner = int(min(max_inner, max(1, target_ms / est)))
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / inner)
    return float(np.median(times))


def cpu_ms(fn, reps=3, budget_s=3.0):
    fn()
    times = []
    t_end = time.perf_counter() + budget_s
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > t_end:
            break
    return float(np.median(times))


def maybe_cpu(fn, enabled=True, **kw):
    if not enabled or not cn.backends()["native"]["available"]:
        return None
    try:
        return cpu_ms(fn, **kw)
    except Exception as exc:  # the CPU figure is a bonus, never a reason to stop
        say(f"(CPU timing failed: {exc})")
        return None


# --------------------------------------------------------------------------- stages


class Ctx:
    cp = None
    cu = None
    torch = None
    copy_gbs = None
    quick = False


@stage("environment")
def environment(ctx):
    info = cn.backends()
    for name, b in info.items():
        say(f"backend {name}: {'available' if b['available'] else 'UNAVAILABLE'} ({b['detail']})")
    if not info["cuda"]["available"]:
        raise RuntimeError("no CUDA backend: nothing to benchmark")
    import cupy

    import convnet.kernels._cuda as cu

    ctx.cp, ctx.cu = cupy, cu
    say(f"cupy {cupy.__version__}")
    try:
        import torch

        if torch.cuda.is_available():
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
            ctx.torch = torch
            say(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, TF32 off")
        else:
            say("torch has no CUDA: no cuDNN anchor")
    except ImportError:
        say("torch not installed: no cuDNN anchor")


@stage("copy bandwidth")
def copy_bandwidth(ctx):
    cp = ctx.cp
    n = COPY_BYTES // 4
    src = cp.ones(n, dtype=cp.float32)
    dst = cp.empty_like(src)
    ms = gpu_ms(lambda: cp.copyto(dst, src), cp, reps=20)
    ctx.copy_gbs = 2 * src.nbytes / ms / 1e6
    row("copy (d2d)", f"{COPY_BYTES >> 20} MiB", ms, ctx.copy_gbs, "GB/s", 1.0, "itself")


@stage("gemm")
def gemm(ctx):
    sizes = GEMM_SIZES[:3] if ctx.quick else GEMM_SIZES
    for dtype, cases in ((np.float32, sizes), (np.float64, GEMM_SIZES_FP64)):
        for m, n, k in cases:
            if over_budget():
                say(f"gemm {m}x{n}x{k}: skipped, over the time budget")
                continue
            _gemm_case(ctx, m, n, k, dtype)


def _gemm_case(ctx, m, n, k, dtype):
    cp, cu = ctx.cp, ctx.cu
    rng = np.random.default_rng(0)
    a = cp.asarray(rng.standard_normal((m, k)).astype(dtype))
    b = cp.asarray(rng.standard_normal((k, n)).astype(dtype))
    c = cp.empty((m, n), dtype=dtype)
    ours = gpu_ms(lambda: cu.gemm(a, b, c, 1.0, 0.0, False, False), cp)
    ref = cp.matmul(a, b)
    err = float(cp.abs(c - ref).max() / cp.abs(ref).max())
    anchor = gpu_ms(lambda: cp.matmul(a, b, out=ref), cp)
    flops = 2.0 * m * n * k
    ah, bh = cp.asnumpy(a), cp.asnumpy(b)
    cpu = maybe_cpu(lambda: K.gemm(ah, bh, backend="native"), m * n * k <= 4096 ** 3)
    tag = "" if dtype == np.float32 else " fp64"
    row(f"gemm{tag}", f"{m}x{n}x{k}", ours, flops / ours / 1e9, "TFLOP/s", anchor / ours,
        "cuBLAS", cpu)
    row(f"  cuBLAS{tag}", f"{m}x{n}x{k}", anchor, flops / anchor / 1e9, "TFLOP/s")
    say(f"gemm{tag} {m}x{n}x{k}: ours {ours:.3f} ms, cuBLAS {anchor:.3f} ms, "
        f"max rel diff {err:.2e}")


# The shapes of DESIGN.md/PERF-NOTES.md plus large ones that fill the chip. Module-level so
# a dry run (tests/kernels/test_cuda_bench_dryrun.py) can shrink them.
COPY_BYTES = 256 << 20
GEMM_SIZES = [(1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192),
              (4096, 4096, 1024), (1000, 1000, 1000)]
GEMM_SIZES_FP64 = [(2048, 2048, 2048)]
POOL_CASES = [("LeNet", (128, 6, 28, 28), 2, 2, 0), ("ResNet", (64, 64, 112, 112), 3, 2, 1),
              ("2x2 big", (128, 128, 112, 112), 2, 2, 0)]
BN_CASES = [("ResNet 56", (64, 64, 56, 56)), ("ResNet 14", (128, 256, 14, 14)),
            ("BN1d", (4096, 1024)), ("big", (128, 128, 56, 56))]
ACT_SIZE = 64 << 20
CONV_SHAPES = [
    # name, x, (K, R, S), stride, padding
    ("LeNet C1", (128, 1, 32, 32), (6, 5, 5), 1, 0),
    ("LeNet C3", (128, 6, 14, 14), (16, 5, 5), 1, 0),
    ("ResNet 3x3 56", (32, 64, 56, 56), (64, 3, 3), 1, 1),
    ("ResNet 3x3 14", (32, 256, 14, 14), (256, 3, 3), 1, 1),
    ("AlexNet C1", (16, 3, 224, 224), (96, 11, 11), 4, 2),
    ("big 3x3", (128, 128, 56, 56), (128, 3, 3), 1, 1),
    ("big 1x1", (128, 256, 28, 28), (512, 1, 1), 1, 0),
]


@stage("conv2d")
def conv2d(ctx):
    shapes = CONV_SHAPES[:5] if ctx.quick else CONV_SHAPES
    for case in shapes:
        if over_budget():
            say(f"conv {case[0]}: skipped, over the time budget")
            continue
        try:
            _conv_case(ctx, *case)
        except Exception:
            say(f"!!! conv {case[0]} failed:\n{traceback.format_exc()}")


def _conv_case(ctx, name, x_shape, kernel, stride, padding):
    cp, cu, torch = ctx.cp, ctx.cu, ctx.torch
    k, r, s = kernel
    rng = np.random.default_rng(1)
    c = x_shape[1]
    xh = rng.standard_normal(x_shape).astype(np.float32)
    wh = (rng.standard_normal((k, c, r, s)) / math.sqrt(c * r * s)).astype(np.float32)
    y_shape, args = K._conv_geometry(x_shape, wh.shape, stride, padding, 1)
    dyh = rng.standard_normal(y_shape).astype(np.float32)
    x, w, dy = cp.asarray(xh), cp.asarray(wh), cp.asarray(dyh)
    y, dx, dw = cp.empty(y_shape, np.float32), cp.empty_like(x), cp.empty_like(w)
    flops = 2.0 * y_shape[0] * k * y_shape[2] * y_shape[3] * c * r * s
    big = name.startswith("big")
    runs = {
        "fwd": (lambda: cu.conv2d_forward(x, w, None, y, *args),
                lambda: K.conv2d_forward(xh, wh, None, stride, padding,
                                         backend="native")),
        "bwd data": (lambda: cu.conv2d_backward_data(dy, w, dx, *args),
                     lambda: K.conv2d_backward_data(dyh, wh, x_shape, stride, padding,
                                                    backend="native")),
        "bwd weight": (lambda: cu.conv2d_backward_weight(dy, x, dw, *args),
                       lambda: K.conv2d_backward_weight(dyh, xh, wh.shape, stride,
                                                        padding, backend="native")),
    }
    anchors = {}
    if torch is not None:
        xt = torch.as_tensor(xh, device="cuda")
        wt = torch.as_tensor(wh, device="cuda")
        dyt = torch.as_tensor(dyh, device="cuda")
        yt = torch.nn.functional.conv2d(xt, wt, None, stride, padding)
        # The same sizes as ours: our y must equal cuDNN's.
        ours_y = torch.as_tensor(cp.asnumpy(cp.asarray(
            K.conv2d_forward(x, w, None, stride, padding))), device="cuda")
        err = float((ours_y - yt).abs().max() / yt.abs().max())
        say(f"conv {name}: max rel diff vs cuDNN {err:.2e}")
        bwd = torch.ops.aten.convolution_backward
        st, pd = [stride] * 2, [padding] * 2
        anchors = {
            "fwd": lambda: torch.nn.functional.conv2d(xt, wt, None, stride, padding),
            "bwd data": lambda: bwd(dyt, xt, wt, None, st, pd, [1, 1], False, [0, 0], 1,
                                    [True, False, False]),
            "bwd weight": lambda: bwd(dyt, xt, wt, None, st, pd, [1, 1], False,
                                      [0, 0], 1, [False, True, False]),
        }
    for what, (ours_fn, cpu_fn) in runs.items():
        ours = gpu_ms(ours_fn, cp, reps=20)
        anchor = torch_ms(anchors[what], torch, reps=20) if what in anchors else None
        cpu = maybe_cpu(cpu_fn, enabled=not big, reps=3, budget_s=2.0)
        row(f"conv {what}", f"{name} {x_shape}x{(k, r, s)}", ours, flops / ours / 1e9,
            "TFLOP/s", anchor / ours if anchor else None, "cuDNN", cpu)
        if anchor:
            row(f"  cuDNN {what}", name, anchor, flops / anchor / 1e9, "TFLOP/s")


def _mem_row(ctx, kernel, shape, ms, nbytes, cpu=None):
    gbs = nbytes / ms / 1e6
    row(kernel, shape, ms, gbs, "GB/s", gbs / ctx.copy_gbs if ctx.copy_gbs else None,
        "copy BW", cpu)


@stage("pooling")
def pooling(ctx):
    cases = POOL_CASES[:2] if ctx.quick else POOL_CASES
    for case in cases:
        if over_budget():
            say(f"pool {case[0]}: skipped, over the time budget")
            continue
        try:
            _pool_case(ctx, *case)
        except Exception:
            say(f"!!! pool {case[0]} failed:\n{traceback.format_exc()}")


def _pool_case(ctx, name, x_shape, kk, ss, pp):
    cp, cu, torch = ctx.cp, ctx.cu, ctx.torch
    rng = np.random.default_rng(2)
    xh = rng.standard_normal(x_shape).astype(np.float32)
    x = cp.asarray(xh)
    y_shape, args = K._pool_geometry(x_shape, kk, ss, pp)
    y = cp.empty(y_shape, np.float32)
    idx = cp.empty(y_shape, np.int64)
    dy = cp.asarray(rng.standard_normal(y_shape).astype(np.float32))
    dx = cp.empty_like(x)
    xb, yb = x.nbytes, y.nbytes
    shape = f"{name} {x_shape} k{kk} s{ss} p{pp}"
    _, idx_h = K.max_pool2d_forward(xh, kk, ss, pp)
    dyh = cp.asnumpy(dy)
    big = name == "2x2 big"
    ms = gpu_ms(lambda: cu.max_pool2d_forward(x, y, idx, *args), cp)
    _mem_row(ctx, "max_pool fwd", shape, ms, xb + yb + 2 * yb,
             maybe_cpu(lambda: K.max_pool2d_forward(xh, kk, ss, pp), not big))
    # memset of dx + dy + indices read + scattered dx updates (read and write). The kernel
    # alone, then with the adapter's check of the indices (a reduction and a sync).
    nbytes = xb + yb + 2 * yb + 2 * yb
    check = getattr(cu, "CHECK_POOL_INDICES", None)
    if check is not None:
        cu.CHECK_POOL_INDICES = False
    try:
        ms = gpu_ms(lambda: cu.max_pool2d_backward(dy, idx, dx), cp)
    finally:
        if check is not None:
            cu.CHECK_POOL_INDICES = check
    _mem_row(ctx, "max_pool bwd", shape, ms, nbytes,
             maybe_cpu(lambda: K.max_pool2d_backward(dyh, idx_h, x_shape), not big))
    if check:
        ms = gpu_ms(lambda: cu.max_pool2d_backward(dy, idx, dx), cp)
        row("  max_pool bwd +check", shape, ms, nbytes / ms / 1e6, "GB/s")
    ms = gpu_ms(lambda: cu.avg_pool2d_forward(x, y, *args, True), cp)
    _mem_row(ctx, "avg_pool fwd", shape, ms, xb + yb,
             maybe_cpu(lambda: K.avg_pool2d_forward(xh, kk, ss, pp), not big))
    ms = gpu_ms(lambda: cu.avg_pool2d_backward(dy, dx, *args, True), cp)
    _mem_row(ctx, "avg_pool bwd", shape, ms, xb + yb,
             maybe_cpu(lambda: K.avg_pool2d_backward(dyh, x_shape, kk, ss, pp), not big))
    if torch is not None:
        xt = torch.as_tensor(xh, device="cuda")
        F = torch.nn.functional
        ms = torch_ms(lambda: F.max_pool2d(xt, kk, ss, pp, return_indices=True), torch)
        row("  torch max_pool fwd", shape, ms, (xb + 3 * yb) / ms / 1e6, "GB/s")
        ms = torch_ms(lambda: F.avg_pool2d(xt, kk, ss, pp), torch)
        row("  torch avg_pool fwd", shape, ms, (xb + yb) / ms / 1e6, "GB/s")


@stage("batch norm")
def batch_norm(ctx):
    cases = BN_CASES[:2] if ctx.quick else BN_CASES
    for case in cases:
        if over_budget():
            say(f"bn {case[0]}: skipped, over the time budget")
            continue
        try:
            _bn_case(ctx, *case)
        except Exception:
            say(f"!!! bn {case[0]} failed:\n{traceback.format_exc()}")


def _bn_case(ctx, name, shape):
    cp, cu, torch = ctx.cp, ctx.cu, ctx.torch
    rng = np.random.default_rng(3)
    c = shape[1]
    xh = rng.standard_normal(shape).astype(np.float32)
    x3 = cp.asarray(xh.reshape(shape[0], c, -1))
    w, b = cp.ones(c, np.float32), cp.zeros(c, np.float32)
    y, dx = cp.empty_like(x3), cp.empty_like(x3)
    mean, var, invstd, dw, db = (cp.empty(c, np.float32) for _ in range(5))
    dy = cp.asarray(rng.standard_normal(x3.shape).astype(np.float32))
    nb = x3.nbytes
    label = f"{name} {shape}"
    big = name == "big"
    ms = gpu_ms(lambda: cu.batch_norm_forward_training(x3, w, b, y, mean, var, invstd,
                                                       1e-5), cp)
    _mem_row(ctx, "bn train fwd", label, ms, 3 * nb,
             maybe_cpu(lambda: K.batch_norm_forward_training(xh), not big))
    ms = gpu_ms(lambda: cu.batch_norm_forward_inference(x3, w, b, mean, var, y, 1e-5),
                cp)
    mh, vh = cp.asnumpy(mean), cp.asnumpy(var)
    _mem_row(ctx, "bn inference", label, ms, 2 * nb,
             maybe_cpu(lambda: K.batch_norm_forward_inference(xh, mh, vh), not big))
    ms = gpu_ms(lambda: cu.batch_norm_backward(dy, x3, w, mean, invstd, dx, dw, db), cp)
    dyh, ih = cp.asnumpy(dy).reshape(shape), cp.asnumpy(invstd)
    _mem_row(ctx, "bn backward", label, ms, 5 * nb,
             maybe_cpu(lambda: K.batch_norm_backward(dyh, xh, mh, ih), not big))
    if torch is not None:
        xt = torch.as_tensor(xh, device="cuda")
        F = torch.nn.functional
        wt = torch.ones(c, device="cuda")
        bt = torch.zeros(c, device="cuda")
        ms = torch_ms(lambda: F.batch_norm(xt, None, None, wt, bt, training=True),
                      torch)
        row("  torch bn train fwd", label, ms, 3 * nb / ms / 1e6, "GB/s")


@stage("activations")
def activations(ctx):
    cp, cu = ctx.cp, ctx.cu
    n = ACT_SIZE
    x = cp.asarray(np.random.default_rng(4).standard_normal(n).astype(np.float32))
    y = cp.empty_like(x)
    xh = cp.asnumpy(x)
    for kind, fn, cpu_fn in (
        ("relu", lambda: cu.leaky_relu_forward(x, y, 0.0),
         lambda: K.activation_forward(xh, "relu")),
        ("tanh", lambda: cu.tanh_forward(x, y), lambda: K.activation_forward(xh, "tanh")),
        ("elu", lambda: cu.elu_forward(x, y, 1.0, 1.0), lambda: K.activation_forward(xh, "elu")),
    ):
        ms = gpu_ms(fn, cp)
        _mem_row(ctx, f"{kind} fwd", f"{n}", ms, 2 * x.nbytes, maybe_cpu(cpu_fn))


# --------------------------------------------------------------------------- recurrent layers

# (mode, T, B, input, hidden): issue 6's benchmark shapes. One row is a whole layer
# direction forward and backward as convnet's layer runs it: the input projection GEMM, the
# recurrence (per step a GEMM and the fused cell), BPTT, and the dW_ih, dW_hh, dx GEMMs.
# Anchor: torch.nn.LSTM/GRU (cuDNN) forward + backward on the same shapes.
RNN_CASES = [("lstm", 50, 64, 128, 256), ("gru", 50, 64, 128, 256), ("lstm", 100, 64, 256, 128)]


def _rnn_arrays(xp, mode, t_len, b, i, h):
    g = K.RNN_GATES[mode]
    rng = np.random.default_rng(9)
    f = lambda *s: xp.asarray((rng.standard_normal(s) * 0.1).astype(np.float32))  # noqa: E731
    a = dict(x=f(t_len * b, i), w_ih=f(g * h, i), w_hh=f(g * h, h), b_ih=f(g * h),
             b_hh=f(g * h), h0=f(b, h), c0=f(b, h), dy=f(t_len, b, h))
    z = lambda *s: xp.zeros(s, dtype=np.float32)  # noqa: E731
    a.update(xproj=z(t_len, b, g * h), hbuf=z(t_len + 1, b, h), cbuf=z(t_len + 1, b, h),
             act=z(t_len, b, 4 * h), dH=z(t_len + 1, b, h), dc=z(b, h), dgx=z(t_len, b, g * h),
             dgh=z(t_len, b, g * h), dbx=z(g * h), dbh=z(g * h), dw_ih=z(g * h, i),
             dw_hh=z(g * h, h), dx=z(t_len * b, i))
    return a


def _rnn_layer_step(impl, mode, a):
    """One layer direction forward and backward on impl's backend-level kernels."""
    m = K.RNN_MODES.index(mode)
    t_len, b, gh = a["xproj"].shape
    h = a["h0"].shape[1]
    lstm, gru = mode == "lstm", mode == "gru"
    xproj2 = a["xproj"].reshape(t_len * b, gh)
    impl.gemm(a["x"], a["w_ih"], xproj2, 1.0, 0.0, False, True)
    a["hbuf"][0] = a["h0"]
    a["cbuf"][0] = a["c0"]
    impl.rnn_recurrence_forward(m, a["xproj"], a["w_hh"], a["b_ih"], a["b_hh"], a["hbuf"],
                                a["cbuf"] if lstm else None, a["act"] if gru else None, False)
    a["dH"][1:] = a["dy"]
    a["dH"][0] = 0
    a["dc"][...] = 0
    dgh = a["dgh"] if gru else a["dgx"]
    impl.rnn_recurrence_backward(m, a["w_hh"], a["hbuf"], a["cbuf"] if lstm else None,
                                 a["xproj"] if lstm else (a["act"] if gru else None), a["dH"],
                                 a["dc"] if lstm else None, a["dgx"], dgh, a["dbx"],
                                 a["dbh"] if gru else a["dbx"], False)
    dgx2, dgh2 = a["dgx"].reshape(t_len * b, gh), dgh.reshape(t_len * b, gh)
    impl.gemm(dgx2, a["x"], a["dw_ih"], 1.0, 0.0, True, False)
    impl.gemm(dgh2, a["hbuf"][:t_len].reshape(t_len * b, h), a["dw_hh"], 1.0, 0.0, True, False)
    impl.gemm(dgx2, a["w_ih"], a["dx"], 1.0, 0.0, False, False)


@stage("recurrent layers")
def recurrent(ctx):
    for case in RNN_CASES[:2] if ctx.quick else RNN_CASES:
        if over_budget():
            say(f"rnn {case}: skipped, over the time budget")
            continue
        try:
            _rnn_case(ctx, *case)
        except Exception:
            say(f"!!! rnn {case} failed:\n{traceback.format_exc()}")


def _rnn_case(ctx, mode, t_len, b, i, h):
    cp, cu, torch = ctx.cp, ctx.cu, ctx.torch
    g = K.RNN_GATES[mode]
    label = f"T{t_len} B{b} I{i} H{h}"
    flops = 3 * 2.0 * t_len * b * g * h * (i + h)  # forward, data and weight gradients
    dev = _rnn_arrays(cp, mode, t_len, b, i, h)
    ms = gpu_ms(lambda: _rnn_layer_step(cu, mode, dev), cp, reps=15)
    cpu = None
    if cn.backends()["native"]["available"]:
        native = cn.kernels._registry.require("native")
        hostarr = _rnn_arrays(np, mode, t_len, b, i, h)
        cpu = maybe_cpu(lambda: _rnn_layer_step(native, mode, hostarr), reps=3, budget_s=3.0)
    ratio = None
    if torch is not None:
        layer = (torch.nn.LSTM if mode == "lstm" else torch.nn.GRU)(i, h).cuda()
        xt = torch.randn(t_len, b, i, device="cuda", requires_grad=True)
        dyt = torch.randn(t_len, b, h, device="cuda")

        def torch_step():
            y, _ = layer(xt)
            y.backward(dyt)

        t_ms = torch_ms(torch_step, torch, reps=15)
        ratio = t_ms / ms
        row(f"  cuDNN {mode} fwd+bwd", label, t_ms, flops / t_ms / 1e9, "TFLOP/s")
    row(f"{mode} layer fwd+bwd", label, ms, flops / ms / 1e9, "TFLOP/s", ratio, "cuDNN", cpu)


# --------------------------------------------------------------------------- upsampling

# (name, x shape, output size, mode, align_corners); GB/s against the copy bandwidth, with
# torch's interpolate (forward and backward) beside it.
UPSAMPLE_CASES = [("2x", (32, 64, 64, 64), (128, 128), "nearest", None),
                  ("2x", (32, 64, 64, 64), (128, 128), "bilinear", False),
                  ("x1.7", (16, 32, 75, 75), (128, 128), "bilinear", True)]


@stage("upsampling")
def upsampling(ctx):
    for case in UPSAMPLE_CASES[:2] if ctx.quick else UPSAMPLE_CASES:
        if over_budget():
            say(f"upsample {case}: skipped, over the time budget")
            continue
        try:
            _upsample_case(ctx, *case)
        except Exception:
            say(f"!!! upsample {case} failed:\n{traceback.format_exc()}")


def _upsample_case(ctx, name, x_shape, size, mode, corners):
    cp, cu, torch = ctx.cp, ctx.cu, ctx.torch
    rng = np.random.default_rng(5)
    xh = rng.standard_normal(x_shape).astype(np.float32)
    y_shape = (*x_shape[:2], *size)
    dyh = rng.standard_normal(y_shape).astype(np.float32)
    x, dy = cp.asarray(xh), cp.asarray(dyh)
    y, dx = cp.empty(y_shape, dtype=np.float32), cp.empty(x_shape, dtype=np.float32)
    extra = () if mode == "nearest" else (corners,)
    fwd = getattr(cu, f"upsample_{mode}2d_forward")
    bwd = getattr(cu, f"upsample_{mode}2d_backward")
    label = f"{name} {mode}{' corners' if corners else ''} {x_shape}"
    nb = xh.nbytes + dyh.nbytes
    ms = gpu_ms(lambda: fwd(x, y, *extra, 0.0, 0.0), cp)
    kf = getattr(K, f"upsample_{mode}2d_forward")
    kb = getattr(K, f"upsample_{mode}2d_backward")
    _mem_row(ctx, "upsample fwd", label, ms, nb,
             maybe_cpu(lambda: kf(xh, size, *extra), reps=3, budget_s=2.0))
    # backward: zeroing dx, then the scatter reads dy and adds to dx
    ms = gpu_ms(lambda: bwd(dy, dx, *extra, 0.0, 0.0), cp)
    _mem_row(ctx, "upsample bwd", label, ms, nb + 2 * xh.nbytes,
             maybe_cpu(lambda: kb(dyh, x_shape, *extra), reps=3, budget_s=2.0))
    if torch is not None:
        F = torch.nn.functional
        xt = torch.as_tensor(xh, device="cuda").requires_grad_()
        dyt = torch.as_tensor(dyh, device="cuda")
        ms = torch_ms(lambda: F.interpolate(xt.detach(), size=size, mode=mode,
                                            align_corners=corners), torch)
        row("  torch interpolate fwd", label, ms, nb / ms / 1e6, "GB/s")

        def tb():
            xt.grad = None
            F.interpolate(xt, size=size, mode=mode, align_corners=corners).backward(dyt)

        ms = torch_ms(tb, torch)
        row("  torch interp fwd+bwd", label, ms, None, "")


@stage("tensor cores (float16, bfloat16, TF32)")
def tensor_cores(ctx):
    """benchmarks/bench_gpu_tc.py, loaded by path (this script is also loaded that way)."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_gpu_tc.py")
    spec = importlib.util.spec_from_file_location("bench_gpu_tc", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.run(ctx, dict(say=say, row=row, gpu_ms=gpu_ms, torch_ms=torch_ms,
                      over_budget=over_budget))


# --------------------------------------------------------------------------- table


def table():
    lines = ["", "=" * 100,
             "kernel                 shape                                   ms        "
             "rate          ratio     CPU x",
             "-" * 100]
    for r in ROWS:
        rate = f"{r['rate']:8.2f} {r['unit']:<7}" if r["rate"] is not None else " " * 16
        ratio = f"{r['ratio']:5.2f}x {r['anchor']:<7}" if r["ratio"] is not None else " " * 14
        cpu = f"{r['cpu_ms'] / r['ms']:8.1f}x" if r["cpu_ms"] else ""
        lines.append(f"{r['kernel']:<22} {r['shape'][:38]:<38} {r['ms']:9.4f} {rate} "
                     f"{ratio} {cpu}")
    lines += ["-" * 100,
              "ratio: ours / anchor speed (cuBLAS, cuDNN TF32 off) or our GB/s / the d2d copy's;",
              "CPU x: native CPU kernel time / ours. tc rows: tensor cores (f16/bf16 operands,",
              "float32 accumulation; tf32: float32 with TF32 allowed on both sides) against",
              "cuBLAS/cuDNN in the same dtype (target >= 0.8x cuBLAS f16/bf16 at 4096).",
              "Targets: GEMM >= 0.8x cuBLAS at 4096, conv",
              ">= 0.5x cuDNN, pool and batch norm >= 0.7 of the copy bandwidth. Recurrent",
              "layers: ours / cuDNN's time for a layer direction forward + backward.", "=" * 100]
    for line in lines:
        say(line)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes")
    ap.add_argument("--out", help="also write everything printed to this file")
    ap.add_argument("--budget", type=float, default=300.0,
                    help="seconds after which remaining cases are skipped (the table is "
                    "always printed)")
    args = ap.parse_args(argv)
    _DEADLINE["t"] = time.perf_counter() + args.budget
    if args.out:
        _OUT["file"] = open(args.out, "w")  # noqa: SIM115 (closed at the end of main)
    ctx = Ctx()
    ctx.quick = args.quick
    t0 = time.perf_counter()
    environment(ctx)
    if ctx.cu is not None:
        for fn in (copy_bandwidth, gemm, conv2d, tensor_cores, pooling, batch_norm, activations,
                   recurrent, upsampling):
            fn(ctx)
    say(f"total {time.perf_counter() - t0:.0f} s")
    table()
    if _OUT["file"] is not None:
        _OUT["file"].close()
        _OUT["file"] = None


if __name__ == "__main__":
    main()
