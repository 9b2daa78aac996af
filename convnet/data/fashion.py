"""Fashion-MNIST (Zalando Research, MIT licence): find it, download it, load it.

Where the data comes from, in order:

1. ``root`` (the command line's ``--data DIR``) when given: the only place looked at; a
   folder without the four files is a ``FileNotFoundError`` (or, with ``download=True``,
   where the files are downloaded to);
2. ``$CONVNET_DATA``;
3. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package);
4. ``~/.cache/convnet/fashion-mnist`` (where ``download=True`` puts them by default);
5. the sample embedded in the package: the 10,000 test images, split 8,000 train /
   2,000 test (stratified, fixed seed), so that training works with nothing installed.

A folder qualifies when it holds the four IDX files, gzipped (``.gz``) or not.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import warnings

import numpy as np

from .._io import atomic_write_bytes
from .dataset import ArrayDataset, stratified_indices, train_val_split
from .idx import read_idx
from .loader import DataLoader
from .transforms import Compose, Normalize, RandomHorizontalFlip, RandomShift

__all__ = [
    "FASHION_MNIST_CLASSES", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "FASHION_MNIST_FILES",
    "FASHION_MNIST_URL", "SYSTEM_DIR", "EMBEDDED_DIR", "default_cache_dir",
    "find_fashion_mnist", "download_fashion_mnist", "load_fashion_mnist", "load_embedded_sample",
    "fashion_mnist_loaders",
]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

# (train|test, images|labels) -> file name without ".gz"
FASHION_MNIST_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# MD5 of the .gz files Zalando publishes (README of zalandoresearch/fashion-mnist) ...
_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# ... and of their decompressed contents, which is what a mirror that recompressed the
# files (Debian's package did) still matches; checked against /usr/share/datasets.
_RAW_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
EMBEDDED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fashion_mnist")
_EMBEDDED_TEST_FRACTION = 0.2
_EMBEDDED_SEED = 0


def default_cache_dir() -> str:
    """``~/.cache/convnet/fashion-mnist`` (``$XDG_CACHE_HOME`` respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "convnet", "fashion-mnist")


def _file_in(folder: str, name: str) -> str | None:
    for candidate in (name + ".gz", name):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def _qualifies(folder) -> bool:
    return bool(folder) and os.path.isdir(folder) and all(
        _file_in(folder, name) for name in FASHION_MNIST_FILES.values())


def _missing(folder: str) -> list[str]:
    return [n + "[.gz]" for n in FASHION_MNIST_FILES.values() if not _file_in(folder, n)]


def find_fashion_mnist(root=None) -> str | None:
    """The folder holding the full Fashion-MNIST files, or None (see the module's search
    order; an explicit ``root`` is the only place looked at)."""
    if root is not None:
        root = os.path.expanduser(os.fspath(root))
        return root if _qualifies(root) else None
    env = os.environ.get("CONVNET_DATA")
    if env:
        env = os.path.expanduser(env)
        if _qualifies(env):
            return env
        warnings.warn(f"$CONVNET_DATA={env} does not hold the Fashion-MNIST files (missing "
                      f"{', '.join(_missing(env)) if os.path.isdir(env) else 'the folder'}); "
                      "looking elsewhere", stacklevel=2)
    for folder in (SYSTEM_DIR, default_cache_dir()):
        if _qualifies(folder):
            return folder
    return None


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _checksum_ok(name: str, data: bytes, checksums: dict | None) -> bool:
    if checksums is not None:
        return _md5(data) == checksums.get(name)
    if _md5(data) == _GZ_MD5[name]:
        return True
    if data[:2] == b"\x1f\x8b":
        try:
            return _md5(gzip.decompress(data)) == _RAW_MD5[name]
        except (OSError, EOFError, ValueError):
            return False
    return False


