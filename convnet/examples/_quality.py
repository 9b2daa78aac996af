"""How good are generated Fashion-MNIST images? Measured with a classifier convnet trains.

A generator is judged by a small CNN trained on Fashion-MNIST (by convnet itself, cached
under ``~/.cache/convnet`` with :func:`convnet.save`):

- ``confidence``: the mean over samples of the classifier's largest softmax probability
  (real test images score about 0.9: a sample that looks like no garment scores low);
- ``class_entropy``: the entropy (nats) of the mean predicted class distribution, at most
  ln 10 = 2.303 when the samples cover the ten classes evenly; a generator that collapsed
  onto one mode scores near 0 (``class_histogram`` gives the counts);
- ``frechet``: the Fréchet distance between Gaussians fitted to the classifier's
  penultimate-layer features on real and on generated images (Heusel et al.'s FID, with this
  classifier in place of Inception):
  ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

Images given to these functions are (N, 1, 28, 28) or (N, 28, 28) arrays in [-1, 1], the
range of a tanh generator; uint8 images are mapped there by :func:`to_unit_range`.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

import convnet as cn
from convnet import nn
from convnet.data import FASHION_MNIST_CLASSES, load_fashion_mnist

FEATURES = 64
_ARCH_VERSION = 1   # bump when the classifier below changes, so stale caches are not loaded


class FashionClassifier(nn.Module):
    """Two 3x3 convolution blocks with batch norm and max pooling, then a dense layer whose
    ``FEATURES`` outputs (after ReLU) are the features for the Fréchet distance; takes
    images in [-1, 1]."""

    def __init__(self, num_classes: int = 10, features: int = FEATURES):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, features), nn.ReLU(),
        )
        self.head = nn.Linear(features, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def to_unit_range(images) -> np.ndarray:
    """(N, 28, 28) or (N, 1, 28, 28) uint8 pixels (or floats in [-1, 1]) as float32
    (N, 1, 28, 28) in [-1, 1]."""
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 127.5 - 1.0
    x = x.astype(np.float32, copy=False)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"images: expected (N, 28, 28) or (N, 1, 28, 28), got shape "
                         f"{np.asarray(images).shape}")
    return x


def default_classifier_path(data_source: str, epochs: int, seed: int) -> str:
    """``~/.cache/convnet/gan-quality/classifier-<key>.safetensors``, the key naming the
    architecture version, data source, epochs and seed the weights came from."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = json.dumps([_ARCH_VERSION, data_source, epochs, seed])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(base, "convnet", "gan-quality", f"classifier-{digest}.safetensors")


def train_classifier(train, test=None, epochs: int = 2, batch_size: int = 128, seed: int = 0,
                     progress: bool = True, log=print) -> tuple[FashionClassifier, float | None]:
    """Train :class:`FashionClassifier` on ``train = (uint8 images, labels)`` with Adam and
    return it in eval mode with its accuracy on ``test`` (None without test data)."""
    from convnet.data import ArrayDataset, DataLoader, transforms
    from convnet.train import evaluate, fit

    def loader(images, labels, shuffle):
        # uint8 -> [0, 1] in the dataset, then to [-1, 1] batch by batch
        ds = ArrayDataset(images, np.asarray(labels, np.int64),
                          transform=transforms.Normalize(0.5, 0.5))
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, seed=seed)

    cn.manual_seed(seed)
    model = FashionClassifier()
    fit(model, loader(*train, True), None, epochs=epochs,
        optimizer=cn.optim.Adam(model.parameters(), lr=1e-3), progress=progress, log=log)
    model.eval()
    acc = None if test is None else evaluate(model, loader(*test, False))[1]
    return model, acc


def load_or_train_classifier(path=None, data=None, epochs: int = 2, seed: int = 0,
                             progress: bool = True, log=print) -> tuple[FashionClassifier, dict]:
    """The quality classifier: loaded from ``path`` (default: the cache file for this data,
    ``epochs`` and ``seed``) when it exists, else trained on Fashion-MNIST's training
    images and saved there. Returns the model (eval mode) and an info dict with its
    ``test_accuracy``, ``path`` and whether it was ``cached``."""
    sets = load_fashion_mnist(root=data)
    path = os.fspath(path) if path is not None else default_classifier_path(
        sets["source"], epochs, seed)
    model = FashionClassifier()
    if os.path.exists(path):
        blob = cn.load(path)
        model.load_state_dict(blob["model"])
        model.eval()
        return model, {"path": path, "cached": True, "test_accuracy": blob["test_accuracy"]}
    log(f"training the quality classifier ({epochs} epochs on {sets['source']})")
    model, acc = train_classifier(sets["train"], sets["test"], epochs=epochs, seed=seed,
                                  progress=progress, log=log)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cn.save({"model": model.state_dict(), "test_accuracy": acc, "epochs": epochs,
             "source": sets["source"]}, path)
    log(f"quality classifier: test accuracy {acc:.4f}, saved to {path}")
    return model, {"path": path, "cached": False, "test_accuracy": acc}


