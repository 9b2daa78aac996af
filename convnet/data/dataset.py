"""Datasets: an indexable collection of ``(x, y)`` samples, with a batch path for speed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..utils import data as _data
from .transforms import apply_transform

__all__ = ["Dataset", "ArrayDataset", "Subset", "random_split", "train_val_split"]


class Dataset(_data.Dataset):
    """Base class, :class:`convnet.utils.data.Dataset`: ``__len__`` and ``__getitem__``.

    A dataset may also define ``get_batch(indices, rng=None) -> (x, y)`` returning whole
    NumPy batches; :class:`~convnet.data.DataLoader` uses it when present and otherwise
    stacks single items.
    """

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index):
        raise NotImplementedError


def _label_array(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype.kind in "iub":
        return y.astype(np.int64, copy=False)
    if y.dtype.kind == "f":
        return y.astype(np.float32, copy=False)
    raise TypeError(f"labels: expected integer or float values, got dtype {y.dtype}")


class ArrayDataset(Dataset):
    """Images and labels held in memory as NumPy arrays.

    ``images`` is (N, H, W) or (N, C, H, W), uint8 or floating; samples come out as
    float32 (C, H, W), uint8 ones scaled to [0, 1]. ``labels`` is (N,) (or (N, ...)):
    integer labels come out as int64, floating ones (regression targets) as float32.
    ``transform`` is a batch transform (see :mod:`convnet.data.transforms`) applied to
    every sample or batch, after the scaling to float.
    """

    def __init__(self, images, labels, transform: Callable | None = None):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise ValueError(f"ArrayDataset: images must be (N, H, W) or (N, C, H, W), got "
                             f"shape {images.shape}")
        if not (images.dtype == np.uint8 or images.dtype.kind == "f"):
            raise TypeError(f"ArrayDataset: images must be uint8 or floating, got "
                            f"{images.dtype}")
        labels = _label_array(labels)
        if labels.ndim == 0 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"ArrayDataset: {images.shape[0]} images but labels of shape "
                             f"{labels.shape}")
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def _to_float(self, x: np.ndarray) -> np.ndarray:
        out = x.astype(np.float32)  # a copy: transforms may not touch the dataset
        if x.dtype == np.uint8:
            out *= np.float32(1.0 / 255.0)  # in place: one pass less over the batch
        return out

    def get_batch(self, indices, rng: np.random.Generator | None = None):
        """``(x float32 (B, C, H, W), y (B,))`` for ``indices``, the transform applied
        to the whole batch at once (random ones drawing from ``rng``)."""
        indices = np.asarray(indices, dtype=np.intp)
        x = apply_transform(self.transform, self._to_float(self.images[indices]), rng)
        return x, self.labels[indices]

    def __getitem__(self, index):
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"ArrayDataset: index {index} out of range for {n} samples")
        x, y = self.get_batch([i % n])
        label = y[0]
        return x[0], (label.item() if label.ndim == 0 else label)

    def __repr__(self) -> str:
        return (f"ArrayDataset({len(self)} samples, images {self.images.shape[1:]} "
                f"{self.images.dtype}, transform={self.transform!r})")


class Subset(_data.Subset, Dataset):
    """The samples of ``dataset`` at ``indices`` (keeps the batch path when it has one)."""

    def __init__(self, dataset, indices):
        super().__init__(dataset, np.asarray(indices, dtype=np.intp))
        n = len(dataset)
        if self.indices.ndim != 1 or (self.indices.size and (
                self.indices.min() < 0 or self.indices.max() >= n)):
            raise ValueError(f"Subset: indices must be a 1-D array in [0, {n})")

    def __len__(self) -> int:
        return self.indices.shape[0]

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __getattr__(self, name):
        if name == "get_batch" and hasattr(self.dataset, "get_batch"):
            def get_batch(indices, rng=None):
                return self.dataset.get_batch(self.indices[np.asarray(indices, np.intp)], rng)
            return get_batch
        raise AttributeError(name)


def random_split(data, lengths: Sequence[float], seed: int = 0):
    """Split at random into parts of the given ``lengths`` (ints summing to the size, or
    fractions summing to 1), reproducibly for a ``seed``, like ``torch.utils.data.
    random_split``.

    ``data`` is a dataset (the parts are :class:`Subset` s), one array, or a tuple/list of
    arrays with the same first dimension (the parts are tuples of arrays).
    """
    if isinstance(data, (tuple, list)):
        arrays = [np.asarray(a) for a in data]
        n = arrays[0].shape[0] if arrays else 0
        if not arrays or any(a.ndim == 0 or a.shape[0] != n for a in arrays):
            raise ValueError("random_split: the arrays must share their first dimension, got "
                             f"shapes {[a.shape for a in arrays]}")
    elif isinstance(data, np.ndarray):
        n = data.shape[0]
    else:
        n = len(data)
    perm = np.random.default_rng(seed).permutation(n)
    parts, start = [], 0
    for count in _data.dataset._split_lengths(n, lengths):
        idx = perm[start:start + count]
        start += count
        if isinstance(data, (tuple, list)):
            parts.append(tuple(a[idx] for a in arrays))
        elif isinstance(data, np.ndarray):
            parts.append(data[idx])
        else:
            parts.append(Subset(data, idx))
    return parts


def stratified_indices(labels, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(keep, held_out)``: ``fraction`` of every class held out at random (the
    per-class counts rounded), both sorted, reproducible for a ``seed``."""
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        k = int(round(fraction * members.size))
        held.append(rng.permutation(members)[:k])
    held = np.sort(np.concatenate(held)) if held else np.zeros(0, np.intp)
    mask = np.ones(labels.shape[0], dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def train_val_split(images, labels, val_fraction: float = 0.1, seed: int = 0,
                    stratify: bool = True):
    """Carve a validation set out of training data: ``((x_train, y_train), (x_val,
    y_val))``. With ``stratify`` (integer labels) every class gives ``val_fraction`` of its
    samples; otherwise the split is a plain random one. Reproducible for a ``seed``; the
    samples keep their original order within each part."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"train_val_split: {images.shape[0]} images but {labels.shape[0]} "
                         "labels")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in [0, 1), got {val_fraction}")
    n = images.shape[0]
    if stratify and labels.ndim == 1 and labels.dtype.kind in "iub":
        train_idx, val_idx = stratified_indices(labels, val_fraction, seed)
    else:
        perm = np.random.default_rng(seed).permutation(n)
        k = int(round(val_fraction * n))
        val_idx, train_idx = np.sort(perm[:k]), np.sort(perm[k:])
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])
