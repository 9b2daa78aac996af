"""Issue 13: the backend choice is per thread, the thread count reaches every thread."""

import threading

import numpy as np
import pytest

import convnet as cn

K = cn.kernels


def _in_thread(fn):
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # reported in the calling thread
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=300)
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_use_backend_belongs_to_its_thread():
    if not (cn.backends()["native"]["available"] and cn.backends()["numba"]["available"]):
        pytest.skip("needs both CPU backends")
    from convnet.kernels._registry import default_cpu

    inside = threading.Event()
    leave = threading.Event()
    seen = {}

    def worker():
        with K.use_backend("numba"):
            seen["worker"] = default_cpu()
            inside.set()
            leave.wait(60)
            seen["worker_after"] = default_cpu()

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(60)
    try:
        seen["main"] = default_cpu()  # while the other thread is inside its block
        with K.use_backend("native"):
            seen["main_inside"] = default_cpu()
    finally:
        leave.set()
        t.join(60)
    assert seen == {"worker": "numba", "main": "native", "main_inside": "native",
                    "worker_after": "numba"}
    assert default_cpu() == "native"


def test_use_backend_nests_and_restores():
    if not cn.backends()["numba"]["available"]:
        pytest.skip("numba unavailable")
    from convnet.kernels._registry import default_cpu

    before = default_cpu()
    block = K.use_backend("numba")
    with block:
        with block:  # the same object twice
            assert default_cpu() == "numba"
        assert default_cpu() == "numba"
    assert default_cpu() == before


def test_set_num_threads_reaches_numba_in_other_threads():
    if not cn.backends()["numba"]["available"]:
        pytest.skip("numba unavailable")
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba's pool has one thread")
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(1)

        def run():
            x = np.ones(8)
            K.activation_forward(x, "tanh", backend="numba")  # any Numba kernel
            return numba.get_num_threads()

        assert _in_thread(run) == 1
        cn.set_num_threads(2)
        assert _in_thread(run) == 2
    finally:
        cn.set_num_threads(before)


def _native_module():
    from convnet.kernels import _registry

    native = _registry.get("native")
    if native is None:
        pytest.skip("native backend unavailable")
    return native


def test_available_threads_stays_within_the_set_count(monkeypatch):
    # The kernels take fewer threads than set while other processes keep cores busy (a
    # measurement of the machine), never more, and never fewer than one.
    import time

    native = _native_module()
    monkeypatch.setenv("CONVNET_ADAPTIVE_THREADS", "1")
    before = cn.get_num_threads()
    try:
        for n in (1, 2, 3):
            cn.set_num_threads(n)
            for _ in range(3):
                assert 1 <= native.available_threads() <= n
                time.sleep(0.11)  # past one measuring window
        cn.set_num_threads(1)
        assert native.available_threads() == 1
    finally:
        cn.set_num_threads(before)


def test_adaptive_threads_can_be_turned_off():
    import os
    import subprocess
    import sys

    _native_module()
    code = ("import time, convnet as cn\n"
            "from convnet.kernels import _registry\n"
            "cn.set_num_threads(3)\n"
            "native = _registry.get('native')\n"
            "seen = set()\n"
            "for _ in range(3):\n"
            "    seen.add(native.available_threads())\n"
            "    time.sleep(0.11)\n"
            "print(sorted(seen))\n")
    env = dict(os.environ, CONVNET_ADAPTIVE_THREADS="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    assert out.strip() == "[3]"
