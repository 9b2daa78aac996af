import os

import numpy as np
import pytest

import convnet as cn
from tests.helpers import torch_or_skip

# The kernels take the thread counts the tests set, not fewer when other processes load
# the machine (tests/kernels/test_threads.py switches the adaptation back on)
os.environ.setdefault("CONVNET_ADAPTIVE_THREADS", "0")

CPU_BACKENDS = ("native", "numba")
DTYPES = (np.float32, np.float64)


def pytest_report_header(config):
    lines = []
    for name, info in cn.backends().items():
        state = "available" if info["available"] else "unavailable"
        lines.append(f"convnet backend {name}: {state} ({info['detail']})")
    return lines


@pytest.fixture(params=CPU_BACKENDS)
def backend(request):
    info = cn.backends()[request.param]
    if not info["available"]:
        if request.param == "native" and os.environ.get("CONVNET_REQUIRE_NATIVE") == "1":
            pytest.fail(f"native backend required but unavailable: {info['detail']}")
        pytest.skip(f"{request.param} backend unavailable: {info['detail']}")
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture
def torch():
    """PyTorch CPU, the oracle; the test that asks for it skips (with the reason) where it
    is not installed, and the tests next to it still run."""
    return torch_or_skip()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
