"""SIGKILL a `convnet train` run at random moments, again and again: the checkpoint is
always complete and passes its checksums, `--resume` ends at exactly the parameters of an
uninterrupted run, and no temporary file is left."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

import convnet as cn
from convnet._io import TMP_SUFFIX

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, CONVNET_NUM_THREADS="1", OMP_NUM_THREADS="1",
           NUMBA_NUM_THREADS="1", PYTHONUNBUFFERED="1")
EPOCHS = 20
ARGS = [sys.executable, "-m", "convnet.cli", "train", "lenet", "--limit", "192",
        "--batch-size", "64", "--val-fraction", "0", "--no-progress", "--threads", "1",
        "--seed", "5", "--epochs", str(EPOCHS)]


def _same(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


def _temporaries(folder):
    return [n for n in os.listdir(folder) if n.endswith(TMP_SUFFIX)]


def test_sigkill_at_random_moments_then_resume(tmp_path):
    ref = tmp_path / "ref.safetensors"
    done = subprocess.Popen(ARGS + ["--checkpoint", str(ref)], env=ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done.stdout.readline()  # the set-up is over: time the epochs alone
    start = time.perf_counter()
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    # kills land within about three epochs of a start, however fast this machine trains,
    # so that every run is killed several times before it can finish
    window = 3 * (time.perf_counter() - start) / EPOCHS

    ck = tmp_path / "ck.safetensors"
    rng = random.Random(2024)
    kills, last_epoch = 0, 0
    killed = set()  # the pids of the writers killed so far
    while kills < 8:
        cmd = ARGS + ["--checkpoint", str(ck)] + (["--resume"] if ck.exists() else [])
        proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # "model lenet: ..." once the set-up is done
        assert first.startswith("model lenet"), first + proc.stderr.read()
        time.sleep(rng.uniform(0.0, window))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            killed.add(proc.pid)
        proc.wait(timeout=120)
        proc.stdout.close()
        proc.stderr.close()
        if ck.exists():
            state = cn.load(ck)  # checksums verified: a torn write would fail here
            assert set(state) >= {"model", "optimizer", "history", "epoch", "run"}
            assert last_epoch <= state["epoch"] <= EPOCHS
            assert len(state["history"]["loss"]) == state["epoch"]
            last_epoch = state["epoch"]
        print(f"attempt: kills {kills}, checkpoint epoch {last_epoch}, "
              f"temporaries {_temporaries(tmp_path)}")
        # a temporary may outlive a kill mid-save, but only a killed writer's own (a run
        # killed before its first save leaves an earlier one's in place)
        for name in _temporaries(tmp_path):
            assert int(name.split(".")[-3]) in killed, name
        if last_epoch == EPOCHS:
            break

    # finish the run; its first save removes what a killed writer left behind
    if last_epoch < EPOCHS:
        out = subprocess.run(ARGS + ["--checkpoint", str(ck), "--resume"], env=ENV, cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        assert "resumed from" in out.stdout or last_epoch == 0
    final, want = cn.load(ck), cn.load(ref)
    assert final["epoch"] == EPOCHS
    _same(final["model"], want["model"], "model")
    _same(final["optimizer"], want["optimizer"], "optimizer")
    assert _temporaries(tmp_path) == []
    assert kills >= 3


SAVE_LOOP = """
import sys, numpy as np, convnet as cn
i = 0
while True:
    cn.save({"w": np.full(4_000_000, i, np.float32), "i": i}, sys.argv[1])
    i += 1
"""


def test_sigkill_during_saves_leaves_old_or_new_file_and_cleanable_temporaries(tmp_path):
    path = tmp_path / "big.safetensors"
    rng = random.Random(7)
    left_behind = 0
    for _ in range(6):
        before = path.stat().st_mtime_ns if path.exists() else None
        proc = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(path)], env=ENV, cwd=ROOT)
        deadline = time.time() + 120
        # wait for this process's first complete save, then kill it at a random moment
        while (not path.exists() or path.stat().st_mtime_ns == before) \
                and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        state = cn.load(path)  # complete and verified: the 16 MB tensor's checksum holds
        assert state["w"].shape == (4_000_000,)
        assert (state["w"] == state["i"]).all()
        temps = _temporaries(tmp_path)
        assert all(n.startswith(f".{path.name}.{proc.pid}.") for n in temps), temps
        left_behind += len(temps)
    cn.save({"w": np.zeros(3, np.float32), "i": -1}, path)  # the next successful save
    assert _temporaries(tmp_path) == []
    print(f"temporaries left by kills mid-save and cleaned: {left_behind}")
