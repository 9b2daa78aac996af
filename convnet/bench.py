"""Kernel benchmarks: convnet's backends against the anchors, timed side by side in one run.

The anchors are NumPy (OpenBLAS) for GEMM and PyTorch CPU for convolution, pooling and
batch norm (skipped, with a note, when torch is not installed). The ``cuda`` backend runs
the same cases on CuPy copies of the inputs, in the same table, against GPU anchors: cuBLAS
(CuPy's matmul) for GEMM, cuDNN (PyTorch on the GPU, TF32 off) for the convolutions, and a
device-to-device copy of the bytes the kernel moves for the memory-bound ones. GPU times
are kernel times (CUDA events around each call, ``cupyx.profiler.benchmark``); the host
time of a call (the Python adapter and the launches) is reported beside them. Each case is timed in
blocks of repeats per implementation, with a pause between blocks so one library's
spinning worker threads do not steal the cores from the next; the figure is the median.
``convnet bench`` prints the table; ``benchmarks/`` runs the same cases under
pytest-benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import kernels as K
from .kernels import _registry


@dataclass
class Case:
    group: str  # gemm, conv fwd, conv fwd+bwd, pool, bn
    name: str
    flops: float  # for GFLOP/s; 0 for memory-bound kernels
    ours: Callable[[str], Callable[[], object]]  # backend -> zero-argument runner
    anchor: Callable[[], Callable[[], object]] | None
    anchor_name: str
    extra: dict = field(default_factory=dict)
    # the GPU anchor: (name, factory of a zero-argument runner on the device), or None
    gpu_anchor: tuple[str, Callable[[], Callable[[], object]]] | None = None


def _dev(be, *arrays):
    """The case's arrays where the backend runs: CuPy copies for cuda (made once per case)."""
    if be != "cuda":
        return arrays
    import cupy

    return tuple(cupy.asarray(a) for a in arrays)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    from . import get_num_threads

    torch.set_num_threads(get_num_threads())
    return torch


def gemm_case(n: int, rng) -> Case:
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    def ours(be):
        da, db, dc = _dev(be, a, b, c)
        return lambda: K.gemm(da, db, dc, backend=be)

    def cublas():
        da, db, dc = _dev("cuda", a, b, c)
        import cupy

        return lambda: cupy.matmul(da, db, out=dc)

    return Case("gemm", f"sgemm {n}x{n}x{n}", 2.0 * n**3, ours,
                lambda: (lambda: np.matmul(a, b, out=c)), "numpy",
                gpu_anchor=("cuBLAS", cublas))


# name: x shape, w shape, stride, padding
CONV_SHAPES = {
    "LeNet C1 128x1x32x32 6@5x5": ((128, 1, 32, 32), (6, 1, 5, 5), 1, 0),
    "LeNet C3 128x6x14x14 16@5x5": ((128, 6, 14, 14), (16, 6, 5, 5), 1, 0),
    "ResNet 32x64x56x56 64@3x3": ((32, 64, 56, 56), (64, 64, 3, 3), 1, 1),
    "ResNet 32x128x28x28 128@3x3": ((32, 128, 28, 28), (128, 128, 3, 3), 1, 1),
    "ResNet 32x256x14x14 256@3x3": ((32, 256, 14, 14), (256, 256, 3, 3), 1, 1),
    "ResNet 1x1/2 32x64x56x56 128": ((32, 64, 56, 56), (128, 64, 1, 1), 2, 0),
    "AlexNet C1 16x3x224x224 96@11x11/4": ((16, 3, 224, 224), (96, 3, 11, 11), 4, 2),
    "VGG C1 8x3x224x224 64@3x3": ((8, 3, 224, 224), (64, 3, 3, 3), 1, 1),
}


