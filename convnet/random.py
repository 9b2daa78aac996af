"""Random numbers for convnet: one seeded generator per device, like torch.manual_seed."""

from __future__ import annotations

import numpy as np

_cpu = np.random.default_rng()
_seed: int | None = None


def manual_seed(seed: int) -> None:
    """Seed every random draw convnet makes (initialisation, dropout, shuffling)."""
    global _cpu, _seed
    _seed = int(seed)
    _cpu = np.random.default_rng(_seed)
    try:
        import cupy

        cupy.random.seed(_seed)
    except Exception:  # no CuPy or no device: nothing to seed there
        pass


def generator() -> np.random.Generator:
    return _cpu


def rand_like(a):
    """Uniform [0, 1) values with the shape of ``a`` on its device (float64 on the CPU)."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy.random.random_sample(a.shape)
    return _cpu.random(a.shape)


def randn(shape, dtype=np.float32):
    return _cpu.standard_normal(shape).astype(dtype)


def uniform(low, high, shape, dtype=np.float32):
    return _cpu.uniform(low, high, shape).astype(dtype)


class Generator:
    """PyTorch's ``torch.Generator`` for the CPU: a seedable random source of its own,
    accepted as ``generator=`` by ``random_split``, ``DataLoader`` and the samplers.
    ``manual_seed`` returns the generator, so ``Generator().manual_seed(42)`` chains."""

    def __init__(self, device="cpu"):
        if str(device) != "cpu":
            raise ValueError(f"Generator: only device 'cpu' is supported, got {device!r}")
        self.device = "cpu"
        self._initial = int(np.random.SeedSequence().entropy % 2**63)
        self._rng = np.random.default_rng(self._initial)

    def manual_seed(self, seed) -> Generator:
        import numbers

        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise TypeError(f"manual_seed: expected an int, got {type(seed).__name__}")
        self._initial = int(seed)
        self._rng = np.random.default_rng(self._initial)
        return self

    def seed(self) -> int:
        """Reseed from fresh entropy and return the new seed."""
        self._initial = int(np.random.SeedSequence().entropy % 2**63)
        self._rng = np.random.default_rng(self._initial)
        return self._initial

    def initial_seed(self) -> int:
        return self._initial
