"""convnet's own DataLoader: seeded, reproducible epochs of ``(x, y)`` tensor batches,
built on :class:`convnet.utils.data.DataLoader` (its batching, worker thread and
prefetching), with the batch path of datasets that define ``get_batch``."""

from __future__ import annotations

import numpy as np

from .. import random as _random
from ..tensor import Tensor
from ..utils import data as _data

__all__ = ["DataLoader"]


def _as_array(v):
    return np.asarray(v._data if isinstance(v, Tensor) else v)


def _stack_items(dataset, indices):
    """The batch path for datasets with only ``__getitem__``: stack the items."""
    xs, ys = [], []
    for i in indices:
        x, y = dataset[int(i)]
        xs.append(_as_array(x))
        ys.append(_as_array(y))
    return np.stack(xs), np.stack(ys)


def _normalise_batch(x, y):
    x, y = _as_array(x), _as_array(y)
    if x.dtype.kind == "f" and x.dtype != np.float32:
        x = x.astype(np.float32)
    if y.dtype.kind in "iub":
        y = y.astype(np.int64, copy=False)
    elif y.dtype.kind == "f" and y.dtype != np.float32:
        y = y.astype(np.float32)
    return Tensor(x), Tensor(y)


class _SeededBatch:
    """A batch's indices with the seed its random augmentation draws from."""

    __slots__ = ("indices", "seed_seq")

    def __init__(self, indices, seed_seq):
        self.indices, self.seed_seq = indices, seed_seq


class DataLoader(_data.DataLoader):
    """Iterate over ``dataset`` in mini-batches of ``(x, y)`` :class:`convnet.Tensor` s
    (x float32, y int64 for class labels).

    - ``shuffle``: a new order every epoch. With a ``seed`` the orders (and the random
      augmentation the dataset's transform draws) are reproducible: epoch ``e`` of two
      loaders with the same seed is identical, and each ``iter()`` starts the next epoch
      (``set_epoch`` jumps to one, e.g. when resuming). Without a seed each epoch draws
      from convnet's global generator (``convnet.manual_seed``).
    - ``drop_last``: drop the last, smaller batch.
    - ``prefetch``: how many batches one worker thread prepares ahead (NumPy releases
      the GIL while it copies); 0 prepares them in the calling thread. The thread stops
      and is joined when the iteration ends, breaks off or the iterator is dropped.

    Datasets with ``get_batch(indices, rng)`` are read a batch at a time; any other
    dataset with ``__len__``/``__getitem__`` has its items stacked. For PyTorch's
    signature and collation use :class:`convnet.utils.data.DataLoader`.
    """

    def __init__(self, dataset, batch_size: int = 128, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False, prefetch: int = 2):
        if int(prefetch) < 0:
            raise ValueError(f"DataLoader: prefetch must be >= 0, got {prefetch}")
        prefetch = int(prefetch)
        super().__init__(dataset, batch_size=batch_size, shuffle=False,
                         drop_last=bool(drop_last), num_workers=1 if prefetch else 0,
                         prefetch_factor=prefetch or None, collate_fn=None)
        self.shuffle = bool(shuffle)
        self.seed = None if seed is None else int(seed)
        self.prefetch = prefetch
        self.epoch = 0  # the epoch the next iter() runs

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` run epoch ``epoch`` (its order and augmentation)."""
        self.epoch = int(epoch)

    def _epoch_plan(self) -> list[_SeededBatch]:
        """The batches' indices and one seed sequence per batch for the next epoch."""
        epoch = self.epoch
        self.epoch += 1
        if self.seed is not None:
            entropy = self.seed
        else:
            entropy = int(_random.generator().integers(0, 2**63))
        ss = np.random.SeedSequence(entropy, spawn_key=(epoch,))
        order_ss, batches_ss = ss.spawn(2)
        n = len(self.dataset)
        order = (np.random.default_rng(order_ss).permutation(n) if self.shuffle
                 else np.arange(n))
        count = len(self)
        bs = self.batch_size
        return [_SeededBatch(order[k * bs:(k + 1) * bs], s)
                for k, s in enumerate(batches_ss.spawn(count))]

    def _fetch(self, batch: _SeededBatch):
        get_batch = getattr(self.dataset, "get_batch", None)
        if get_batch is not None:
            x, y = get_batch(batch.indices, np.random.default_rng(batch.seed_seq))
        else:
            x, y = _stack_items(self.dataset, batch.indices)
        return _normalise_batch(x, y)

    def _base_seed(self) -> int:
        return 0  # the batches carry their own seeds; the worker's is not used

    def __iter__(self):
        # the epoch's plan is drawn now, not at the first next()
        return self._iterate(iter(self._epoch_plan()))

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
                f"prefetch={self.prefetch})")