def download_fashion_mnist(root=None, base_url: str | None = None, force: bool = False,
                           timeout: float = 60.0, checksums: dict | None = None) -> str:
    """Download the four ``.gz`` files into ``root`` (default ``~/.cache/convnet/
    fashion-mnist``) and return that folder.

    ``base_url`` defaults to ``$CONVNET_DATA_URL`` or Zalando's server. Each file is checked
    against Zalando's published MD5 (a recompressed mirror is accepted when the MD5 of the
    decompressed contents matches) before it is renamed into place, so the folder never
    holds a partial or wrong file; a mismatch is a ``ValueError``. Files already there are
    kept unless ``force``. ``checksums`` (file name -> MD5 of the file) replaces the
    published ones, e.g. for a private mirror.
    """
    folder = os.path.expanduser(os.fspath(root)) if root is not None else default_cache_dir()
    base = base_url or os.environ.get("CONVNET_DATA_URL") or FASHION_MNIST_URL
    if not base.endswith("/"):
        base += "/"
    os.makedirs(folder, exist_ok=True)
    for raw_name in FASHION_MNIST_FILES.values():
        name = raw_name + ".gz"
        dest = os.path.join(folder, name)
        if not force and _file_in(folder, raw_name):
            continue
        url = base + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                data = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise OSError(f"download_fashion_mnist: could not fetch {url}: {exc}") from exc
        if not _checksum_ok(name, data, checksums):
            expected = (checksums or _GZ_MD5).get(name)
            raise ValueError(f"download_fashion_mnist: {url}: MD5 checksum mismatch (got "
                             f"{_md5(data)}, expected {expected}; {len(data)} bytes); the "
                             f"file was not saved")
        atomic_write_bytes(dest, data)
    return folder


def _read_split(folder: str, split: str):
    img_path = _file_in(folder, FASHION_MNIST_FILES[(split, "images")])
    lab_path = _file_in(folder, FASHION_MNIST_FILES[(split, "labels")])
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"Fashion-MNIST images {img_path}: expected uint8 (N, H, W), got "
                         f"{images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"Fashion-MNIST labels {lab_path}: expected uint8 (N,), got "
                         f"{labels.dtype} {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"Fashion-MNIST: {images.shape[0]} images in {img_path} but "
                         f"{labels.shape[0]} labels in {lab_path}")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"Fashion-MNIST labels {lab_path}: label {int(labels.max())} out of "
                         f"range 0..{len(FASHION_MNIST_CLASSES) - 1}")
    return images, labels.astype(np.int64)


def load_fashion_mnist(root=None, download: bool = False, base_url: str | None = None) -> dict:
    """Load Fashion-MNIST as ``{"train": (images, labels), "test": (images, labels),
    "source": str, "full": bool, "classes": tuple}``; images uint8 (N, 28, 28), labels
    int64 (N,).

    The full data (60,000 train / 10,000 test, ``full=True``) comes from the first folder
    of the search order that holds it (module docstring). When none does, ``download=True``
    fetches it (into ``root`` or the cache, from ``base_url`` or ``$CONVNET_DATA_URL`` or
    Zalando's server); otherwise the embedded sample is used: ``full=False``, 8,000 train /
    2,000 test images cut from Fashion-MNIST's test split. An explicit ``root`` without the
    files raises ``FileNotFoundError`` (unless ``download``) instead of falling back.
    """
    folder = find_fashion_mnist(root)
    if folder is None and root is not None and not download:
        root_path = os.path.expanduser(os.fspath(root))
        what = (f"missing {', '.join(_missing(root_path))}" if os.path.isdir(root_path)
                else "no such folder")
        raise FileNotFoundError(f"Fashion-MNIST: {root_path} does not hold the data set "
                                f"({what}); pass download=True to fetch it there, or leave "
                                "the folder out to use $CONVNET_DATA, "
                                f"{SYSTEM_DIR} or the embedded sample")
    if folder is None and download:
        folder = download_fashion_mnist(root, base_url=base_url)
    if folder is not None:
        train, test = _read_split(folder, "train"), _read_split(folder, "test")
        return {"train": train, "test": test, "full": True, "classes": FASHION_MNIST_CLASSES,
                "source": f"Fashion-MNIST from {folder}"}
    return load_embedded_sample()


