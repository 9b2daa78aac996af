"""DataLoader with ``torch.utils.data.DataLoader``'s signature, defaults and errors.

Workers are threads: each runs ``worker_init_fn(worker_id)`` once, then fetches the
batches given to it round-robin (batch k goes to worker k % num_workers, as in PyTorch),
up to ``prefetch_factor`` batches ahead per worker, and the batches come out in order.
Threads share the dataset without pickling it; a ``__getitem__`` that waits on files,
sleeps or runs NumPy/convnet kernels (which release the GIL) overlaps across workers.
The threads stop and are joined when the iteration ends, breaks off or is dropped.
"""

from __future__ import annotations

import itertools
import numbers
import queue
import threading
from dataclasses import dataclass

from ._collate import default_collate, default_convert
from ._random import seed_from
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "get_worker_info", "WorkerInfo"]

_local = threading.local()
_EXHAUSTED = object()  # a worker's answer: its share of an iterable dataset has ended
_STREAM = object()  # a task for an iterable dataset: the worker's next batch


@dataclass(frozen=True)
class WorkerInfo:
    """What :func:`get_worker_info` returns inside a worker."""

    id: int
    num_workers: int
    seed: int
    dataset: object


def get_worker_info() -> WorkerInfo | None:
    """The calling worker's :class:`WorkerInfo`, or None in the main thread."""
    return getattr(_local, "info", None)


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class _InfiniteConstantSampler(Sampler):
    """The placeholder sampler of iterable datasets: the stream decides the items."""

    def __iter__(self):
        while True:
            yield None


class DataLoader:
    """Batches from ``dataset``, like ``torch.utils.data.DataLoader``.

    ``batch_size=None`` turns batching off (each item converted by ``default_convert``);
    ``pin_memory`` is accepted and has no effect (arrays are already host memory on the
    CPU); ``generator`` (a ``numpy.random.Generator`` or an int seed) drives the
    shuffling and the workers' seeds, otherwise ``convnet.manual_seed`` does.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0, collate_fn=None,
                 pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
                 worker_init_fn=None, multiprocessing_context=None, generator=None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True):
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 "
                             f"to disable multiprocessing, got num_workers={num_workers!r}")
        if timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in "
                             "multiprocessing. let num_workers > 0 to enable multiprocessing")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError(f"prefetch_factor option should be non-negative, got "
                             f"{prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")

        if isinstance(dataset, IterableDataset):
            if shuffle not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"shuffle option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"sampler option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            if isinstance(dataset, IterableDataset):
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)  # checks batch_size

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = int(num_workers)
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)  # TypeError when the stream has no length, as in PyTorch
            if self.batch_size is not None:
                return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)

    # ------------------------------------------------------------------ fetching
    def _fetch(self, index):
        """One batch (a list of indices) or, without batching, one item."""
        if not self._auto_collation:
            return self.collate_fn(self.dataset[index])
        getitems = getattr(self.dataset, "__getitems__", None)
        data = getitems(index) if callable(getitems) else [self.dataset[i] for i in index]
        return self.collate_fn(data)

    def _next_from_stream(self, it):
        """The next batch (or item) of an iterable dataset; StopIteration at its end."""
        if not self._auto_collation:
            return self.collate_fn(next(it))
        data = list(itertools.islice(it, self.batch_size))
        if not data or (self.drop_last and len(data) < self.batch_size):
            raise StopIteration
        return self.collate_fn(data)

    # ------------------------------------------------------------------ iteration
    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            return self._iterate(None)
        return self._iterate(iter(self._index_sampler))

    def _iterate(self, tasks):
        """Batches for ``tasks`` (an iterator of indices or index lists; None for an
        iterable dataset), in the calling thread or on the worker threads."""
        if self.num_workers == 0:
            return self._iter_single(tasks)
        return self._iter_workers(tasks, self._base_seed())

    def _base_seed(self) -> int:
        """The workers' seeds are this plus their id (drawn only when there are workers,
        so num_workers does not change what the global generator draws next)."""
        return seed_from(self.generator)

    def _iter_single(self, tasks):
        if tasks is None:
            it = iter(self.dataset)
            while True:
                try:
                    batch = self._next_from_stream(it)
                except StopIteration:
                    return
                yield batch
        for index in tasks:
            yield self._fetch(index)

    def _work(self, wid, base_seed, inbox, outbox):
        _local.info = WorkerInfo(wid, self.num_workers, base_seed + wid, self.dataset)
        init_error = None
        if self.worker_init_fn is not None:
            try:
                self.worker_init_fn(wid)
            except BaseException as exc:  # reported with the worker's first batch
                init_error = exc
        stream = None
        while (task := inbox.get()) is not None:
            k, index = task
            try:
                if init_error is not None:
                    raise init_error
                if index is _STREAM:
                    stream = iter(self.dataset) if stream is None else stream
                    result = self._next_from_stream(stream)
                else:
                    result = self._fetch(index)
            except StopIteration:
                result = _EXHAUSTED
            except BaseException as exc:  # handed to the consumer, raised there
                result = _Failure(exc)
            outbox.put((k, result))

    def _iter_workers(self, tasks, base_seed):
        n = self.num_workers
        inboxes = [queue.Queue() for _ in range(n)]
        outbox: queue.Queue = queue.Queue()
        threads = [threading.Thread(target=self._work, args=(w, base_seed, inboxes[w], outbox),
                                    name=f"convnet-DataLoader-worker-{w}", daemon=True)
                   for w in range(n)]
        active = list(range(n))  # workers whose stream is not exhausted
        owner: dict[int, int] = {}
        ready: dict[int, object] = {}
        sent = 0
        turn = itertools.count()

        def send() -> bool:
            nonlocal sent
            if not active:
                return False
            if tasks is None:
                index = _STREAM
            else:
                index = next(tasks, _STREAM)
                if index is _STREAM:  # the sampler is done
                    return False
            w = active[next(turn) % len(active)]
            inboxes[w].put((sent, index))
            owner[sent] = w
            sent += 1
            return True

        for t in threads:
            t.start()
        try:
            for _ in range(max(1, self.prefetch_factor) * n):
                if not send():
                    break
            done = 0
            while done < sent:
                while done not in ready:
                    try:
                        k, result = outbox.get(timeout=self.timeout or None)
                    except queue.Empty:
                        raise RuntimeError(f"DataLoader timed out after {self.timeout} "
                                           "seconds") from None
                    ready[k] = result
                result = ready.pop(done)
                w = owner.pop(done)
                done += 1
                if result is _EXHAUSTED:
                    if w in active:
                        active.remove(w)
                    send()
                    continue
                if isinstance(result, _Failure):
                    raise result.exc
                send()
                yield result
        finally:
            for box in inboxes:
                box.put(None)
            for t in threads:
                t.join()

    def __repr__(self) -> str:
        return (f"DataLoader(dataset={type(self.dataset).__name__}, batch_size="
                f"{self.batch_size}, num_workers={self.num_workers})")