def conv_cases(name: str, spec, rng, torch) -> list[Case]:
    x_shape, w_shape, stride, padding = spec
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(w_shape[0], dtype=np.float32)
    y_shape = K.conv2d_output_shape(x_shape, w_shape, stride, padding)
    dy = rng.standard_normal(y_shape, dtype=np.float32)
    flops = 2.0 * np.prod(y_shape) * np.prod(w_shape[1:])

    def fwd(be):
        dx, dw, db = _dev(be, x, w, b)
        return lambda: K.conv2d_forward(dx, dw, db, stride, padding, backend=be)

    def fwd_bwd(be):
        dx, dw, db, ddy = _dev(be, x, w, b, dy)

        def run():
            K.conv2d_forward(dx, dw, db, stride, padding, backend=be)
            K.conv2d_backward_data(ddy, dw, x_shape, stride, padding, backend=be)
            K.conv2d_backward_weight(ddy, dx, w_shape, stride, padding, backend=be)
            K.conv2d_backward_bias(ddy, backend=be)

        return run

    def cudnn(backward):
        def factory():
            xt, wt, bt, dyt = (torch.from_numpy(a).cuda().requires_grad_(i < 3)
                               for i, a in enumerate((x, w, b, dy)))

            def run():
                if backward:
                    xt.grad = wt.grad = bt.grad = None
                    torch.nn.functional.conv2d(xt, wt, bt, stride, padding).backward(dyt)
                else:
                    with torch.no_grad():
                        torch.nn.functional.conv2d(xt, wt, bt, stride, padding)

            return run
        return factory

    gpu = torch is not None and _torch_cuda(torch)

    anchor_fwd = anchor_fwd_bwd = None
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_(True)
        wt = torch.from_numpy(w).requires_grad_(True)
        bt = torch.from_numpy(b).requires_grad_(True)
        dyt = torch.from_numpy(dy)
        conv = torch.nn.functional.conv2d

        def anchor_fwd():
            def run():
                with torch.no_grad():
                    conv(xt, wt, bt, stride, padding)

            return run

        def anchor_fwd_bwd():
            def run():
                xt.grad = wt.grad = bt.grad = None
                conv(xt, wt, bt, stride, padding).backward(dyt)

            return run

    return [
        Case("conv fwd", name, flops, fwd, anchor_fwd, "torch",
             gpu_anchor=("cuDNN", cudnn(False)) if gpu else None),
        Case("conv fwd+bwd", name, 3 * flops, fwd_bwd, anchor_fwd_bwd, "torch",
             gpu_anchor=("cuDNN", cudnn(True)) if gpu else None),
    ]


def pool_cases(rng, torch) -> list[Case]:
    out = []
    specs = [
        ("max 3x3/2 p1 32x64x112x112", "max", (32, 64, 112, 112), 3, 2, 1),
        ("max 2x2/2 32x128x56x56", "max", (32, 128, 56, 56), 2, 2, 0),
        ("avg 2x2/2 128x6x28x28", "avg", (128, 6, 28, 28), 2, 2, 0),
        ("avg 3x3/1 p1 32x192x28x28", "avg", (32, 192, 28, 28), 3, 1, 1),
    ]
    for name, kind, shape, k, s, p in specs:
        x = rng.standard_normal(shape, dtype=np.float32)
        if kind == "max":
            y, idx = K.max_pool2d_forward(x, k, s, p)

            def ours(be, x=x, k=k, s=s, p=p, idx=idx, y=y):
                x, y, idx = _dev(be, x, y, idx)

                def run():
                    K.max_pool2d_forward(x, k, s, p, backend=be)
                    K.max_pool2d_backward(y, idx, x.shape, backend=be)

                return run
        else:
            y = K.avg_pool2d_forward(x, k, s, p)

            def ours(be, x=x, k=k, s=s, p=p, y=y):
                x, y = _dev(be, x, y)

                def run():
                    K.avg_pool2d_forward(x, k, s, p, backend=be)
                    K.avg_pool2d_backward(y, x.shape, k, s, p, backend=be)

                return run

        anchor = None
        if torch is not None:
            fn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
            xt = torch.from_numpy(x).requires_grad_(True)
            dyt = torch.from_numpy(y)

            def anchor(fn=fn, xt=xt, dyt=dyt, k=k, s=s, p=p):
                def run():
                    xt.grad = None
                    fn(xt, k, s, p).backward(dyt)

                return run

        out.append(Case("pool fwd+bwd", name, 0.0, ours, anchor, "torch",
                        {"bytes": 4 * (x.size * 3 + y.size * 2)}))
    return out


