"""convnet's malloc tuning (convnet/_allocator.py): large arrays freed by one training step
are reused by the next without faulting their pages in again; CONVNET_MALLOC_TUNING=0
leaves glibc's defaults."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the tuning applies to glibc only")

# Page faults while a step-like loop allocates, touches and frees 8 MiB arrays (after one
# warm-up round): with glibc's defaults the memory goes back to the system on free (about
# 20,000 faults over the 20 rounds here: each array has 2,048 pages), with the tuning it
# stays.
_FAULTS = """
import resource, numpy as np, convnet
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    a = np.ones(2 << 20, dtype=np.float32)
    b = a * 2.0
    del a, b
step()
before = faults()
for _ in range(20):
    step()
print(convnet._allocator.malloc_state())
print(faults() - before)
"""


def _run(tuning: str):
    env = dict(os.environ, CONVNET_MALLOC_TUNING=tuning)
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return out[0], int(out[1])


def test_freed_arrays_are_reused_without_page_faults():
    state, faults = _run("1")
    assert state.startswith("glibc, blocks up to 32 MiB kept on the heap")
    assert faults < 200, faults


def test_opting_out_keeps_glibc_defaults():
    state, faults = _run("0")
    assert state == "glibc defaults (CONVNET_MALLOC_TUNING=0)"
    assert faults > 5000, faults


def test_the_state_is_reported_by_convnet_info():
    out = subprocess.run([sys.executable, "-c", "from convnet.cli import main; main()", "info"],
                         capture_output=True, text=True, check=True).stdout
    assert any(line.startswith("malloc glibc, blocks up to 32 MiB") for line in out.splitlines())
