"""The bfloat16 rows of ``convnet bench`` (convnet/bench16.py): each row's runner computes
the product it claims (no timing is asserted; speed lives in the benchmark itself)."""

from __future__ import annotations

import numpy as np
import pytest

import convnet as cn
from convnet import bench, bench16


def test_bf16_rows_are_listed_with_their_anchors():
    torch = bench._torch()
    cases = bench.all_cases(quick=False, groups={"bf16"})
    names = {(c.group, c.name, c.anchor_name) for c in cases}
    for n in bench16.GEMM_SIZES:
        assert ("bf16 gemm", f"gemm {n} vs convnet fp32", "convnet fp32") in names
        if torch is not None:
            assert ("bf16 gemm", f"gemm {n} vs torch bf16", "torch bf16") in names
    assert any(c.group == "bf16 conv" and c.anchor_name == "convnet fp32" for c in cases)
    assert all(c.group.split()[0] == "bf16" for c in cases)


def test_bf16_gemm_row_runs_a_bfloat16_product():
    rng = np.random.default_rng(0)
    case = bench16._gemm_cases(64, rng, None)[0]
    backend = bench.available_cpu_backends()[0]
    case.ours(backend)()
    row = bench.run_case(case, [backend], rounds=1, min_time=0.0)
    assert row["anchor"] == "convnet fp32" and row["flops"] == 2.0 * 64**3
    assert set(row["seconds"]) == {backend, "convnet fp32"}


def test_bf16_rows_compute_what_torch_does():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((33, 20)).astype(cn.bfloat16)
    b = rng.standard_normal((20, 17)).astype(cn.bfloat16)
    ours = cn.kernels.gemm(a, b).astype(np.float64)
    theirs = (torch.from_numpy(a.astype(np.float32)).bfloat16()
              @ torch.from_numpy(b.astype(np.float32)).bfloat16()).float().numpy()
    # both round a float32-accumulated product to bfloat16: within 2 bf16 units of each other
    exact = a.astype(np.float64) @ b.astype(np.float64)
    assert np.all(np.abs(ours - theirs) <= 2 * 2.0**-8 * np.abs(exact) + 1e-5 * np.abs(
        a.astype(np.float64)) @ np.abs(b.astype(np.float64)))
