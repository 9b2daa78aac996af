"""Batch-wise image transforms for data augmentation and normalisation.

Every transform takes a float32 NumPy batch ``(B, C, H, W)`` and returns a new one (the
input is not modified). Random transforms draw their parameters from a
``np.random.Generator`` passed as ``rng`` — the :class:`~convnet.data.DataLoader` passes
one derived from its seed, so a seeded loader augments reproducibly — and draw them
independently for every image of the batch. Each random transform splits into
``get_params(batch_size, rng)`` (the draw) and ``apply(x, params)`` (the deterministic
part), like torchvision's ``get_params``. Without ``rng`` they use convnet's global
generator (``convnet.manual_seed``).

Everything is vectorised over the batch with NumPy index maps; no SciPy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import random as _random

__all__ = [
    "Transform", "Compose", "Normalize", "RandomShift", "RandomCrop", "RandomHorizontalFlip",
    "RandomRotation", "GaussianNoise", "apply_transform",
]


def _check_batch(x, who: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        shape = getattr(x, "shape", None)
        raise ValueError(f"{who}: expected a NumPy batch (B, C, H, W), got "
                         f"{type(x).__name__} of shape {shape}")
    return x


def _pair(value, name: str, who: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 0:
        raise ValueError(f"{who}: {name} must be a non-negative int or (h, w), got {value}")
    return value


def apply_transform(transform: Callable | None, x: np.ndarray, rng=None) -> np.ndarray:
    """Apply ``transform`` to the batch ``x``: a :class:`Transform` gets ``rng``, any other
    callable is called as ``transform(x)``."""
    if transform is None:
        return x
    if isinstance(transform, Transform):
        return transform(x, rng)
    return transform(x)


class Transform:
    """Base class: ``__call__(x, rng=None)`` on a float32 batch (B, C, H, W)."""

    random = False

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check_batch(x, type(self).__name__)
        if not self.random:
            return self.apply(x, None)
        rng = _random.generator() if rng is None else rng
        return self.apply(x, self.get_params(x.shape[0], rng))

    def get_params(self, batch_size: int, rng: np.random.Generator):
        return None

    def apply(self, x: np.ndarray, params) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order (each random one draws from the same generator)."""

    random = True

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        x = _check_batch(x, "Compose")
        if rng is None and any(isinstance(t, Transform) and t.random for t in self.transforms):
            rng = _random.generator()
        for t in self.transforms:
            x = apply_transform(t, x, rng)
        return x


