"""Datasets with ``torch.utils.data``'s names: map-style and iterable datasets, tensor
datasets, subsets, concatenation and random splits."""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Sequence

import numpy as np

from ._random import rng_from

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "Subset",
           "random_split"]


class Dataset:
    """A map-style dataset: ``__getitem__`` (and usually ``__len__``), like
    ``torch.utils.data.Dataset``. A dataset may also define ``__getitems__(indices)``
    returning the list of items, which the DataLoader then calls once per batch."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples (``__iter__``). With ``num_workers > 0`` every worker iterates
    its own copy; ``get_worker_info()`` inside ``__iter__`` tells a worker which share is
    its own."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} does not define __iter__")

    def __add__(self, other):
        raise TypeError("IterableDataset: concatenation is not supported")


class TensorDataset(Dataset):
    """Samples are the rows of the given tensors (all with one first dimension)."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        n = tensors[0].shape[0] if len(tensors[0].shape) else None
        if any(len(t.shape) == 0 or t.shape[0] != n for t in tensors):
            raise ValueError("TensorDataset: size mismatch between tensors, got first "
                             f"dimensions {[tuple(t.shape)[:1] for t in tensors]}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class ConcatDataset(Dataset):
    """The datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset: does not support IterableDataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index):
        index = int(index)
        if index < 0:
            if -index > len(self):
                raise ValueError("ConcatDataset: absolute value of index should not exceed "
                                 "dataset length")
            index += len(self)
        k = bisect.bisect_right(self.cumulative_sizes, index)
        start = 0 if k == 0 else int(self.cumulative_sizes[k - 1])
        return self.datasets[k][index - start]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices`` (a sequence of ints)."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices):
        # keeps the wrapped dataset's batch path when it has one
        inner = [self.indices[i] for i in indices]
        getitems = getattr(self.dataset, "__getitems__", None)
        if callable(getitems):
            return getitems(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self) -> int:
        return len(self.indices)


def _split_lengths(n: int, lengths) -> list[int]:
    """Part sizes for ``n`` samples: ints (checked) or fractions (the remainder of the
    rounding handed out round-robin, as PyTorch does)."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths must not be empty")
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ValueError(f"random_split: fraction at index {i} is not in [0, 1], "
                                 f"got {frac}")
        counts = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(counts)):  # the remainder round-robin, as PyTorch does
            counts[i % len(counts)] += 1
        return counts
    if not all(isinstance(v, numbers.Integral) and v >= 0 for v in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints, or fractions "
                         f"that sum to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError("random_split: sum of input lengths does not equal the length of "
                         f"the input dataset ({sum(lengths)} != {n})")
    return [int(v) for v in lengths]


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s of the given
    ``lengths`` (ints summing to ``len(dataset)``, or fractions summing to 1).

    ``generator``: a ``numpy.random.Generator`` (or an int seed) for a reproducible split;
    by default the draw follows ``convnet.manual_seed``.
    """
    n = len(dataset)
    counts = _split_lengths(n, lengths)
    perm = rng_from(generator).permutation(n).tolist()
    parts, start = [], 0
    for count in counts:
        parts.append(Subset(dataset, perm[start:start + count]))
        start += count
    return parts
