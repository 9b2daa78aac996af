"""`convnet bench` with the cuda backend, the parts that run without a GPU: the default
backends, the rows of a cuda run (kernel time, host time, GPU anchor, ratio) and the table;
timing itself is stood in for (the GPU machine runs the real thing)."""

import numpy as np

from convnet import bench
from convnet.kernels import _registry


def test_default_backends_add_cuda_only_when_a_gpu_is_usable(monkeypatch):
    cpu = bench.available_cpu_backends()
    assert bench.default_backends() == cpu + (["cuda"] if _registry.get("cuda") else [])
    real_get = _registry.get
    monkeypatch.setattr(_registry, "get",
                        lambda name: object() if name == "cuda" else real_get(name))
    assert bench.default_backends() == cpu + ["cuda"]
    monkeypatch.setattr(_registry, "get", lambda name: None if name == "cuda" else real_get(name))
    assert bench.default_backends() == cpu


def test_cuda_rows_sit_beside_the_cpu_ones(monkeypatch):
    case = bench.gemm_case(8, np.random.default_rng(0))
    assert case.gpu_anchor[0] == "cuBLAS"
    case.gpu_anchor = ("cuBLAS", lambda: (lambda: "cublas"))
    monkeypatch.setattr(bench, "_dev", lambda be, *arrays: arrays)
    timed = []

    def fake_time_cuda(fn, min_time=0.4):
        timed.append(fn)
        return (2e-3, 5e-5) if len(timed) == 1 else (1e-3, 1e-5)  # ours, then the anchor

    monkeypatch.setattr(bench, "time_cuda", fake_time_cuda)
    cpu = bench.available_cpu_backends()[:1]
    row = bench.run_case(case, cpu + ["cuda"], rounds=1, min_time=0.001)
    assert row["gpu_anchor"] == "cuBLAS" and row["anchor"] == "numpy"
    assert row["seconds"]["cuda"] == 2e-3 and row["seconds"]["cuBLAS"] == 1e-3
    assert row["host_seconds"] == {"cuda": 5e-5, "cuBLAS": 1e-5}
    assert set(row["seconds"]) == {*cpu, "numpy", "cuda", "cuBLAS"}
    table = bench.format_table([row], cpu + ["cuda"])
    head, _, line = table.splitlines()[:3]
    assert "cuda ms" in head and "gpu anchor" in head and "cuda host ms" in head
    cells = line.split()
    assert "2.00" in cells and "cuBLAS" in cells and "1.000" in cells and "0.050" in cells
    assert cells[-1] == "0.50"  # x cuda = cuBLAS time / ours
    assert "CUDA events" in table


def test_memory_bound_cases_get_the_copy_anchor_and_cpu_tables_stay_as_they_were():
    cases = bench.all_cases(quick=True, groups={"pool", "bn"})
    assert cases and all(c.gpu_anchor and c.gpu_anchor[0] == "copy" for c in cases)
    row = {"group": "g", "name": "n", "flops": 0.0, "anchor": None, "gpu_anchor": None,
           "seconds": {"native": 1e-3}, "host_seconds": {}}
    table = bench.format_table([row], ["native"])
    assert "gpu anchor" not in table and "cuda" not in table
