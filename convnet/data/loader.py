"""DataLoader: shuffled mini-batches as tensors, prepared ahead on a background thread."""

from __future__ import annotations

import queue
import threading

import numpy as np

from .. import random as _random
from ..tensor import Tensor

__all__ = ["DataLoader"]

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


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
    return x, y


class DataLoader:
    """Iterate over ``dataset`` in mini-batches of ``(x, y)`` :class:`convnet.Tensor` s
    (x float32, y int64 for class labels), like ``torch.utils.data.DataLoader``.

    - ``shuffle``: a new order every epoch. With a ``seed`` the orders (and the random
      augmentation the dataset's transform draws) are reproducible: epoch ``e`` of two
      loaders with the same seed is identical, and each ``iter()`` starts the next epoch
      (``set_epoch`` jumps to one, e.g. when resuming). Without a seed each epoch draws
      from convnet's global generator (``convnet.manual_seed``).
    - ``drop_last``: drop the last, smaller batch.
    - ``prefetch``: how many batches a background thread prepares ahead (NumPy releases
      the GIL while it copies); 0 prepares them in the calling thread. The thread stops
      and is joined when the iteration ends, breaks off or the iterator is dropped.

    Datasets with ``get_batch(indices, rng)`` are read a batch at a time; any other
    dataset with ``__len__``/``__getitem__`` has its items stacked.
    """

    def __init__(self, dataset, batch_size: int = 128, shuffle: bool = False,
                 seed: int | None = None, drop_last: bool = False, prefetch: int = 2):
        if int(batch_size) < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if int(prefetch) < 0:
            raise ValueError(f"DataLoader: prefetch must be >= 0, got {prefetch}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = None if seed is None else int(seed)
        self.drop_last = bool(drop_last)
        self.prefetch = int(prefetch)
        self.epoch = 0  # the epoch the next iter() runs

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` run epoch ``epoch`` (its order and augmentation)."""
        self.epoch = int(epoch)

    def _epoch_plan(self):
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
        batches = [order[k * self.batch_size:(k + 1) * self.batch_size] for k in range(count)]
        return batches, batches_ss.spawn(count)

    def _load(self, indices, seed_seq):
        get_batch = getattr(self.dataset, "get_batch", None)
        if get_batch is not None:
            x, y = get_batch(indices, np.random.default_rng(seed_seq))
        else:
            x, y = _stack_items(self.dataset, indices)
        return _normalise_batch(x, y)

    def __iter__(self):
        batches, seeds = self._epoch_plan()  # now, not at the first next()
        if self.prefetch == 0:
            return self._iter_sync(batches, seeds)
        return self._iter_prefetch(batches, seeds)

    def _iter_sync(self, batches, seeds):
        for idx, ss in zip(batches, seeds):
            x, y = self._load(idx, ss)
            yield Tensor(x), Tensor(y)

    def _iter_prefetch(self, batches, seeds):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def work():
            try:
                for idx, ss in zip(batches, seeds):
                    if stop.is_set() or not put(self._load(idx, ss)):
                        return
                put(_DONE)
            except BaseException as exc:  # handed to the consumer, raised there
                put(_Failure(exc))

        thread = threading.Thread(target=work, name="convnet-DataLoader", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                x, y = item
                yield Tensor(x), Tensor(y)
        finally:
            stop.set()
            thread.join()

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
                f"prefetch={self.prefetch})")
