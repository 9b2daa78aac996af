import contextlib
import functools
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

import convnet.data.fashion as fm
from convnet.data import (
    FASHION_MNIST_CLASSES,
    download_fashion_mnist,
    fashion_mnist_loaders,
    find_fashion_mnist,
    load_fashion_mnist,
    read_idx,
    write_idx,
)

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]
SYSTEM = "/usr/share/datasets/fashion-mnist"
HAVE_SYSTEM = all(os.path.isfile(os.path.join(SYSTEM, n + ".gz")) for n in NAMES)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No $CONVNET_DATA, no system copy and an empty cache, unless a test sets them."""
    monkeypatch.delenv("CONVNET_DATA", raising=False)
    monkeypatch.delenv("CONVNET_DATA_URL", raising=False)
    monkeypatch.setattr(fm, "SYSTEM_DIR", str(tmp_path / "no-system-copy"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def fake_fashion(folder, n_train=12, n_test=5, gz=True, seed=0):
    """Small IDX files with the real names; the image pixel [0, 0] holds n_train."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = n_train
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte{suffix}"), images)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte{suffix}"),
                  (np.arange(n) % 10).astype(np.uint8))
    return str(folder)


def test_classes():
    assert FASHION_MNIST_CLASSES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def test_embedded_sample_when_nothing_else():
    assert find_fashion_mnist() is None
    data = load_fashion_mnist()
    assert data["full"] is False and "embedded" in data["source"]
    (x_tr, y_tr), (x_te, y_te) = data["train"], data["test"]
    assert x_tr.shape == (8000, 28, 28) and x_te.shape == (2000, 28, 28)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64 and y_te.dtype == np.int64
    assert np.bincount(y_tr).tolist() == [800] * 10  # stratified
    assert np.bincount(y_te).tolist() == [200] * 10
    # the two parts are exactly the 10,000 embedded images, each once
    images = read_idx(os.path.join(fm.EMBEDDED_DIR, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(fm.EMBEDDED_DIR, "t10k-labels-idx1-ubyte.gz"))
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)

    def rows(x, y):
        return sorted(a.tobytes() + bytes([int(b)]) for a, b in zip(x, y))

    assert rows(np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])) == rows(images,
                                                                                    labels)
    again = load_fashion_mnist()  # deterministic
    np.testing.assert_array_equal(again["test"][0], x_te)
    np.testing.assert_array_equal(again["train"][1], y_tr)


def test_embedded_files_are_zalandos_contents():
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with open(os.path.join(fm.EMBEDDED_DIR, name), "rb") as fh:
            assert fm._checksum_ok(name, fh.read(), None)


def test_explicit_root_is_used(tmp_path):
    root = fake_fashion(tmp_path / "mine", n_train=12)
    assert find_fashion_mnist(root) == root
    data = load_fashion_mnist(root)
    assert data["full"] is True and root in data["source"]
    assert data["train"][0].shape == (12, 28, 28) and data["test"][0].shape == (5, 28, 28)
    assert data["train"][1].dtype == np.int64


def test_plain_files_qualify(tmp_path):
    root = fake_fashion(tmp_path / "plain", gz=False)
    assert load_fashion_mnist(root)["train"][0].shape == (12, 28, 28)


def test_explicit_bad_root_raises_without_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVNET_DATA", fake_fashion(tmp_path / "env"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert find_fashion_mnist(empty) is None
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(empty)
    message = str(info.value)
    assert str(empty) in message and "t10k-labels-idx1-ubyte" in message
    assert "train-images" not in message  # that one is there
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_fashion_mnist(tmp_path / "does-not-exist")


def test_search_order_env_then_system_then_cache(tmp_path, monkeypatch):
    env = fake_fashion(tmp_path / "env", n_train=11)
    system = fake_fashion(tmp_path / "system", n_train=13)
    cache = fake_fashion(tmp_path / "cache" / "convnet" / "fashion-mnist", n_train=14)
    monkeypatch.setattr(fm, "SYSTEM_DIR", system)
    monkeypatch.setenv("CONVNET_DATA", env)
    assert find_fashion_mnist() == env
    assert load_fashion_mnist()["train"][0][0, 0, 0] == 11
    root = fake_fashion(tmp_path / "root", n_train=10)
    assert load_fashion_mnist(root)["train"][0][0, 0, 0] == 10  # root first
    monkeypatch.delenv("CONVNET_DATA")
    assert find_fashion_mnist() == system
    monkeypatch.setattr(fm, "SYSTEM_DIR", str(tmp_path / "gone"))
    assert find_fashion_mnist() == cache


def test_env_without_files_warns_and_falls_through(tmp_path, monkeypatch):
    system = fake_fashion(tmp_path / "system")
    monkeypatch.setattr(fm, "SYSTEM_DIR", system)
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path / "nothing-here"))
    with pytest.warns(UserWarning, match="CONVNET_DATA"):
        assert find_fashion_mnist() == system


