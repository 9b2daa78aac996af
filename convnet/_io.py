"""Atomic file writes and safe opening of files to read.

A write goes to a temporary file beside the target, named ``.<target>.<pid>.<random>.convnet-tmp``
so that it is recognisable, is flushed and fsynced, then renamed over the target, so that a
crash mid-write never leaves a half-written file behind. The temporary is removed on any
exception; one left by a killed process (SIGKILL runs no handler) is removed by the next
successful write of the same target when it is older than the new target and its writer is
gone.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

TMP_SUFFIX = ".convnet-tmp"


def _tmp_prefix(path: str) -> str:
    return f".{os.path.basename(path)}.{os.getpid()}."


@contextlib.contextmanager
def atomic_writer(path):
    """``with atomic_writer(path) as fh: fh.write(...)``: ``path`` is replaced only when the
    block ends without an exception."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_tmp_prefix(path), suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            # mkstemp makes the file 0600; give it the mode an ordinary open() would
            os.fchmod(fh.fileno(), _file_mode(path))
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)
    clean_stale_temporaries(path)


def _file_mode(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)  # keep the replaced file's mode
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_writer(path) as fh:
        fh.write(data)


def _fsync_folder(folder: str) -> None:
    # the rename is durable only once the folder's entry is on disk
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own temporaries of this target are finished by now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def clean_stale_temporaries(path) -> list[str]:
    """Remove temporaries of ``path`` older than ``path`` whose writing process is gone;
    returns the names removed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base = f".{os.path.basename(path)}."
    try:
        target_mtime = os.stat(path).st_mtime
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        if not (name.startswith(base) and name.endswith(TMP_SUFFIX)):
            continue
        pid = name[len(base):].split(".", 1)[0]
        full = os.path.join(folder, name)
        try:
            if (pid.isdigit() and not _alive(int(pid))
                    and os.stat(full).st_mtime <= target_mtime):
                os.unlink(full)
                removed.append(name)
        except OSError:
            continue
    return removed


def open_regular_file(path, what: str = "load"):
    """Open ``path`` for reading in binary mode, refusing anything but a regular file.

    The file is opened non-blocking first so that a FIFO cannot hang the call, and checked
    with fstat on the open descriptor so that the check and the read see the same file.
    Devices (``/dev/zero``), FIFOs, sockets and folders are a ``ValueError``.
    """
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise ValueError(f"{what}: {path} is {kind}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