def bn_cases(rng, torch) -> list[Case]:
    out = []
    for shape in [(32, 64, 56, 56), (32, 256, 14, 14), (256, 512)]:
        x = rng.standard_normal(shape, dtype=np.float32)
        c = shape[1]
        w = np.ones(c, np.float32)
        b = np.zeros(c, np.float32)
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        _, mean, invstd = K.batch_norm_forward_training(x, w, b)

        def ours(be, x=x, w=w, b=b, rm=rm, rv=rv, mean=mean, invstd=invstd):
            x, w, b, rm, rv, mean, invstd = _dev(be, x, w, b, rm, rv, mean, invstd)

            def run():
                K.batch_norm_forward_training(x, w, b, rm, rv, backend=be)
                K.batch_norm_backward(x, x, mean, invstd, w, backend=be)

            return run

        anchor = None
        if torch is not None:
            xt = torch.from_numpy(x).requires_grad_(True)
            wt = torch.from_numpy(w).requires_grad_(True)
            bt = torch.from_numpy(b).requires_grad_(True)
            rmt, rvt = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
            dyt = torch.from_numpy(x)

            def anchor(xt=xt, wt=wt, bt=bt, rmt=rmt, rvt=rvt, dyt=dyt):
                def run():
                    xt.grad = wt.grad = bt.grad = None
                    torch.nn.functional.batch_norm(xt, rmt, rvt, wt, bt, True).backward(dyt)

                return run

        name = "x".join(map(str, shape))
        out.append(Case("bn train fwd+bwd", name, 0.0, ours, anchor, "torch",
                        {"bytes": 4 * x.size * 5}))
    return out


# Decoder layers: upsampling (its own kernels) and the transposed convolution (on the
# convolution kernels with the roles swapped), forward + backward against PyTorch.
UPSAMPLE_SHAPES = [("nearest x2 32x64x28x28", (32, 64, 28, 28), "nearest"),
                   ("bilinear x2 32x64x28x28", (32, 64, 28, 28), "bilinear")]
# name: x shape, w shape (Cin, Cout, R, S), stride, padding, output_padding
CONV_TRANSPOSE_SHAPES = {
    "DCGAN 64x128x7x7 -> 64@4x4/2": ((64, 128, 7, 7), (128, 64, 4, 4), 2, 1, 0),
    "DCGAN 64x64x14x14 -> 1@4x4/2": ((64, 64, 14, 14), (64, 1, 4, 4), 2, 1, 0),
    "AE 128x32x7x7 -> 16@3x3/2 op1": ((128, 32, 7, 7), (32, 16, 3, 3), 2, 1, 1),
}


def upsample_cases(rng, torch) -> list[Case]:
    out = []
    for name, shape, mode in UPSAMPLE_SHAPES:
        x = rng.standard_normal(shape, dtype=np.float32)
        size = (2 * shape[2], 2 * shape[3])
        dy = rng.standard_normal((*shape[:2], *size), dtype=np.float32)
        fwd = getattr(K, f"upsample_{mode}2d_forward")
        bwd = getattr(K, f"upsample_{mode}2d_backward")

        def ours(be, x=x, dy=dy, size=size, fwd=fwd, bwd=bwd):
            x, dy = _dev(be, x, dy)

            def run():
                fwd(x, size, backend=be)
                bwd(dy, x.shape, backend=be)

            return run

        anchor = None
        if torch is not None:
            xt = torch.from_numpy(x).requires_grad_(True)
            dyt = torch.from_numpy(dy)

            def anchor(xt=xt, dyt=dyt, size=size, mode=mode):
                def run():
                    xt.grad = None
                    torch.nn.functional.interpolate(xt, size=size, mode=mode).backward(dyt)

                return run

        out.append(Case("upsample fwd+bwd", name, 0.0, ours, anchor, "torch",
                        {"bytes": 4 * (x.size * 2 + dy.size * 2)}))
    return out


