"""Data: the IDX reader and batch-wise augmentation transforms."""

from __future__ import annotations

from . import transforms
from .idx import read_idx, write_idx
from .transforms import (
    Compose,
    GaussianNoise,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomShift,
)

__all__ = [
    "read_idx", "write_idx", "transforms", "Compose", "Normalize", "RandomShift",
    "RandomCrop", "RandomHorizontalFlip", "RandomRotation", "GaussianNoise",
]