def classify(model, images, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N, 10) and penultimate features (N, FEATURES) as float64."""
    x = to_unit_range(images)
    was_training = model.training
    model.eval()
    probs, feats = [], []
    with cn.no_grad():
        for i in range(0, len(x), batch_size):
            f = model.features(cn.tensor(x[i:i + batch_size]))
            probs.append(cn.functional.softmax(model.head(f), dim=1).numpy())
            feats.append(f.numpy())
    model.train(was_training)
    return (np.concatenate(probs).astype(np.float64),
            np.concatenate(feats).astype(np.float64))


# --------------------------------------------------------------------------- Fréchet distance


def _trace_sqrt_product(sigma1, sigma2, method: str) -> float:
    """Tr((S1 S2)^(1/2)) for symmetric positive semi-definite S1, S2."""
    if method == "scipy":
        import warnings

        from scipy import linalg

        with warnings.catch_warnings():
            # dead ReLU features make the covariances singular; sqrtm still returns the
            # root (the tests check it against the eigh path) but warns
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            root = linalg.sqrtm(sigma1 @ sigma2)
        if np.iscomplexobj(root):
            # round-off gives tiny imaginary parts; a large one means the input was not PSD
            if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
                raise ValueError(f"frechet_distance: sqrtm has an imaginary part of "
                                 f"{np.abs(root.imag).max():.3g}; are the covariances PSD?")
            root = root.real
        return float(np.trace(root))
    if method == "eigh":
        # S1 S2 is similar to S1^(1/2) S2 S1^(1/2), which is symmetric PSD, so the trace of
        # its root is the sum of the roots of that matrix's eigenvalues
        w, v = np.linalg.eigh(sigma1)
        half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        inner = np.linalg.eigvalsh(half @ sigma2 @ half)
        return float(np.sqrt(np.clip(inner, 0, None)).sum())
    raise ValueError(f"method: expected 'scipy', 'eigh' or None, got {method!r}")


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str | None = None) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):
    ``|mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))``.

    ``method``: "scipy" (``scipy.linalg.sqrtm``), "eigh" (symmetric eigen-decompositions in
    NumPy) or None for scipy when it is installed, else eigh.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    for name, v, shape in (("mu1", mu1, (d,)), ("mu2", mu2, (d,)),
                           ("sigma1", sigma1, (d, d)), ("sigma2", sigma2, (d, d))):
        if v.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {v.shape}")
    if method is None:
        try:
            import scipy.linalg  # noqa: F401
            method = "scipy"
        except ImportError:
            method = "eigh"
    diff = mu1 - mu2
    value = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
             - 2.0 * _trace_sqrt_product(sigma1, sigma2, method))
    return float(max(value, 0.0))   # round-off can leave -1e-12 for identical inputs


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, D) features."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features: expected (N, D) with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance_features(features1, features2, method: str | None = None) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance(*gaussian_stats(features1), *gaussian_stats(features2), method)


# --------------------------------------------------------------------------- scores


def quality(model, images, reference_features) -> dict:
    """``confidence``, ``class_entropy``, ``class_histogram`` (counts per class) and
    ``frechet`` (against ``reference_features`` from :func:`classify` on real images) of
    generated ``images``."""
    probs, feats = classify(model, images)
    mean_p = probs.mean(axis=0)
    entropy = float(-(mean_p * np.log(np.clip(mean_p, 1e-12, None))).sum())
    hist = np.bincount(probs.argmax(axis=1), minlength=len(FASHION_MNIST_CLASSES))
    return {"confidence": float(probs.max(axis=1).mean()), "class_entropy": entropy,
            "class_histogram": hist.tolist(), "frechet": frechet_distance_features(
                reference_features, feats), "n": int(len(feats))}
