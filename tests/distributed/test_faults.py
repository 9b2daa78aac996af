"""A failed rank must not leave the others hanging: real ranks, one made to fail."""

import re
import time

from ._launch import run_ranks


def _pids(proc):
    return {int(r): int(p) for r, p in re.findall(r"PID rank (\d) (\d+)", proc.stdout)}


def test_an_exception_in_one_rank_aborts_all_and_names_it():
    t0 = time.monotonic()
    # the collectives' own timeout is long: the abort, not the timeout, must end the run
    proc = run_ranks("faults.py", "raise", 600, check=False, timeout=120)
    assert time.monotonic() - t0 < 60
    assert proc.returncode != 0
    assert "rank 0 finished" not in proc.stdout
    assert "[rank 1] ValueError: boom in rank 1" in proc.stderr
    assert "rank 1 failed with an unhandled ValueError; aborting all ranks" in proc.stderr


def test_a_killed_rank_stops_the_job():
    # mpiexec's default: when one rank dies it kills the others and names the dead
    # process's pid, which the ranks printed at start
    t0 = time.monotonic()
    proc = run_ranks("faults.py", "kill", 600, check=False, timeout=120)
    assert time.monotonic() - t0 < 60
    assert proc.returncode != 0
    assert "rank 0 finished" not in proc.stdout
    pids = _pids(proc)
    assert f"PID {pids[1]} " in proc.stdout + proc.stderr


def test_a_stuck_rank_ends_with_the_collective_timeout():
    # rank 1 never arrives: rank 0's all-reduce gives up after its timeout, and its abort
    # ends rank 1 too (long before rank 1's two minutes of sleep)
    t0 = time.monotonic()
    proc = run_ranks("faults.py", "hang", 2, check=False, timeout=120)
    assert time.monotonic() - t0 < 60
    assert proc.returncode != 0
    assert "rank 0 finished" not in proc.stdout
    assert "all_reduce: rank 0 waited 2 s for the other ranks and gave up: no peer on " \
           "this host has exited" in proc.stderr
    assert "[rank 0] DistributedTimeoutError: all_reduce" in proc.stderr
    assert "rank 0 timed out; aborting all ranks (MPI_Abort)" in proc.stderr


def test_a_killed_rank_without_mpiexec_cleanup_still_ends_the_job():
    # Without mpiexec's clean-up, MPICH sometimes kills the survivors itself (seen about
    # half the time here) before the collective's timeout; when the timeout is first, its
    # message names the dead rank and its pid.
    t0 = time.monotonic()
    proc = run_ranks("faults.py", "kill", 3, mpi_flags=("-disable-auto-cleanup",),
                     check=False, timeout=120)
    assert time.monotonic() - t0 < 60
    assert proc.returncode != 0
    assert "rank 0 finished" not in proc.stdout
    if "gave up" in proc.stderr:
        pid = _pids(proc)[1]
        assert (f"all_reduce: rank 0 waited 3 s for the other ranks and gave up: rank 1 "
                f"(pid {pid} on ") in proc.stderr


def test_dead_peers_finds_exited_and_zombie_processes():
    import os
    import socket
    import subprocess
    import sys

    from convnet.distributed._group import _dead_peers, _Group

    class Comm:
        def Get_rank(self):
            return 0

        def Get_size(self):
            return 4

    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    reaped = subprocess.Popen([sys.executable, "-c", "pass"])
    reaped.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exited but not waited for: a zombie
        with open(f"/proc/{zombie.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    g = _Group(Comm(), 1.0)
    host = socket.gethostname()
    g.peers = [(host, os.getpid()), (host, zombie.pid), (host, os.getppid()),
               (host, reaped.pid)]
    try:
        assert _dead_peers(g) == [1, 3]
    finally:
        zombie.wait()
