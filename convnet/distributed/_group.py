"""The process group: MPI's world communicator, and what keeps a failed rank from hanging
the others.

Two guards, both installed by :func:`init_process_group`:

- an unhandled exception in any rank prints its traceback tagged with the rank and calls
  ``MPI_Abort``, which makes ``mpiexec`` stop every rank at once;
- every wait for a collective is watched against a deadline (``timeout``): past it, the
  rank prints a :class:`DistributedTimeoutError` message naming the ranks that are gone
  and aborts the job, instead of blocking forever.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import threading
import time
import traceback

_DEFAULT_TIMEOUT = 1800.0  # seconds, PyTorch's default


class DistributedTimeoutError(RuntimeError):
    """A collective did not complete before the process group's timeout (the name in the
    message the watchdog prints before it aborts the job)."""


class _Group:
    def __init__(self, comm, timeout: float):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.timeout = timeout
        self.peers: list[tuple[str, int]] = []  # (host, pid) of every rank


_group: _Group | None = None
_saved_excepthook = None


_MPI = None


def _mpi():
    global _MPI
    if _MPI is None:
        try:
            from mpi4py import MPI
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("convnet.distributed: mpi4py is not installed "
                               "(pip install convnet[distributed])") from exc
        _MPI = MPI
    return _MPI


def is_available() -> bool:
    """Whether mpi4py (and so an MPI library) can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def _seconds(timeout) -> float:
    if timeout is None:
        env = os.environ.get("CONVNET_DIST_TIMEOUT")
        return float(env) if env else _DEFAULT_TIMEOUT
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout: expected a positive number of seconds or a timedelta, "
                         f"got {timeout!r}")
    return float(timeout)


def init_process_group(backend: str = "mpi", init_method=None, timeout=None,
                       world_size: int = -1, rank: int = -1) -> None:
    """Join the ranks that ``mpiexec`` started (MPI's world); ``backend`` must be "mpi".

    ``world_size`` and ``rank``, when given, are checked against what MPI reports (MPI
    assigns them; they cannot be chosen). ``timeout`` (seconds or a timedelta; default
    the ``CONVNET_DIST_TIMEOUT`` environment variable, else 1800 s) bounds every
    collective.
    """
    global _group, _saved_excepthook
    if backend not in ("mpi", "MPI"):
        raise ValueError(f"backend: only 'mpi' is supported, got {backend!r}")
    if init_method is not None and not str(init_method).startswith("env://"):
        raise ValueError(f"init_method: MPI ranks are found by mpiexec; got {init_method!r}")
    if _group is not None:
        raise RuntimeError("init_process_group: trying to initialize the default process "
                           "group twice")
    seconds = _seconds(timeout)
    MPI = _mpi()
    comm = MPI.COMM_WORLD.Dup()
    group = _Group(comm, seconds)
    for name, given, actual in (("world_size", world_size, group.size),
                                ("rank", rank, group.rank)):
        if given not in (-1, None) and int(given) != actual:
            comm.Free()
            raise ValueError(f"{name}: MPI started this process with {name} {actual}, "
                             f"got {given}")
    _group = group
    _saved_excepthook = sys.excepthook
    sys.excepthook = _abort_on_exception
    # every rank's host and pid, so that a timeout can say which peer is gone
    group.peers = _allgather_object((socket.gethostname(), os.getpid()), "init_process_group")


def is_initialized() -> bool:
    return _group is not None


def destroy_process_group(group=None) -> None:
    """Leave the process group (MPI itself is finalised at exit by mpi4py)."""
    global _group, _saved_excepthook
    if _group is None:
        raise RuntimeError("destroy_process_group: the default process group is not "
                           "initialized")
    g, _group = _group, None
    if sys.excepthook is _abort_on_exception:
        sys.excepthook = _saved_excepthook or sys.__excepthook__
    _saved_excepthook = None
    g.comm.Free()


def _get() -> _Group:
    if _group is None:
        raise ValueError("Default process group has not been initialized, please make "
                           "sure to call init_process_group.")
    return _group


def get_rank(group=None) -> int:
    return _get().rank


def get_world_size(group=None) -> int:
    return _get().size


def get_backend(group=None) -> str:
    _get()
    return "mpi"


