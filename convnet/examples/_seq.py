"""Shared by the recurrent-network examples: a minibatch training loop with a tqdm bar
for models whose loss is not a classification over rows (so not :func:`convnet.train.fit`),
the JSON report and a lazily imported pyplot."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

import numpy as np

from ..nn.utils import clip_grad_norm_


def batches(n: int, batch_size: int, rng: np.random.Generator | None):
    """Index arrays covering range(n) in batches (shuffled when ``rng`` is given)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def train_epoch(model, optimizer, step_loss: Callable, index_batches, *, clip=1.0,
                progress=True, desc="train") -> float:
    """One pass: for each index batch, ``step_loss(idx)`` builds the loss, then
    backward, gradient clipping (the norm, as RNNs can explode) and an optimizer step.
    Returns the mean loss."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    bar = index_batches
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(index_batches, desc=desc, leave=True, dynamic_ncols=True, unit="batch")
    total = count = 0.0
    for idx in bar:
        optimizer.zero_grad()
        loss = step_loss(idx)
        value = float(loss.item())
        if not math.isfinite(value):
            raise FloatingPointError(f"{desc}: the loss became {value}; lower --lr")
        loss.backward()
        if clip:
            clip_grad_norm_(params, clip)
        optimizer.step()
        total += value * len(idx)
        count += len(idx)
        if bar is not index_batches:
            bar.set_postfix(loss=f"{total / count:.4g}", refresh=False)
    return total / max(count, 1)


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def write_report(path, report: dict, log=print) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=float)
    log(f"report written to {path}")


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("--plot: matplotlib is not installed (pip install convnet[plot])") \
            from exc
    return plt


def add_common_arguments(parser) -> None:
    """--threads, --seed, --no-progress, --report and --plot, shared by the examples."""
    parser.add_argument("--threads", type=int, default=None,
                        help="kernel threads (default: all cores; 1 is faster on a busy "
                             "machine, where waiting threads spin)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--report", metavar="FILE.json")


def apply_threads(args) -> None:
    if args.threads is not None:
        from .._threads import set_num_threads

        set_num_threads(args.threads)
