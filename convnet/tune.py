"""Hyperparameter search: grid search and random search (the course's chapter 2).

    space = {"lr": LogUniform(1e-4, 1e-2), "batch_size": Choice([64, 128]),
             "optimizer": Choice(["adam", "sgd"])}
    results = random_search(objective, space, n_trials=10, seed=0)
    print(format_results(results)); save_best(results, "best.json")

``objective(params) -> score`` trains and returns a validation score (higher is better).
A grid takes lists of values and tries every combination.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ._io import atomic_write_bytes


@dataclass(frozen=True)
class Choice:
    values: Sequence

    def sample(self, rng: np.random.Generator):
        return self.values[int(rng.integers(len(self.values)))]


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class LogUniform:
    """Uniform in log space: the usual prior for learning rates."""

    low: float
    high: float

    def __post_init__(self):
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform: need 0 < low < high, got {self.low}, {self.high}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@dataclass(frozen=True)
class IntUniform:
    low: int
    high: int  # inclusive

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))


def _run(objective: Callable[[dict], float], trials: list[dict], log) -> list[dict]:
    results = []
    for i, params in enumerate(trials, 1):
        t0 = time.perf_counter()
        try:
            score, error = float(objective(dict(params))), None
        except FloatingPointError as exc:  # a diverging configuration is a result too
            score, error = float("-inf"), str(exc)
        results.append({"trial": i, "params": params, "score": score,
                         "seconds": time.perf_counter() - t0, "error": error})
        log(f"trial {i}/{len(trials)}: {_fmt(params)} -> "
            f"{'diverged' if error else f'{score:.4f}'}")
    return sorted(results, key=lambda r: r["score"], reverse=True)


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def grid_search(objective: Callable[[dict], float], grid: dict[str, Sequence],
                log: Callable[[str], None] = print) -> list[dict]:
    """Try every combination of the listed values; results sorted by score (best first)."""
    if not grid:
        raise ValueError("grid: expected at least one hyperparameter")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"grid[{name!r}]: expected a non-empty list of values")
    names = list(grid)
    trials = [dict(zip(names, combo)) for combo in itertools.product(*grid.values())]
    return _run(objective, trials, log)


def random_search(objective: Callable[[dict], float], space: dict, n_trials: int,
                  seed: int = 0, log: Callable[[str], None] = print) -> list[dict]:
    """Sample ``n_trials`` configurations from ``space`` (distributions, or lists meaning a
    uniform choice); results sorted by score (best first)."""
    if n_trials < 1:
        raise ValueError(f"n_trials: must be >= 1, got {n_trials}")
    rng = np.random.default_rng(seed)
    dists = {k: (v if hasattr(v, "sample") else Choice(list(v))) for k, v in space.items()}
    trials = [{k: d.sample(rng) for k, d in dists.items()} for _ in range(n_trials)]
    return _run(objective, trials, log)


def format_results(results: list[dict], top: int | None = None) -> str:
    """A table of the trials, best first."""
    rows = results[:top] if top else results
    names = list(rows[0]["params"]) if rows else []
    head = f"{'rank':>4} {'score':>8} {'seconds':>8}  " + "  ".join(f"{n:>12}" for n in names)
    lines = [head, "-" * len(head)]
    for rank, r in enumerate(rows, 1):
        cells = []
        for n in names:
            v = r["params"][n]
            cells.append(f"{v:>12.4g}" if isinstance(v, float) else f"{v!s:>12}")
        score = "diverged" if r["error"] else f"{r['score']:.4f}"
        lines.append(f"{rank:>4} {score:>8} {r['seconds']:>8.1f}  " + "  ".join(cells))
    return "\n".join(lines)


def save_best(results: list[dict], path) -> dict:
    """Write the best configuration and its score as JSON (atomically); return it."""
    best = {"params": results[0]["params"], "score": results[0]["score"],
            "trials": len(results)}
    atomic_write_bytes(path, json.dumps(best, indent=1, default=str).encode())
    return best


def mlp(width: int = 256, depth: int = 2, dropout: float = 0.0, num_classes: int = 10,
        in_features: int = 784):
    """A dense classifier for flattened images: the model ``convnet tune`` searches over."""
    from . import nn

    layers: list = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(in_features if i == 0 else width, width), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width if depth else in_features, num_classes))
    return nn.Sequential(*layers)


DEFAULT_SPACE = {
    "lr": LogUniform(1e-4, 1e-2),
    "batch_size": Choice([64, 128, 256]),
    "width": Choice([64, 128, 256, 512]),
    "optimizer": Choice(["adam", "sgd", "rmsprop"]),
    "dropout": Choice([0.0, 0.2, 0.5]),
}

DEFAULT_GRID = {
    "lr": [3e-4, 1e-3, 3e-3],
    "width": [128, 256],
    "optimizer": ["adam", "sgd"],
}


__all__ = ["Choice", "Uniform", "LogUniform", "IntUniform", "grid_search", "random_search",
           "format_results", "save_best", "mlp", "DEFAULT_SPACE", "DEFAULT_GRID"]
