"""Dry run of benchmarks/bench_gpu.py without a GPU, so the script the GPU machine runs
once cannot rot unnoticed: CuPy is stood in for by NumPy (with host-clock "events") and
the cuda backend by the native one, which has the same backend-level signatures."""

import importlib.util
import os
import time
import types

import numpy as np
import pytest

import convnet as cn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Event:
    def record(self):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


def numpy_as_cupy():
    cp = types.SimpleNamespace(**{n: getattr(np, n) for n in (
        "asarray", "empty", "empty_like", "ones", "zeros", "copyto", "matmul", "abs", "float32",
        "int64")})
    cp.asnumpy = np.asarray
    cp.__version__ = "numpy-standin"
    stream = types.SimpleNamespace(synchronize=lambda: None, ptr=0)
    cp.cuda = types.SimpleNamespace(
        Event=_Event, get_current_stream=lambda: stream,
        get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3)
    return cp


def test_bench_gpu_runs_end_to_end_on_stand_ins(monkeypatch, capsys):
    if not cn.backends()["native"]["available"]:
        pytest.skip("needs the native backend as the stand-in for cuda")
    from convnet import _C

    spec = importlib.util.spec_from_file_location(
        "bench_gpu", os.path.join(ROOT, "benchmarks", "bench_gpu.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "COPY_BYTES", 1 << 20)
    monkeypatch.setattr(bench, "GEMM_SIZES", [(64, 48, 32)])
    monkeypatch.setattr(bench, "GEMM_SIZES_FP64", [(16, 16, 16)])
    monkeypatch.setattr(bench, "CONV_SHAPES", [("tiny", (2, 3, 8, 8), (4, 3, 3), 1, 1),
                                               ("big tiny", (1, 2, 6, 6), (3, 1, 1), 2, 0)])
    monkeypatch.setattr(bench, "POOL_CASES", [("tiny", (2, 3, 8, 8), 2, 2, 0),
                                              ("2x2 big", (1, 2, 7, 7), 3, 2, 1)])
    monkeypatch.setattr(bench, "BN_CASES", [("tiny", (4, 3, 5, 5)), ("big", (8, 4))])
    monkeypatch.setattr(bench, "ACT_SIZE", 1000)
    monkeypatch.setattr(bench, "RNN_CASES", [("lstm", 3, 2, 5, 7), ("gru", 2, 3, 4, 6)])
    monkeypatch.setattr(bench, "UPSAMPLE_CASES", [("2x", (1, 2, 4, 5), (8, 10), "nearest", None),
                                                  ("x1.5", (2, 1, 4, 4), (6, 6), "bilinear",
                                                   True)])
    monkeypatch.setattr(bench, "gpu_ms", lambda fn, cp, **kw: bench.cpu_ms(fn, reps=2))

    ctx = bench.Ctx()
    ctx.cp, ctx.cu = numpy_as_cupy(), _C
    for stage in (bench.copy_bandwidth, bench.gemm, bench.conv2d, bench.pooling,
                  bench.batch_norm, bench.activations, bench.recurrent, bench.upsampling):
        stage(ctx)
    bench.table()
    out = capsys.readouterr().out
    assert "!!!" not in out, out
    kernels = {r["kernel"] for r in bench.ROWS}
    assert {"copy (d2d)", "gemm", "gemm fp64", "conv fwd", "conv bwd data", "conv bwd weight",
            "max_pool fwd", "max_pool bwd", "avg_pool fwd", "avg_pool bwd", "bn train fwd",
            "bn inference", "bn backward", "relu fwd", "tanh fwd", "elu fwd",
            "lstm layer fwd+bwd", "gru layer fwd+bwd", "upsample fwd", "upsample bwd"} <= kernels
    assert out.rstrip().endswith("=" * 100)  # the table is printed last
    assert all(r["ms"] > 0 for r in bench.ROWS)