def conv_transpose_cases(rng, torch) -> list[Case]:
    out = []
    for name, (x_shape, w_shape, s, p, op) in CONV_TRANSPOSE_SHAPES.items():
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
        y_shape = K.conv_transpose2d_output_shape(x_shape, w_shape, s, p, op)
        dy = rng.standard_normal(y_shape, dtype=np.float32)
        flops = 2.0 * np.prod(x_shape) * np.prod(w_shape[1:])

        def ours(be, x=x, w=w, dy=dy, s=s, p=p, op=op):
            x, w, dy = _dev(be, x, w, dy)

            def run():
                K.conv_transpose2d_forward(x, w, None, s, p, op, backend=be)
                K.conv_transpose2d_backward_data(dy, w, x.shape, s, p, op, backend=be)
                K.conv_transpose2d_backward_weight(dy, x, w.shape, s, p, op, backend=be)

            return run

        anchor = None
        if torch is not None:
            xt = torch.from_numpy(x).requires_grad_(True)
            wt = torch.from_numpy(w).requires_grad_(True)
            dyt = torch.from_numpy(dy)

            def anchor(xt=xt, wt=wt, dyt=dyt, s=s, p=p, op=op):
                def run():
                    xt.grad = wt.grad = None
                    torch.nn.functional.conv_transpose2d(xt, wt, None, s, p, op).backward(dyt)

                return run

        out.append(Case("deconv fwd+bwd", name, 3 * flops, ours, anchor, "torch"))
    return out


def all_cases(quick: bool = False, groups: set[str] | None = None) -> list[Case]:
    rng = np.random.default_rng(0)
    torch = _torch()
    cases = [gemm_case(n, rng) for n in ((256, 512, 1024) if quick else (256, 512, 1024, 2048))]
    for name, spec in CONV_SHAPES.items():
        if quick and name.startswith(("ResNet 32x64", "AlexNet", "VGG")):
            continue
        cases += conv_cases(name, spec, rng, torch)
    cases += pool_cases(rng, torch)
    cases += bn_cases(rng, torch)
    cases += upsample_cases(rng, torch) + conv_transpose_cases(rng, torch)
    from .bench16 import bf16_cases  # bfloat16 against torch bf16 and our float32

    cases += bf16_cases(rng, torch, quick)
    if groups:
        cases = [c for c in cases if c.group.split()[0] in groups]
    for c in cases:  # memory-bound kernels: against copying the bytes they move
        if c.gpu_anchor is None and "bytes" in c.extra:
            c.gpu_anchor = ("copy", _copy_anchor(c.extra["bytes"]))
    return cases


def _torch_cuda(torch) -> bool:
    try:
        if not torch.cuda.is_available():
            return False
    except Exception:  # a CPU build or a broken driver: no cuDNN anchor
        return False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return True


