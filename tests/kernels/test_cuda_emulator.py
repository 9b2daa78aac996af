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
import sys

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



# The real kernels that accumulate with atomics (split-K weight gradient, max-pool
# backward over overlapping windows, both upsampling backwards) and those that share
# memory within a block (the tiled GEMM, batch norm's reductions, the cell backward), run
# once under ThreadSanitizer: a missing atomic or barrier anywhere on these paths is a
# reported race. Python is not instrumented, so the run needs libtsan preloaded and
# address-space randomisation off (setarch -R).
RACE_SCRIPT = """
import sys
import numpy as np
from tests.kernels import test_cuda as gpu
from tests.kernels import test_cuda_emulated as E

emu = E.load_adapter(E._load_extension(sys.argv[1]))
cp = E._numpy_cupy()
gpu.test_conv2d_matches_cpu_and_cudnn(cp, emu, None, ((64, 2, 12, 12), (3, 3, 3), 1, 1, 1),
                                      np.float32)
gpu.test_max_pool2d_matches_cpu_and_cudnn(cp, emu, None, ((2, 3, 7, 9), 3, 2, 1), np.float32)
for mode, corners in gpu.UPSAMPLE_MODES:
    gpu.test_upsample_matches_cpu_and_torch(cp, emu, None, ((2, 3, 5, 7), (11, 13), None),
                                            mode, corners, np.float32)
gpu.test_batch_norm_matches_cpu_and_cudnn(cp, emu, None, (64, 2, 16, 16), np.float32)
gpu.test_rnn_cells_match_cpu(cp, emu, "lstm", 5, 33, True, np.float32)
print("kernels ran")
"""


def test_real_kernels_are_race_free_under_tsan():
    reason = emu_build.skip_reason()
    if reason:
        pytest.skip(reason)
    setarch = shutil.which("setarch")
    libtsan = subprocess.run([emu_build.compiler(), "-print-file-name=libtsan.so"],
                             capture_output=True, text=True).stdout.strip()
    if setarch is None or not os.path.isabs(libtsan):
        pytest.skip("ThreadSanitizer runs need setarch and the compiler's libtsan.so")
    so, error = emu_build.build(emu_build.build_dir("-tsan"), ["-fsanitize=thread"],
                                ["-fsanitize=thread"])
    if error:
        pytest.fail(error)
    # One OpenMP thread for the native kernels the script may touch (the CPU reference):
    # libgomp is not instrumented, so TSan would report its own synchronisation as races.
    env = {**os.environ, "LD_PRELOAD": libtsan, "TSAN_OPTIONS": "exitcode=66",
           "PYTHONPATH": emu_build.ROOT, "CONVNET_EMU_BLOCKS_IN_FLIGHT": "2",
           "CONVNET_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([setarch, os.uname().machine, "-R", sys.executable, "-c",
                          RACE_SCRIPT, so], capture_output=True, text=True, env=env,
                         timeout=500, cwd=emu_build.ROOT)
    assert "ThreadSanitizer" not in res.stderr, res.stderr[-6000:]
    assert res.returncode == 0 and "kernels ran" in res.stdout, res.stderr[-3000:]
