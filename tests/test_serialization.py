import os

import numpy as np
import pytest

import convnet as cn


def test_round_trip_nested(tmp_path):
    obj = {"model": {"w": np.arange(6.0).reshape(2, 3), "n": np.array(3, np.int64)},
           "epoch": 4, "history": [0.5, 0.25], "name": "lenet", "flag": True, "none": None,
           "pair": (1, 2.5), 7: cn.tensor([1.0, 2.0])}
    path = tmp_path / "ck.safetensors"
    cn.save(obj, path)
    back = cn.load(path)
    np.testing.assert_array_equal(back["model"]["w"], obj["model"]["w"])
    assert back["model"]["n"] == 3 and back["epoch"] == 4 and back["history"] == [0.5, 0.25]
    assert back["name"] == "lenet" and back["flag"] is True and back["none"] is None
    assert back["pair"] == (1, 2.5)
    np.testing.assert_array_equal(back[7], [1.0, 2.0])
    assert back[7].dtype == np.float32


def test_model_round_trip(tmp_path):
    m = cn.nn.Sequential(cn.nn.Conv2d(1, 3, 3), cn.nn.BatchNorm2d(3))
    m(cn.randn(2, 1, 5, 5))
    cn.save(m.state_dict(), tmp_path / "m.safetensors")
    m2 = cn.nn.Sequential(cn.nn.Conv2d(1, 3, 3), cn.nn.BatchNorm2d(3))
    m2.load_state_dict(cn.load(tmp_path / "m.safetensors"))
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=k)


@pytest.mark.parametrize("trained", [False, True])
def test_zero_dim_arrays_keep_their_shape(tmp_path, trained):
    # an untrained BatchNorm's num_batches_tracked is a 0-d array; it must not come back (1,)
    m = cn.nn.BatchNorm2d(2)
    if trained:
        m(cn.randn(3, 2, 4, 4))
    assert m.num_batches_tracked.data.shape == ()
    assert int(m.num_batches_tracked.data) == int(trained)
    cn.save({"bn": m.state_dict(), "scalar": np.float32(2.5), "zero_d": np.array(7)},
            tmp_path / "m.safetensors")
    back = cn.load(tmp_path / "m.safetensors")
    assert back["zero_d"].shape == () and int(back["zero_d"]) == 7
    assert back["scalar"] == 2.5
    assert back["bn"]["num_batches_tracked"].shape == ()
    fresh = cn.nn.BatchNorm2d(2)
    fresh.load_state_dict(back["bn"])
    assert int(fresh.num_batches_tracked.data) == int(trained)


def test_plain_safetensors_file_loads_as_flat_dict(tmp_path):
    from safetensors.numpy import save_file

    save_file({"fc.weight": np.ones((2, 2), np.float32)}, str(tmp_path / "w.safetensors"))
    d = cn.load(tmp_path / "w.safetensors")
    assert list(d) == ["fc.weight"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "header"])
def test_corrupt_files_are_clear_errors(tmp_path, damage):
    path = tmp_path / "ck.safetensors"
    cn.save({"w": np.ones((10, 10))}, path)
    raw = path.read_bytes()
    bad = {"truncate": raw[: len(raw) // 2], "garbage": os.urandom(64), "empty": b"",
           "header": raw[:10] + b"\xff\xfe" + raw[12:]}[damage]
    path.write_bytes(bad)
    with pytest.raises(ValueError, match="not a valid checkpoint|damaged"):
        cn.load(path)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ck.safetensors"
    cn.save({"w": np.zeros(3)}, path)
    good = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        cn.save({"w": np.ones(3)}, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]  # no temp file left


def test_unsupported_objects_are_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot store a function"):
        cn.save({"f": lambda: 0}, tmp_path / "x.safetensors")
