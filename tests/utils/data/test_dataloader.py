"""DataLoader, samplers, datasets and random_split against torch.utils.data."""

import threading
import time

import numpy as np
import pytest

import convnet as cn
from convnet.utils import data as cdata


def as_lists(batches):
    """Batches (nested tensors) as plain Python lists, for either library."""
    def conv(v):
        if hasattr(v, "tolist"):
            return v.tolist()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v
    return [conv(b) for b in batches]


class DictItems:
    """A map-style dataset of dicts with three fields (the case that used to break)."""

    def __init__(self, n=11):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((2,), i, np.float32), "y": i, "w": float(i) / 2}


def both(fn):
    torch = pytest.importorskip("torch")
    return fn(cn, cdata), fn(torch, torch.utils.data)


@pytest.mark.parametrize("kw", [dict(), dict(batch_size=4), dict(batch_size=4, drop_last=True),
                                dict(batch_size=None), dict(batch_size=3, drop_last=False)])
def test_sequential_batches_match_torch(kw):
    def run(lib, data):
        x = lib.tensor(np.arange(30, dtype=np.float32).reshape(10, 3))
        y = lib.tensor(np.arange(10))
        loader = data.DataLoader(data.TensorDataset(x, y), **kw)
        return len(loader), as_lists(loader)

    assert both(run)[0] == both(run)[1]


def test_dict_items_and_len_match_torch():
    def run(lib, data):
        loader = data.DataLoader(DictItems(), batch_size=4)
        return len(loader), as_lists(loader)

    ours, theirs = both(run)
    assert ours == theirs
    batch = next(iter(cdata.DataLoader(DictItems(), batch_size=4)))
    assert batch["x"].dtype == np.float32 and batch["y"].dtype == np.int64
    assert batch["w"].dtype == np.float64


def test_batch_size_validation_matches_torch():
    torch = pytest.importorskip("torch")
    ds = DictItems()
    for bad in (2.7, 0, -1, "4", True):
        with pytest.raises(ValueError):
            torch.utils.data.DataLoader(ds, batch_size=bad)
        with pytest.raises(ValueError, match="batch_size"):
            cdata.DataLoader(ds, batch_size=bad)


@pytest.mark.parametrize("kw", [
    dict(sampler=[0, 1], shuffle=True),
    dict(batch_sampler=[[0, 1]], batch_size=2),
    dict(batch_sampler=[[0, 1]], drop_last=True),
    dict(batch_sampler=[[0, 1]], shuffle=True),
    dict(batch_size=None, drop_last=True),
    dict(num_workers=-1),
    dict(prefetch_factor=2),
    dict(persistent_workers=True),
])
def test_option_conflicts_raise_value_error_like_torch(kw):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.utils.data.DataLoader(DictItems(), **kw)
    with pytest.raises(ValueError):
        cdata.DataLoader(DictItems(), **kw)


def test_batch_sampler_and_sampler_options():
    def run(lib, data):
        ds = data.TensorDataset(lib.tensor(np.arange(10)))
        a = as_lists(data.DataLoader(ds, batch_sampler=[[3, 1], [0, 9, 2]]))
        b = as_lists(data.DataLoader(ds, sampler=[9, 8, 7], batch_size=2))
        bs = data.BatchSampler(data.SequentialSampler(range(7)), 3, drop_last=False)
        c = (list(bs), len(bs), len(data.BatchSampler(range(7), 3, True)))
        return a, b, c

    ours, theirs = both(run)
    assert ours == theirs


def test_shuffle_is_a_permutation_reproducible_with_generator_and_manual_seed():
    ds = cdata.TensorDataset(cn.tensor(np.arange(50)))

    def order(**kw):
        return sum((b[0].tolist() for b in cdata.DataLoader(ds, batch_size=7, shuffle=True,
                                                               **kw)), [])

    first = order(generator=np.random.default_rng(3))
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert order(generator=np.random.default_rng(3)) == first
    gen = np.random.default_rng(3)
    loader = cdata.DataLoader(ds, batch_size=50, shuffle=True, generator=gen)
    e1, e2 = (next(iter(loader))[0].tolist() for _ in range(2))
    assert e1 != e2  # one generator: a new order each epoch
    cn.manual_seed(11)
    a = order()
    cn.manual_seed(11)
    assert order() == a


