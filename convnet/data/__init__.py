"""Data: the IDX reader, Fashion-MNIST (found, downloaded or embedded), datasets, a
prefetching DataLoader and batch-wise augmentation transforms.

    from convnet.data import fashion_mnist_loaders
    train, val, test, info = fashion_mnist_loaders(batch_size=128, augment=True, seed=0)
    for x, y in train:          # x: Tensor float32 (B, 1, 28, 28), y: Tensor int64 (B,)
        ...
"""

from __future__ import annotations

from . import transforms
from .dataset import ArrayDataset, Dataset, Subset, random_split, train_val_split
from .fashion import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    download_fashion_mnist,
    fashion_mnist_loaders,
    find_fashion_mnist,
    load_embedded_sample,
    load_fashion_mnist,
)
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
    "FASHION_MNIST_CLASSES", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "find_fashion_mnist",
    "download_fashion_mnist", "load_fashion_mnist", "load_embedded_sample",
    "fashion_mnist_loaders",
]
