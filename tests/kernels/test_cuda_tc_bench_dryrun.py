"""Dry run of the tensor-core stage of benchmarks/bench_gpu.py (benchmarks/bench_gpu_tc.py)
without a GPU: CuPy stood in for by NumPy with host-clock events (as in
test_cuda_bench_dryrun.py) and the cuda backend by the emulated tensor-core kernels, on
tiny shapes, so the rows the GPU machine prints cannot rot unnoticed."""

import importlib.machinery
import importlib.util
import os

import numpy as np
import pytest

from tests.kernels.test_cuda_bench_dryrun import ROOT, numpy_as_cupy
from tests.kernels.test_cuda_emulated import emu  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(900)


def test_tensor_core_stage_runs_on_stand_ins(emu, monkeypatch, capsys):  # noqa: F811
    import convnet as cn

    spec = importlib.util.spec_from_file_location(
        "bench_gpu", os.path.join(ROOT, "benchmarks", "bench_gpu.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "gpu_ms", lambda fn, cp, **kw: bench.cpu_ms(fn, reps=1))
    real_exec = importlib.machinery.SourceFileLoader.exec_module

    def shrink(loader, module):  # the stage loads bench_gpu_tc.py itself: shrink its cases
        real_exec(loader, module)
        if module.__name__ == "bench_gpu_tc":
            module.TC_GEMM_SIZES = [(40, 24, 32)]
            module.TC_CONV_SHAPES = [("tiny", (2, 3, 6, 6), (5, 3, 3), 1, 1)]

    monkeypatch.setattr(importlib.machinery.SourceFileLoader, "exec_module", shrink)
    cp = numpy_as_cupy()
    cp.float16 = np.float16
    ctx = bench.Ctx()
    ctx.cp, ctx.cu = cp, emu
    tf32_before = (cn.backends.cuda.matmul.allow_tf32, cn.backends.cudnn.allow_tf32)
    bench.tensor_cores(ctx)
    bench.table()
    out = capsys.readouterr().out
    assert "!!!" not in out, out
    assert (cn.backends.cuda.matmul.allow_tf32, cn.backends.cudnn.allow_tf32) == tf32_before
    kernels = {r["kernel"] for r in bench.ROWS}
    for dt in ("f16", "bf16", "tf32"):
        assert {f"tc gemm {dt}", f"tc conv fwd {dt}", f"tc conv bwd data {dt}",
                f"tc conv bwd wgt {dt}"} <= kernels, kernels
    assert "  cuBLAS f16" in kernels  # the CuPy anchor (NumPy here); PyTorch's need a GPU
    assert out.rstrip().endswith("=" * 100)
    assert all(r["ms"] > 0 for r in bench.ROWS)