def _copy_anchor(nbytes: int):
    def factory():
        import cupy

        src = cupy.ones(max(nbytes // 8, 1), cupy.float32)  # read half, write half
        dst = cupy.empty_like(src)
        return lambda: cupy.copyto(dst, src)
    return factory


def time_cuda(fn: Callable[[], object], min_time: float = 0.4) -> tuple[float, float]:
    """(kernel seconds, host seconds) per call, medians: CUDA events around each call on
    the current stream, and the host's time for the call itself (adapter, launches)."""
    from cupyx.profiler import benchmark

    fn()  # warm-up: module loading, the memory pool
    res = benchmark(fn, n_repeat=10, n_warmup=1)
    per_call = max(float(np.median(res.gpu_times[0])), 1e-7)
    n = int(min(max(min_time / per_call, 3), 200))
    res = benchmark(fn, n_repeat=n, n_warmup=0)
    return float(np.median(res.gpu_times[0])), float(np.median(res.cpu_times))


def time_block(fn: Callable[[], object], min_time: float = 0.4, max_reps: int = 50) -> list[float]:
    fn()  # warm-up: JIT compilation, page faults, thread pools
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_time and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    time.sleep(0.05)
    return times


def run_case(case: Case, backends: list[str], rounds: int = 2, min_time: float = 0.4) -> dict:
    cpu = [be for be in backends if be != "cuda"]
    runners = {be: case.ours(be) for be in cpu}
    if case.anchor is not None and cpu:
        runners[case.anchor_name] = case.anchor()
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):  # alternate blocks so drifts in the machine's speed hit everyone
        for key, fn in runners.items():
            samples[key] += time_block(fn, min_time / rounds)
    medians = {k: float(np.median(v)) for k, v in samples.items()}
    host: dict[str, float] = {}
    gpu_anchor = None
    if "cuda" in backends:
        medians["cuda"], host["cuda"] = time_cuda(case.ours("cuda"), min_time)
        if case.gpu_anchor is not None:
            gpu_anchor = case.gpu_anchor[0]
            medians[gpu_anchor], host[gpu_anchor] = time_cuda(case.gpu_anchor[1](), min_time)
    return {"group": case.group, "name": case.name, "flops": case.flops,
            "anchor": case.anchor_name if case.anchor is not None and cpu else None,
            "gpu_anchor": gpu_anchor, "seconds": medians, "host_seconds": host, **case.extra}


def format_table(results: list[dict], backends: list[str]) -> str:
    """One row per case: each backend's time and its ratio to its device's anchor (the CPU
    anchor for native and numba; cuBLAS, cuDNN or the copy for cuda, whose host time per
    call is its own column)."""
    gpu = "cuda" in backends
    head = f"{'group':<17}{'case':<37}" + "".join(f"{b + ' ms':>11}" for b in backends)
    head += f"{'anchor ms':>11}"
    if gpu:
        head += f"{'gpu anchor':>18}{'cuda host ms':>13}"
    head += f"{'GFLOP/s':>9}" + "".join(f"{'x ' + b:>10}" for b in backends)
    lines = [head, "-" * len(head)]
    for r in results:
        s = r["seconds"]
        anchor = s.get(r["anchor"]) if r["anchor"] else None
        gpu_anchor = s.get(r.get("gpu_anchor")) if r.get("gpu_anchor") else None
        row = f"{r['group']:<17}{r['name'][:36]:<37}"
        row += "".join(f"{s[b] * 1e3:>11.2f}" for b in backends)
        row += f"{anchor * 1e3:>11.2f}" if anchor else f"{'-':>11}"
        if gpu:
            row += (f"{r['gpu_anchor'] + ' ' + format(gpu_anchor * 1e3, '.3f'):>18}"
                    if gpu_anchor else f"{'-':>18}")
            row += f"{r['host_seconds']['cuda'] * 1e3:>13.3f}"
        best = min(s[b] for b in backends)
        row += f"{r['flops'] / best / 1e9:>9.0f}" if r["flops"] else f"{'-':>9}"
        for b in backends:
            ref = gpu_anchor if b == "cuda" else anchor
            row += f"{ref / s[b]:>10.2f}" if ref else f"{'-':>10}"
        lines.append(row)
    lines.append("x BACKEND = anchor time / BACKEND time (above 1.00: faster than the anchor); "
                 "anchors: numpy for gemm, torch for the rest, the one named for bf16; "
                 "medians")
    if gpu:
        lines.append("cuda: kernel time from CUDA events; x cuda against cuBLAS (gemm), cuDNN "
                     "with TF32 off (conv) or a device-to-device copy of the bytes moved; "
                     "cuda host ms: the host's time per call (adapter and launches)")
    return "\n".join(lines)


def available_cpu_backends() -> list[str]:
    return [b for b in ("native", "numba") if _registry.get(b) is not None]


def default_backends() -> list[str]:
    """Every backend this machine can run: the CPU ones, and cuda when a GPU is usable."""
    return available_cpu_backends() + (["cuda"] if _registry.get("cuda") is not None else [])
