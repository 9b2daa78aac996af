"""The CUDA emulator (tests/kernels/cuda_emu) catches what a GPU would: planted kernels in
cuda_emu/selftest.cu, each with the bug the emulator must expose, run through the same
launch macro and the same source rewrite as csrc/cuda.

The race checks build the programs with -fsanitize=thread: blocks run concurrently with no
ordering between them, so two blocks updating one address without an atomic is a data
race ThreadSanitizer reports whatever the timing was.
"""

import os
import shutil
import subprocess

import pytest

from tests.kernels import emu_build

pytestmark = pytest.mark.timeout(600)
SOURCE = os.path.join(emu_build.EMU, "selftest.cu")


def _program(tag, flags=()):
    reason = emu_build.skip_reason()
    if reason:
        pytest.skip(reason)
    exe, error = emu_build.build_program(SOURCE, emu_build.build_dir("-selftest" + tag), flags)
    if error:
        if tag == "-tsan" and "tsan" in error:
            pytest.skip(f"the compiler has no ThreadSanitizer: {error[-300:]}")
        pytest.fail(error)
    return exe


@pytest.fixture(scope="module")
def plain():
    return _program("")


@pytest.fixture(scope="module")
def tsan():
    return _program("-tsan", ["-fsanitize=thread"])


def run(exe, mode, **env):
    res = subprocess.run([exe, mode], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    return res


def values(res):
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("out "))
    return [float(v) for v in line.split()[1:]]


def test_shared_memory_starts_as_nan(plain):
    res = run(plain, "unwritten-shared")
    out = values(res)
    # Two blocks, each thread reading back its own slot: the 63 written ones come back,
    # the one nobody wrote is NaN in both blocks.
    for b in range(2):
        assert out[64 * b:64 * b + 63] == [float(i) for i in range(63)]
        assert out[64 * b + 63] != out[64 * b + 63]


def test_more_than_48k_of_static_shared_memory_is_refused(plain):
    out = run(plain, "too-much-shared").stdout
    assert "error emulated kernel launch: too much static shared memory: 49600 bytes" in out


def test_launch_bounds_are_enforced(plain):
    assert values(run(plain, "within-bounds")) == [1.0]
    out = run(plain, "beyond-bounds").stdout
    assert "128 threads per block exceeds the kernel's __launch_bounds__(64)" in out


def test_cp_async_lands_at_the_wait_only(plain):
    assert values(run(plain, "cp-async-wait")) == [float(i) for i in range(64)]
    no_wait = values(run(plain, "cp-async-no-wait"))
    assert all(v != v for v in no_wait), no_wait[:8]


def test_blocks_run_concurrently_in_a_shuffled_order(plain):
    lines = dict(ln.split(" ", 1) for ln in run(plain, "block-order").stdout.splitlines())
    order = [int(v) for v in lines["order"].split()]
    assert sorted(order) == list(range(16)) and order != list(range(16))
    assert int(lines["most"]) == 4  # CONVNET_EMU_BLOCKS_IN_FLIGHT's default
    again = run(plain, "block-order", CONVNET_EMU_SEED="7").stdout
    assert again.splitlines()[0] != "order " + lines["order"]
    one = run(plain, "block-order", CONVNET_EMU_BLOCKS_IN_FLIGHT="1").stdout
    assert "most 1" in one


def test_atomic_add_across_blocks_is_race_free(tsan):
    res = run(tsan, "atomic-add", TSAN_OPTIONS="exitcode=66")
    assert res.returncode == 0, res.stderr[-3000:]
    assert values(res) == [128.0] * 32


def test_plain_add_across_blocks_is_reported_as_a_race(tsan):
    res = run(tsan, "plain-add", TSAN_OPTIONS="exitcode=66")
    assert res.returncode == 66 and "ThreadSanitizer: data race" in res.stderr, res.stderr[-3000:]