class Normalize(Transform):
    """``(x - mean) / std`` with a scalar or per-channel ``mean`` and ``std``."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.size == 0 or self.std.size == 0:
            raise ValueError("Normalize: mean and std must not be empty")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def apply(self, x, params):
        c = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"Normalize: {name} has {v.size} values for a batch of "
                                 f"{c} channels (shape {x.shape})")
        mean = self.mean.reshape(1, -1, 1, 1)
        inv_std = (1.0 / self.std).astype(np.float32).reshape(1, -1, 1, 1)
        out = x - mean  # a new array, scaled in place (one pass less over the batch)
        out *= inv_std
        return out.astype(np.float32, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _windows(x: np.ndarray, top: np.ndarray, left: np.ndarray, pad: tuple[int, int],
             size: tuple[int, int], fill: float) -> np.ndarray:
    """Per image b, the (h, w) window at (top[b], left[b]) of x padded by pad with fill."""
    b, c, height, width = x.shape
    ph, pw = pad
    h, w = size
    if ph or pw:
        padded = np.full((b, c, height + 2 * ph, width + 2 * pw), fill, dtype=x.dtype)
        padded[:, :, ph:ph + height, pw:pw + width] = x
    else:
        padded = x
    rows = top[:, None] + np.arange(h)[None, :]          # (B, h)
    cols = left[:, None] + np.arange(w)[None, :]         # (B, w)
    bi = np.arange(b)[:, None, None, None]
    ci = np.arange(c)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


class RandomShift(Transform):
    """Translate each image by a random whole number of pixels, up to ``max_pixels`` in
    each direction, filling the uncovered border with ``fill`` (random crop with padding,
    same output size). Params: ``(dy, dx)`` integer arrays; content at (i, j) moves to
    (i + dy, j + dx)."""

    random = True

    def __init__(self, max_pixels: int | tuple[int, int], fill: float = 0.0):
        self.max_pixels = _pair(max_pixels, "max_pixels", "RandomShift")
        self.fill = float(fill)

    def get_params(self, batch_size, rng):
        my, mx = self.max_pixels
        dy = rng.integers(-my, my + 1, size=batch_size)
        dx = rng.integers(-mx, mx + 1, size=batch_size)
        return dy, dx

    def apply(self, x, params):
        dy, dx = (np.asarray(p, dtype=np.intp) for p in params)
        my, mx = self.max_pixels
        if np.any(np.abs(dy) > my) or np.any(np.abs(dx) > mx):
            raise ValueError(f"RandomShift: shifts exceed max_pixels {self.max_pixels}")
        return _windows(x, my - dy, mx - dx, (my, mx), x.shape[2:], self.fill)


class RandomCrop(Transform):
    """Pad each image by ``padding`` pixels (value ``fill``) and cut a random ``size``
    window out of it, like ``torchvision.transforms.RandomCrop``. Params: ``(top, left)``
    offsets into the padded image."""

    random = True

    def __init__(self, size: int | tuple[int, int], padding: int | tuple[int, int] = 0,
                 fill: float = 0.0):
        self.size = _pair(size, "size", "RandomCrop")
        self.padding = _pair(padding, "padding", "RandomCrop")
        self.fill = float(fill)
        if min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be positive, got {self.size}")

    def _room(self, height, width):
        ph, pw = self.padding
        h, w = self.size
        room = (height + 2 * ph - h, width + 2 * pw - w)
        if min(room) < 0:
            raise ValueError(f"RandomCrop: crop {self.size} larger than the padded image "
                             f"({height + 2 * ph}, {width + 2 * pw})")
        return room

    def __call__(self, x, rng=None):
        x = _check_batch(x, "RandomCrop")
        rng = _random.generator() if rng is None else rng
        room_h, room_w = self._room(*x.shape[2:])
        top = rng.integers(0, room_h + 1, size=x.shape[0])
        left = rng.integers(0, room_w + 1, size=x.shape[0])
        return self.apply(x, (top, left))

    def get_params(self, batch_size, rng, image_size: tuple[int, int] | None = None):
        if image_size is None:
            raise ValueError("RandomCrop.get_params: image_size (H, W) is needed")
        room_h, room_w = self._room(*image_size)
        return (rng.integers(0, room_h + 1, size=batch_size),
                rng.integers(0, room_w + 1, size=batch_size))

    def apply(self, x, params):
        top, left = (np.asarray(p, dtype=np.intp) for p in params)
        room_h, room_w = self._room(*x.shape[2:])
        if np.any((top < 0) | (top > room_h) | (left < 0) | (left > room_w)):
            raise ValueError("RandomCrop: crop offsets outside the padded image")
        return _windows(x, top, left, self.padding, self.size, self.fill)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding}, fill={self.fill})"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``. Params: a boolean mask."""

    random = True

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def get_params(self, batch_size, rng):
        return rng.random(batch_size) < self.p

    def apply(self, x, params):
        mask = np.asarray(params, dtype=bool)
        out = x.copy()
        out[mask] = x[mask][..., ::-1]
        return out


