"""Data: the IDX reader, datasets, a prefetching DataLoader and batch-wise augmentation
transforms."""

from __future__ import annotations

from . import transforms
from .dataset import ArrayDataset, Dataset, Subset, random_split, train_val_split
from .idx import read_idx, write_idx
from .loader import DataLoader
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
    "read_idx", "write_idx", "Dataset", "ArrayDataset", "Subset", "random_split",
    "train_val_split", "DataLoader", "transforms", "Compose", "Normalize", "RandomShift",
    "RandomCrop", "RandomHorizontalFlip", "RandomRotation", "GaussianNoise",
]
