import threading
import time

import numpy as np
import pytest

import convnet as cn
from convnet.data import ArrayDataset, DataLoader, RandomShift, Subset, random_split


def indexed_dataset(n=103, transform=None):
    """Images whose labels are their own index, so a batch tells which samples it holds."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 6, 5), dtype=np.uint8)
    return ArrayDataset(images, np.arange(n), transform)


def labels_of(loader):
    return [y.numpy().tolist() for _, y in loader]


def test_array_dataset_items_and_batches():
    ds = indexed_dataset()
    x, y = ds[4]
    assert x.shape == (1, 6, 5) and x.dtype == np.float32 and y == 4 and isinstance(y, int)
    np.testing.assert_allclose(x[0], ds.images[4, 0] / 255.0, rtol=1e-6)
    xb, yb = ds.get_batch([3, 1])
    assert xb.shape == (2, 1, 6, 5) and yb.dtype == np.int64 and yb.tolist() == [3, 1]
    assert ds[-1][1] == 102
    with pytest.raises(IndexError):
        ds[103]
    float_ds = ArrayDataset(np.full((2, 3, 4, 4), 2.0), [0, 1])  # floats are not rescaled
    assert float_ds[0][0].shape == (3, 4, 4) and float_ds[0][0].max() == 2.0
    with pytest.raises(ValueError, match="3 images but labels"):
        ArrayDataset(np.zeros((3, 4, 4), np.uint8), [0, 1])


def test_batches_shapes_dtypes_len():
    loader = DataLoader(indexed_dataset(), batch_size=10)
    assert len(loader) == 11
    batches = list(loader)
    assert len(batches) == 11
    for x, y in batches:
        assert isinstance(x, cn.Tensor) and isinstance(y, cn.Tensor)
        assert x.dtype == np.float32 and y.dtype == np.int64
    assert batches[0][0].shape == (10, 1, 6, 5) and batches[-1][0].shape == (3, 1, 6, 5)
    assert sum(labels_of(loader), []) == list(range(103))  # no shuffle: in order


def test_drop_last():
    loader = DataLoader(indexed_dataset(), batch_size=10, drop_last=True)
    assert len(loader) == 10
    sizes = [x.shape[0] for x, _ in loader]
    assert sizes == [10] * 10
    assert len(DataLoader(indexed_dataset(100), batch_size=10, drop_last=True)) == 10


@pytest.mark.parametrize("prefetch", [0, 2])
def test_every_index_once_per_epoch(prefetch):
    loader = DataLoader(indexed_dataset(), batch_size=16, shuffle=True, seed=1,
                        prefetch=prefetch)
    for _ in range(3):
        seen = sum(labels_of(loader), [])
        assert sorted(seen) == list(range(103))


def test_seeded_shuffle_reproducible_and_new_each_epoch():
    a = DataLoader(indexed_dataset(), batch_size=16, shuffle=True, seed=5)
    b = DataLoader(indexed_dataset(), batch_size=16, shuffle=True, seed=5)
    a0, a1 = labels_of(a), labels_of(a)
    assert a0 == labels_of(b) and a1 == labels_of(b)  # epoch by epoch the same
    assert a0 != a1  # a different order every epoch
    assert sum(a0, []) != list(range(103))
    c = DataLoader(indexed_dataset(), batch_size=16, shuffle=True, seed=6)
    assert labels_of(c) != a0
    a.set_epoch(1)
    assert labels_of(a) == a1
    assert a.epoch == 2


def test_epoch_advances_on_iter_not_first_next():
    loader = DataLoader(indexed_dataset(), batch_size=16, shuffle=True, seed=5)
    iter(loader)
    assert loader.epoch == 1


def test_unseeded_shuffle_follows_manual_seed():
    cn.manual_seed(3)
    first = labels_of(DataLoader(indexed_dataset(), batch_size=16, shuffle=True))
    cn.manual_seed(3)
    assert labels_of(DataLoader(indexed_dataset(), batch_size=16, shuffle=True)) == first


def test_augmentation_reproducible_with_seed_and_prefetch_independent():
    def xs(prefetch, seed):
        ds = indexed_dataset(transform=RandomShift(2))
        loader = DataLoader(ds, batch_size=16, shuffle=True, seed=seed, prefetch=prefetch)
        return [x.numpy() for x, _ in loader]

    a, b, c = xs(2, 9), xs(0, 9), xs(2, 10)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not all(u.shape == v.shape and np.array_equal(u, v) for u, v in zip(a, c))


def test_generic_dataset_items_are_stacked():
    class Squares:
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return np.full((2, 3), i, dtype=np.float64), i * i

    x, y = next(iter(DataLoader(Squares(), batch_size=4)))
    assert x.shape == (4, 2, 3) and x.dtype == np.float32 and y.dtype == np.int64
    assert y.numpy().tolist() == [0, 1, 4, 9]
    assert [b[0].shape[0] for b in DataLoader(Squares(), batch_size=4)] == [4, 3]


def test_subset_keeps_batch_path():
    ds = indexed_dataset()
    first, second = random_split(ds, [0.8, 0.2], seed=0)
    assert isinstance(first, Subset) and hasattr(first, "get_batch")
    seen = sum(labels_of(DataLoader(second, batch_size=8)), [])
    assert seen == second.indices.tolist()


def wait_for_thread_count(target, timeout=2.0):
    deadline = time.monotonic() + timeout
    while threading.active_count() > target and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def test_early_break_leaks_no_thread():
    baseline = threading.active_count()
    loader = DataLoader(indexed_dataset(1000), batch_size=8, shuffle=True, seed=0, prefetch=2)
    for k, _ in enumerate(loader):
        assert threading.active_count() == baseline + 1  # the prefetch thread
        if k == 2:
            break
    assert threading.active_count() == baseline  # joined as the loop let go
    it = iter(loader)
    next(it)
    it.close()
    assert threading.active_count() == baseline
    it = iter(loader)
    next(it)
    del it
    assert wait_for_thread_count(baseline) == baseline
    list(loader)  # a full epoch after the interrupted ones
    assert threading.active_count() == baseline


def test_worker_error_reaches_the_consumer():
    class Broken(ArrayDataset):
        def get_batch(self, indices, rng=None):
            if 50 in indices:
                raise RuntimeError("batch failed")
            return super().get_batch(indices, rng)

    baseline = threading.active_count()
    ds = Broken(np.zeros((100, 4, 4), np.uint8), np.zeros(100, np.int64))
    with pytest.raises(RuntimeError, match="batch failed"):
        list(DataLoader(ds, batch_size=10))
    assert threading.active_count() == baseline


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(indexed_dataset(), batch_size=0)
    with pytest.raises(ValueError, match="prefetch"):
        DataLoader(indexed_dataset(), prefetch=-1)
