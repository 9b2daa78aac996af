import numpy as np
import pytest

from convnet.data import random_split, train_val_split


def test_random_split_lengths_and_fractions():
    x = np.arange(50)
    a, b, c = random_split(x, [20, 20, 10], seed=1)
    assert (len(a), len(b), len(c)) == (20, 20, 10)
    assert sorted(np.concatenate([a, b, c]).tolist()) == list(range(50))
    again = random_split(x, [20, 20, 10], seed=1)
    assert all(np.array_equal(u, v) for u, v in zip((a, b, c), again))
    assert not np.array_equal(random_split(x, [20, 20, 10], seed=2)[0], a)
    parts = random_split(np.arange(11), [0.5, 0.3, 0.2], seed=0)
    assert [len(p) for p in parts] == [6, 3, 2]  # floors 5, 3, 2, remainder to the first
    with pytest.raises(ValueError, match="sum"):
        random_split(x, [10, 10])
    with pytest.raises(ValueError, match="sum to 1"):
        random_split(x, [0.5, 0.4])


def test_random_split_arrays_stay_paired():
    images = np.arange(30).reshape(10, 3)
    labels = np.arange(10) * 10
    (xi, yi), (xj, yj) = random_split((images, labels), [7, 3], seed=4)
    np.testing.assert_array_equal(xi[:, 0] // 3 * 10, yi)
    np.testing.assert_array_equal(xj[:, 0] // 3 * 10, yj)
    with pytest.raises(ValueError, match="first dimension"):
        random_split((images, labels[:5]), [1, 4])


def test_train_val_split_stratified():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    images = np.arange(200)
    (x_tr, y_tr), (x_val, y_val) = train_val_split(images, labels, 0.1, seed=0)
    assert np.bincount(y_val).tolist() == [10, 5, 3, 2]
    np.testing.assert_array_equal(labels[x_tr], y_tr)
    np.testing.assert_array_equal(labels[x_val], y_val)
    assert sorted(np.concatenate([x_tr, x_val]).tolist()) == list(range(200))
    assert np.all(np.diff(x_tr) > 0)  # original order kept
    again = train_val_split(images, labels, 0.1, seed=0)
    np.testing.assert_array_equal(again[1][0], x_val)
    other = train_val_split(images, labels, 0.1, seed=1)
    assert not np.array_equal(other[1][0], x_val)


def test_train_val_split_plain_and_zero():
    images = np.arange(40)
    labels = np.linspace(0, 1, 40)  # float targets: not stratified
    (x_tr, _), (x_val, _) = train_val_split(images, labels, 0.25, seed=0)
    assert len(x_val) == 10 and len(x_tr) == 30
    (_, _), (x_val, _) = train_val_split(images, labels, 0.0)
    assert len(x_val) == 0
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(images, labels, 1.0)