def _abort_on_exception(exc_type, exc, tb) -> None:
    g = _group
    rank = g.rank if g is not None else "?"
    lines = traceback.format_exception(exc_type, exc, tb)
    sys.stderr.write("".join(f"[rank {rank}] {line}" for line in "".join(lines).splitlines(
        keepends=True)))
    sys.stderr.write(f"convnet.distributed: rank {rank} failed with an unhandled "
                     f"{exc_type.__name__}; aborting all ranks (MPI_Abort)\n")
    sys.stderr.flush()
    if g is not None:
        time.sleep(0.2)  # lets mpiexec forward this rank's output before it kills the job
        g.comm.Abort(1)


def _dead_peers(g: _Group) -> list[int]:
    """Ranks on this host whose process no longer exists."""
    here = socket.gethostname()
    dead = []
    for r, (host, pid) in enumerate(g.peers):
        if r == g.rank or host != here:
            continue
        if not _alive(pid):
            dead.append(r)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed rank stays a zombie until mpiexec's proxy reaps it
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


class _Watchdog:
    """A daemon thread that aborts the job when a blocking wait passes its deadline.

    The waits themselves are MPI's (``Waitall`` releases the GIL and spins in C, as fast as
    a blocking collective); a Python polling loop cost ten times the latency of a small
    all-reduce. MPI cannot interrupt its own wait, so a timeout prints the reason (which
    peer is gone) and calls ``MPI_Abort``, which ends every rank.
    """

    _TICK = 0.25  # seconds between checks: the timeout fires within that of its deadline

    def __init__(self):
        self.armed: tuple[float, str, float] | None = None  # (deadline, what, limit)
        self.thread: threading.Thread | None = None

    # arm/disarm only assign one attribute (atomic under the GIL): no lock, no wake-up,
    # so that a collective costs no context switch
    def arm(self, what: str, limit: float) -> None:
        self.armed = (time.monotonic() + limit, what, limit)
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, daemon=True,
                                           name="convnet-distributed-watchdog")
            self.thread.start()

    def disarm(self) -> None:
        self.armed = None

    def _run(self) -> None:
        while True:
            time.sleep(self._TICK)
            armed, g = self.armed, _group
            if armed is None or g is None or time.monotonic() < armed[0]:
                continue
            message = _timeout_message(g, armed[1], armed[2])
            sys.stderr.write(f"[rank {g.rank}] DistributedTimeoutError: {message}\n"
                             f"convnet.distributed: rank {g.rank} timed out; aborting all "
                             "ranks (MPI_Abort)\n")
            sys.stderr.flush()
            time.sleep(0.2)  # lets mpiexec forward the message before the abort
            g.comm.Abort(1)


_watchdog = _Watchdog()


def wait_requests(requests, what: str, timeout: float | None = None) -> None:
    """Wait for MPI requests; past the group's timeout the job is aborted with a message
    naming the ranks that are gone (a wait for a dead peer would never return)."""
    g = _get()
    MPI = _mpi()
    if MPI.Request.Testall(requests):
        return
    _watchdog.arm(what, g.timeout if timeout is None else timeout)
    try:
        MPI.Request.Waitall(requests)
    finally:
        _watchdog.disarm()


def run_blocking(call, what: str):
    """Run a blocking MPI call (as fast as MPI makes it) under the deadline watchdog."""
    g = _get()
    _watchdog.arm(what, g.timeout)
    try:
        return call()
    finally:
        _watchdog.disarm()


def _timeout_message(g: _Group, what: str, limit: float) -> str:
    dead = _dead_peers(g)
    if dead:
        who = ", ".join(f"rank {r} (pid {g.peers[r][1]} on {g.peers[r][0]})" for r in dead)
        detail = f"{who} is gone"
    else:
        detail = ("no peer on this host has exited; a peer is stuck, slower than the "
                  "timeout, or on another host")
    return f"{what}: rank {g.rank} waited {limit:g} s for the other ranks and gave up: {detail}"


def _allgather_object(obj, what: str) -> list:
    """Every rank's Python object (small: pickled bytes through the timed collectives)."""
    import pickle

    import numpy as np

    g = _get()
    MPI = _mpi()
    payload = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    sizes = np.zeros(g.size, np.int64)
    req = g.comm.Iallgather(np.array([payload.size], np.int64), sizes)
    wait_requests([req], what)
    out = np.empty(int(sizes.sum()), np.uint8)
    displs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    req = g.comm.Iallgatherv(payload, [out, sizes, displs, MPI.BYTE])
    wait_requests([req], what)
    return [pickle.loads(out[d:d + s].tobytes()) for d, s in zip(displs, sizes, strict=True)]