def test_inconsistent_files_raise_value_error(tmp_path):
    root = fake_fashion(tmp_path / "bad")
    write_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz"), np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="5 images .* but 4 labels"):
        load_fashion_mnist(root)
    write_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz"), np.full(5, 10, np.uint8))
    with pytest.raises(ValueError, match="label 10 out of range"):
        load_fashion_mnist(root)
    with open(os.path.join(root, "train-images-idx3-ubyte.gz"), "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_fashion_mnist(root)


def test_loaders_on_embedded_sample():
    train, val, test, info = fashion_mnist_loaders(batch_size=256, seed=0)
    assert info["full"] is False and "embedded" in info["source"]
    assert (info["n_train"], info["n_val"], info["n_test"]) == (7200, 800, 2000)
    assert info["classes"] == FASHION_MNIST_CLASSES
    assert len(train) == 29 and len(val) == 4 and len(test) == 8
    x, y = next(iter(test))
    assert x.shape == (256, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    pixels = x.numpy() * 0.3530 + 0.2860  # normalised: back to [0, 1]
    assert pixels.min() > -1e-5 and pixels.max() < 1 + 1e-5 and pixels.max() > 0.99
    xs = np.concatenate([b.numpy() for b, _ in test])
    assert abs(xs.mean()) < 0.1 and abs(xs.std() - 1) < 0.1  # roughly standardised


def test_loaders_augment_only_train_and_limit():
    plain = fashion_mnist_loaders(batch_size=64, seed=0, limit=500)
    aug = fashion_mnist_loaders(batch_size=64, seed=0, limit=500, augment=True)
    assert plain[3]["n_train"] + plain[3]["n_val"] == 500
    (xp, yp), (xa, ya) = next(iter(plain[0])), next(iter(aug[0]))
    np.testing.assert_array_equal(yp.numpy(), ya.numpy())  # same order
    assert not np.array_equal(xp.numpy(), xa.numpy())  # shifted/flipped
    for k in (1, 2):  # validation and test untouched
        np.testing.assert_array_equal(next(iter(plain[k]))[0].numpy(),
                                      next(iter(aug[k]))[0].numpy())
    again = fashion_mnist_loaders(batch_size=64, seed=0, limit=500, augment=True)
    np.testing.assert_array_equal(next(iter(again[0]))[0].numpy(), xa.numpy())
    raw = fashion_mnist_loaders(batch_size=64, normalize=False, val_fraction=0.0, limit=100)
    assert raw[1] is None and raw[3]["n_val"] == 0
    assert next(iter(raw[2]))[0].numpy().min() >= 0.0


# ------------------------------------------------------------------------- download
@contextlib.contextmanager
def serve(folder):
    """An HTTP server on 127.0.0.1 serving ``folder`` from a thread; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/files"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def md5_of(path):
    with open(path, "rb") as fh:
        return hashlib.md5(fh.read()).hexdigest()


def test_download_from_local_server(tmp_path, no_proxy):
    site = fake_fashion(tmp_path / "site" / "files", n_train=12)
    sums = {n + ".gz": md5_of(os.path.join(site, n + ".gz")) for n in NAMES}
    dest = tmp_path / "dest"
    with serve(tmp_path / "site") as url:
        assert download_fashion_mnist(dest, base_url=url, checksums=sums) == str(dest)
    assert sorted(os.listdir(dest)) == sorted(n + ".gz" for n in NAMES)  # no temp files
    # files already there are kept: no request made (the server is gone)
    assert download_fashion_mnist(dest, base_url=url, checksums=sums) == str(dest)
    with pytest.raises(OSError, match="could not fetch"):
        download_fashion_mnist(dest, base_url=url, checksums=sums, force=True, timeout=5)
    for n in NAMES:
        assert md5_of(dest / (n + ".gz")) == sums[n + ".gz"]
    assert load_fashion_mnist(dest)["train"][0].shape == (12, 28, 28)


def test_download_checksum_mismatch_saves_nothing(tmp_path, no_proxy, monkeypatch):
    fake_fashion(tmp_path / "site" / "files")  # not Zalando's files
    dest = tmp_path / "dest"
    with serve(tmp_path / "site") as url:
        monkeypatch.setenv("CONVNET_DATA_URL", url)  # the base URL from the environment
        with pytest.raises(ValueError, match="MD5 checksum mismatch") as info:
            download_fashion_mnist(dest)
        assert "train-images-idx3-ubyte.gz" in str(info.value)
        assert "8d4fb7e6c68d591d4c3dfef9ec88bf0d" in str(info.value)
        assert os.listdir(dest) == []
        with pytest.raises(ValueError, match="MD5"):
            load_fashion_mnist(dest, download=True)
    assert os.listdir(dest) == []


def test_download_missing_file_is_os_error(tmp_path, no_proxy):
    (tmp_path / "site" / "files").mkdir(parents=True)
    with serve(tmp_path / "site") as url:
        with pytest.raises(OSError, match="could not fetch .*train-images-idx3-ubyte.gz"):
            download_fashion_mnist(tmp_path / "dest", base_url=url)


@pytest.mark.skipif(not HAVE_SYSTEM, reason=f"no Fashion-MNIST in {SYSTEM}")
def test_download_real_files_into_cache(tmp_path, no_proxy):
    """Debian's recompressed copy: accepted through the decompressed contents' MD5."""
    site = tmp_path / "site"
    site.mkdir()
    os.symlink(SYSTEM, site / "files")
    with serve(site) as url:
        data = load_fashion_mnist(download=True, base_url=url)
    cache = tmp_path / "cache" / "convnet" / "fashion-mnist"
    assert data["full"] is True and str(cache) in data["source"]
    assert data["train"][0].shape == (60000, 28, 28) and data["test"][0].shape == (10000,
                                                                                    28, 28)
    assert np.bincount(data["train"][1]).tolist() == [6000] * 10
    assert find_fashion_mnist() == str(cache)  # found there next time