def test_random_sampler_replacement_and_num_samples():
    s = cdata.RandomSampler(range(5), replacement=True, num_samples=40, generator=0)
    draws = list(s)
    assert len(draws) == 40 == len(s) and set(draws) <= set(range(5)) and len(set(draws)) > 1
    s = cdata.RandomSampler(range(5), num_samples=12, generator=1)
    draws = list(s)
    assert len(draws) == 12 and sorted(draws[:5]) == list(range(5))
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.utils.data.RandomSampler(range(5), num_samples=0)
    with pytest.raises(ValueError, match="num_samples"):
        cdata.RandomSampler(range(5), num_samples=0)


def test_random_split_and_subset():
    ds = cdata.TensorDataset(cn.tensor(np.arange(10)))
    parts = cdata.random_split(ds, [0.5, 0.3, 0.2], generator=np.random.default_rng(0))
    assert [len(p) for p in parts] == [5, 3, 2]
    seen = sorted(int(p[i][0].item()) for p in parts for i in range(len(p)))
    assert seen == list(range(10))
    assert all(isinstance(p, cdata.Subset) for p in parts)
    again = cdata.random_split(ds, [5, 3, 2], generator=np.random.default_rng(0))
    assert [p.indices for p in again] == [p.indices for p in parts]
    torch = pytest.importorskip("torch")
    # PyTorch's rounding of fractions: the remainder goes round-robin
    tparts = torch.utils.data.random_split(range(7), [0.5, 0.25, 0.25])
    assert [len(p) for p in cdata.random_split(range(7), [0.5, 0.25, 0.25])] == \
        [len(p) for p in tparts]
    with pytest.raises(ValueError):
        torch.utils.data.random_split(range(7), [3, 3])
    with pytest.raises(ValueError, match="sum of input lengths"):
        cdata.random_split(range(7), [3, 3])
    sub = cdata.Subset(DictItems(), [4, 2])
    assert as_lists(cdata.DataLoader(sub, batch_size=2))[0]["y"] == [4, 2]


def test_concat_dataset():
    ds = cdata.TensorDataset(cn.tensor(np.arange(3))) + cdata.TensorDataset(
        cn.tensor(np.arange(10, 14)))
    assert len(ds) == 7 and [int(ds[i][0].item()) for i in (0, 2, 3, 6, -1)] == \
        [0, 2, 10, 13, 13]


