"""pytest-benchmark suite: each kernel case, native vs Numba vs the anchor, in one run.

    pytest benchmarks/test_kernels.py --benchmark-group-by=param:case
    pytest benchmarks/test_kernels.py -k "conv and ResNet" --benchmark-columns=median

The cases are the ones ``convnet bench`` prints as a ratio table (convnet/bench.py).
"""

import pytest

from convnet import bench

CASES = bench.all_cases(quick=False)
IMPLS = ["native", "numba", "anchor"]


def _runner(case, impl):
    if impl == "anchor":
        if case.anchor is None:
            pytest.skip("anchor unavailable (torch not installed)")
        return case.anchor()
    if impl not in bench.available_cpu_backends():
        pytest.skip(f"{impl} backend unavailable")
    return case.ours(impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}:{c.name}" for c in CASES])
def test_kernel(benchmark, case, impl):
    fn = _runner(case, impl)
    fn()  # warm-up (JIT compilation, thread pools)
    benchmark.group = f"{case.group}: {case.name}"
    benchmark.extra_info["gflop"] = case.flops / 1e9
    benchmark.pedantic(fn, rounds=7, iterations=1, warmup_rounds=1)