def load_embedded_sample() -> dict:
    """The sample shipped in the package: Fashion-MNIST's 10,000 test images split
    deterministically (stratified by class, fixed seed) into 8,000 train / 2,000 test."""
    if not _qualifies_embedded():
        raise FileNotFoundError(f"Fashion-MNIST: the embedded sample is missing from "
                                f"{EMBEDDED_DIR} (a broken install?)")
    images, labels = _read_split(EMBEDDED_DIR, "test")
    train_idx, test_idx = stratified_indices(labels, _EMBEDDED_TEST_FRACTION, _EMBEDDED_SEED)
    return {"train": (images[train_idx], labels[train_idx]),
            "test": (images[test_idx], labels[test_idx]), "full": False,
            "classes": FASHION_MNIST_CLASSES,
            "source": (f"embedded sample (Fashion-MNIST test split, {images.shape[0]} images "
                       f"split {train_idx.size} train / {test_idx.size} test; the full data "
                       f"set was not found)")}


def _qualifies_embedded() -> bool:
    return all(_file_in(EMBEDDED_DIR, FASHION_MNIST_FILES[("test", k)])
               for k in ("images", "labels"))


def fashion_mnist_loaders(root=None, batch_size: int = 128, val_fraction: float = 0.1,
                          augment: bool = False, seed: int = 0, normalize: bool = True,
                          limit: int | None = None, download: bool = False,
                          prefetch: int = 2):
    """``(train_loader, val_loader, test_loader, info)`` for Fashion-MNIST.

    The validation set is ``val_fraction`` of the training images (stratified, ``seed``;
    ``val_loader`` is None when ``val_fraction`` is 0). ``augment`` adds random shifts of
    up to 2 pixels and horizontal flips to the training batches only. ``normalize`` maps
    pixels with Fashion-MNIST's mean 0.2860 and std 0.3530. ``limit`` keeps only the first
    ``limit`` training images (before the validation split), for quick runs. ``info`` holds
    ``source``, ``full``, ``n_train``, ``n_val``, ``n_test`` and ``classes``.
    """
    data = load_fashion_mnist(root, download=download)
    x_train, y_train = data["train"]
    if limit is not None:
        if int(limit) < 1:
            raise ValueError(f"fashion_mnist_loaders: limit must be >= 1, got {limit}")
        x_train, y_train = x_train[:int(limit)], y_train[:int(limit)]
    (x_tr, y_tr), (x_val, y_val) = train_val_split(x_train, y_train, val_fraction, seed)
    norm = [Normalize(FASHION_MNIST_MEAN, FASHION_MNIST_STD)] if normalize else []
    train_tf = norm[:]
    if augment:
        train_tf = [RandomShift(2), RandomHorizontalFlip(0.5)] + norm
    train_tf = Compose(train_tf) if train_tf else None
    eval_tf = Compose(norm) if norm else None

    train_loader = DataLoader(ArrayDataset(x_tr, y_tr, train_tf), batch_size, shuffle=True,
                              seed=seed, prefetch=prefetch)
    val_loader = (DataLoader(ArrayDataset(x_val, y_val, eval_tf), batch_size,
                             prefetch=prefetch) if len(y_val) else None)
    x_test, y_test = data["test"]
    test_loader = DataLoader(ArrayDataset(x_test, y_test, eval_tf), batch_size,
                             prefetch=prefetch)
    info = {"source": data["source"], "full": data["full"], "n_train": int(len(y_tr)),
            "n_val": int(len(y_val)), "n_test": int(len(y_test)),
            "classes": FASHION_MNIST_CLASSES}
    return train_loader, val_loader, test_loader, info