class Stream(cdata.IterableDataset):
    """0..n-1, split between the workers by get_worker_info (PyTorch's recipe)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = cdata.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))


def test_iterable_dataset_batches_like_torch():
    torch = pytest.importorskip("torch")

    class TStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(11))

    for kw in (dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=None)):
        ours = as_lists(cdata.DataLoader(Stream(11), **kw))
        theirs = as_lists(torch.utils.data.DataLoader(TStream(), **kw))
        assert ours == theirs
    with pytest.raises(ValueError, match="shuffle"):
        cdata.DataLoader(Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="sampler"):
        cdata.DataLoader(Stream(3), sampler=[0])


def test_iterable_dataset_sharded_over_workers():
    batches = as_lists(cdata.DataLoader(Stream(20), batch_size=3, num_workers=2))
    items = sorted(sum(batches, []))
    assert items == list(range(20))  # each item once: the workers shared the stream
    # round-robin: worker 0 gives even numbers, worker 1 odd ones, alternately
    assert batches[0] == [0, 2, 4] and batches[1] == [1, 3, 5]


class Sleepy(cdata.Dataset):
    """Slow items that record which thread fetched them."""

    def __init__(self, n=24):
        self.n = n
        self.fetched_by = {}

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(0.01)  # I/O-like wait: releases the GIL
        info = cdata.get_worker_info()
        self.fetched_by[i] = (threading.get_ident(), info.id if info else None)
        return np.float32(i), i


def test_workers_fetch_in_parallel_and_keep_order():
    ds = Sleepy()
    started = []
    loader = cdata.DataLoader(ds, batch_size=2, num_workers=3,
                              worker_init_fn=lambda wid: started.append(wid))
    batches = as_lists(loader)
    assert [b[1] for b in batches] == [[2 * k, 2 * k + 1] for k in range(12)]  # in order
    main = threading.get_ident()
    threads = {t for t, _ in ds.fetched_by.values()}
    workers = {w for _, w in ds.fetched_by.values()}
    assert main not in threads and len(threads) == 3 and workers == {0, 1, 2}
    assert sorted(started) == [0, 1, 2]
    # batch k went to worker k % 3, as in PyTorch
    assert all(ds.fetched_by[2 * k][1] == k % 3 for k in range(12))


def test_workers_overlap_slow_items():
    """More than one fetch is in flight at once (counted, not timed): each fetch waits
    until a second one has started, which only parallel workers can satisfy."""
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    two_in_flight = threading.Event()

    class Counting(cdata.Dataset):
        def __init__(self, wait):
            self.wait = wait

        def __len__(self):
            return 16

        def __getitem__(self, i):
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
                if state["now"] >= 2:
                    two_in_flight.set()
            if self.wait:
                two_in_flight.wait(timeout=30)
            time.sleep(0.001)
            with lock:
                state["now"] -= 1
            return i

    out = as_lists(cdata.DataLoader(Counting(wait=True), batch_size=1, num_workers=4))
    assert out == [[i] for i in range(16)]
    assert two_in_flight.is_set() and state["peak"] > 1
    state["peak"] = 0
    as_lists(cdata.DataLoader(Counting(wait=False), batch_size=1))
    assert state["peak"] == 1  # num_workers=0 fetches in the calling thread, one at a time


def test_worker_seeds_and_errors():
    seeds = []

    class Seeds(cdata.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            seeds.append(cdata.get_worker_info().seed)
            if i == 3:
                raise KeyError("boom")
            return i

    with pytest.raises(KeyError, match="boom"):
        list(cdata.DataLoader(Seeds(), num_workers=2, generator=np.random.default_rng(0)))
    assert len(set(seeds)) == 2  # base seed + worker id
    assert cdata.get_worker_info() is None


def test_workers_stop_when_the_loop_breaks():
    baseline = threading.active_count()
    loader = cdata.DataLoader(Sleepy(40), batch_size=2, num_workers=3)
    for k, _ in enumerate(loader):
        assert threading.active_count() == baseline + 3
        if k == 1:
            break
    assert threading.active_count() == baseline


def test_pin_memory_and_custom_collate_fn():
    loader = cdata.DataLoader(DictItems(4), batch_size=2, pin_memory=True,
                              collate_fn=lambda items: [it["y"] for it in items])
    assert list(loader) == [[0, 1], [2, 3]]


def test_getitems_batch_path_used():
    class Batched(cdata.Dataset):
        calls = 0

        def __len__(self):
            return 5

        def __getitem__(self, i):
            raise AssertionError("the batch path should be used")

        def __getitems__(self, idx):
            Batched.calls += 1
            return [i * 10 for i in idx]

    assert as_lists(cdata.DataLoader(Batched(), batch_size=3)) == [[0, 10, 20], [30, 40]]
    assert Batched.calls == 2


def test_public_import_paths():
    import convnet.utils.data as d

    assert cn.utils.data is d and d.DataLoader is cdata.DataLoader
    from convnet.data import DataLoader as Legacy

    assert issubclass(Legacy, d.DataLoader)


def test_weighted_and_subset_random_samplers():
    s = cdata.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], num_samples=200, generator=0)
    draws = list(s)
    assert len(draws) == 200 == len(s) and set(draws) == {1, 3}
    assert 0.6 < draws.count(3) / 200 < 0.9
    no_repeat = list(cdata.WeightedRandomSampler([1, 1, 1], 3, replacement=False, generator=1))
    assert sorted(no_repeat) == [0, 1, 2]
    sub = list(cdata.SubsetRandomSampler([5, 7, 9], generator=2))
    assert sorted(sub) == [5, 7, 9]
    with pytest.raises(ValueError, match="without replacement"):
        cdata.WeightedRandomSampler([1, 1], 3, replacement=False)
    with pytest.raises(TypeError, match="generator"):
        list(cdata.RandomSampler(range(3), generator="seed"))