class RandomRotation(Transform):
    """Rotate each image by a random angle (degrees, counter-clockwise positive, about the
    image centre) drawn uniformly from ``(-degrees, degrees)`` or ``degrees=(lo, hi)``.
    ``interpolation`` is ``"bilinear"`` or ``"nearest"``; pixels from outside the image get
    ``fill``. Params: the angles in degrees. A 90-degree turn of a square image equals
    ``np.rot90``."""

    random = True

    def __init__(self, degrees, interpolation: str = "bilinear", fill: float = 0.0):
        if isinstance(degrees, (int, float, np.number)):
            if degrees < 0:
                raise ValueError(f"RandomRotation: degrees must be >= 0, got {degrees}")
            degrees = (-float(degrees), float(degrees))
        lo, hi = (float(d) for d in degrees)
        if lo > hi:
            raise ValueError(f"RandomRotation: degrees range ({lo}, {hi}) is reversed")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError("RandomRotation: interpolation must be 'bilinear' or 'nearest', "
                             f"got {interpolation!r}")
        self.degrees = (lo, hi)
        self.interpolation = interpolation
        self.fill = float(fill)

    def get_params(self, batch_size, rng):
        return rng.uniform(self.degrees[0], self.degrees[1], size=batch_size)

    def apply(self, x, params):
        b, c, h, w = x.shape
        theta = np.deg2rad(np.asarray(params, dtype=np.float64)).reshape(b, 1, 1)
        cos, sin = np.cos(theta), np.sin(theta)
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        i = np.arange(h, dtype=np.float64)[None, :, None]
        j = np.arange(w, dtype=np.float64)[None, None, :]
        u, v = j - cx, cy - i                       # output pixel, y axis pointing up
        src_x = cx + u * cos + v * sin              # rotate back by -theta
        src_y = cy - (-u * sin + v * cos)
        # pad by one pixel of fill: every sample outside the image clips onto that border
        padded = np.full((b, c, h + 2, w + 2), self.fill, dtype=x.dtype)
        padded[:, :, 1:h + 1, 1:w + 1] = x
        flat = padded.reshape(b, c, -1)
        pw = w + 2

        def gather(yy, xx):
            yy = np.clip(yy + 1, 0, h + 1)
            xx = np.clip(xx + 1, 0, w + 1)
            idx = (yy * pw + xx).reshape(b, 1, h * w)
            return np.take_along_axis(flat, idx, axis=2).reshape(b, c, h, w)

        if self.interpolation == "nearest":
            # snap values within 1e-6 of an integer first, so right angles stay exact
            ny = np.floor(src_y + 0.5 + 1e-6).astype(np.intp)
            nx = np.floor(src_x + 0.5 + 1e-6).astype(np.intp)
            return gather(ny, nx)
        src_y = np.where(np.abs(src_y - np.rint(src_y)) < 1e-6, np.rint(src_y), src_y)
        src_x = np.where(np.abs(src_x - np.rint(src_x)) < 1e-6, np.rint(src_x), src_x)
        y0f, x0f = np.floor(src_y), np.floor(src_x)
        wy = (src_y - y0f).astype(np.float32)[:, None]
        wx = (src_x - x0f).astype(np.float32)[:, None]
        y0, x0 = y0f.astype(np.intp), x0f.astype(np.intp)
        top = gather(y0, x0) * (1 - wx) + gather(y0, x0 + 1) * wx
        bottom = gather(y0 + 1, x0) * (1 - wx) + gather(y0 + 1, x0 + 1) * wx
        return (top * (1 - wy) + bottom * wy).astype(x.dtype, copy=False)


class GaussianNoise(Transform):
    """Add independent N(0, std^2) noise to every pixel (``clip=(lo, hi)`` optionally
    clips the result). Params: the noise array."""

    random = True

    def __init__(self, std: float, clip: tuple[float, float] | None = None):
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std}")
        self.std = float(std)
        self.clip = clip

    def __call__(self, x, rng=None):
        x = _check_batch(x, "GaussianNoise")
        rng = _random.generator() if rng is None else rng
        noise = rng.standard_normal(x.shape, dtype=np.float32)
        return self.apply(x, noise)

    def get_params(self, batch_size, rng, shape: tuple[int, ...] | None = None):
        if shape is None:
            raise ValueError("GaussianNoise.get_params: the batch shape is needed")
        return rng.standard_normal(shape, dtype=np.float32)

    def apply(self, x, params):
        out = x + np.float32(self.std) * params
        if self.clip is not None:
            out = np.clip(out, self.clip[0], self.clip[1])
        return out.astype(x.dtype, copy=False)

