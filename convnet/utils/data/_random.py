"""The random source of samplers and splits: a ``generator`` argument or convnet's seed."""

from __future__ import annotations

import numbers

import numpy as np

from ... import random as _random


def rng_from(generator) -> np.random.Generator:
    """``generator`` as a NumPy Generator: one given is used as is (so successive draws
    differ), an int seeds a new one, None draws a seed from convnet's global generator
    (so ``convnet.manual_seed`` makes the draw reproducible)."""
    if generator is None:
        return np.random.default_rng(int(_random.generator().integers(0, 2**63)))
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    inner = getattr(generator, "_rng", None)  # a convnet.Generator wraps a NumPy one
    if isinstance(inner, np.random.Generator):
        return inner
    raise TypeError(f"generator: expected a numpy.random.Generator or an int seed, got "
                    f"{type(generator).__name__}")


def seed_from(generator) -> int:
    """A 63-bit seed drawn from ``generator`` (see :func:`rng_from`)."""
    return int(rng_from(generator).integers(0, 2**63))
