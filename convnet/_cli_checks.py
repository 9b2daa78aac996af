"""Checks of the command line's options, run before any work: each failure is a
:class:`UsageError` whose one-line message the command prints (exit code 2)."""

from __future__ import annotations

import math
import os


class UsageError(ValueError):
    """A user error found before any work: one line on stderr, exit code 2."""


def check_number(args, name: str, low=None, high=None, *, low_open=False, high_open=False,
                 allow_none=False) -> None:
    """``--name`` must be finite and within [low, high] (open ends where asked)."""
    value = getattr(args, name.replace("-", "_"), None)
    if value is None:
        if allow_none:
            return
        raise UsageError(f"--{name}: a value is required")
    if not math.isfinite(value):
        raise UsageError(f"--{name}: must be a finite number, got {value}")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        raise UsageError(f"--{name}: must be {' and '.join(x for x in (lo, hi) if x)}, "
                         f"got {value}")


def check_output(option: str, path: str | None) -> None:
    """An output file must be creatable: not a folder, and its folder either a writable
    folder or missing under a writable one (:func:`make_output_folders` creates it once
    every check passed). Checked before training, not after."""
    if not path:
        return
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a folder, expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{option} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: the folder {existing} is not writable")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path}: the file is not writable")


def make_output_folders(*paths) -> None:
    for path in paths:
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def check_common(args) -> None:
    """Options that train and tune share."""
    check_number(args, "epochs", 0)
    check_number(args, "batch-size", 1)
    check_number(args, "threads", 1, 4096, allow_none=True)
    check_number(args, "seed", 0, 2**32 - 1)
    check_number(args, "val-fraction", 0, 1, high_open=True)
    check_number(args, "limit", 1, allow_none=True)
    if args.data is not None and not os.path.isdir(args.data):
        raise UsageError(f"--data {args.data}: no such folder")


def check_plot(path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("--plot: matplotlib is not installed (pip install convnet[plot])") \
            from None
    kinds = Figure().canvas.get_supported_filetypes()
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if ext not in kinds:
        raise UsageError(f"--plot {path}: unknown image type {ext!r}; use one of "
                         f"{', '.join(sorted(kinds))}")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
