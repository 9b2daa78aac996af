"""PyTorch's top-level functions (``torch.exp(x)``, ``torch.max(x, 1)``...): each calls
the Tensor method of the same name, so there is one implementation of every op."""

from __future__ import annotations

import numpy as np

from .functional import _nn
from .functional._select import einsum  # noqa: F401 - re-exported
from .tensor import Tensor


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def exp(input):
    return _t(input).exp()


def log(input):
    return _t(input).log()


def sqrt(input):
    return _t(input).sqrt()


def abs(input):  # noqa: A001 - PyTorch's name
    return _t(input).abs()


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None):  # noqa: A001
    return _t(input).sum(dim, keepdim, dtype=dtype, axis=axis)


def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None):
    return _t(input).mean(dim, keepdim, dtype=dtype, axis=axis)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _t(input).var(dim, unbiased, keepdim, correction=correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _t(input).std(dim, unbiased, keepdim, correction=correction)


def max(input, dim=None, keepdim=False, *, axis=None):  # noqa: A001
    return _t(input).max(dim, keepdim, axis=axis)


def min(input, dim=None, keepdim=False, *, axis=None):  # noqa: A001
    return _t(input).min(dim, keepdim, axis=axis)


def maximum(input, other):
    return _t(input).max(_t(other))


def minimum(input, other):
    return _t(input).min(_t(other))


def argmax(input, dim=None, keepdim=False):
    return _t(input).argmax(dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    return _t(input).argmin(dim, keepdim)


def clamp(input, min=None, max=None):  # noqa: A002
    return _t(input).clamp(min, max)


clip = clamp


def flatten(input, start_dim=0, end_dim=-1):
    return _t(input).flatten(start_dim, end_dim)


def reshape(input, shape):
    return _t(input).reshape(shape)


def transpose(input, dim0, dim1):
    return _t(input).transpose(dim0, dim1)


def permute(input, dims):
    return _t(input).permute(dims)


def squeeze(input, dim=None):
    return _t(input).squeeze(dim)


def unsqueeze(input, dim):
    return _t(input).unsqueeze(dim)


def matmul(input, other):
    return _t(input) @ other


mm = matmul


def bmm(input, mat2):
    return _t(input).bmm(mat2)


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    return _t(input).topk(k, dim, largest, sorted)


def sort(input, dim=-1, descending=False, stable=False):
    return _t(input).sort(dim, descending)


def argsort(input, dim=-1, descending=False, stable=False):
    return _t(input).argsort(dim, descending)


def cumsum(input, dim, *, dtype=None):
    return _t(input).cumsum(dim, dtype=dtype)


def gather(input, dim, index):
    return _t(input).gather(dim, index)


def index_select(input, dim, index):
    return _t(input).index_select(dim, index)


def masked_fill(input, mask, value):
    return _t(input).masked_fill(mask, value)


def split(tensor, split_size_or_sections, dim=0):
    return tensor.split(split_size_or_sections, dim)


def chunk(input, chunks, dim=0):
    return input.chunk(chunks, dim)


def softmax(input, dim, dtype=None):
    return _nn.softmax(_t(input) if dtype is None else _t(input).to(dtype=dtype), dim)


def log_softmax(input, dim, dtype=None):
    return _nn.log_softmax(_t(input) if dtype is None else _t(input).to(dtype=dtype), dim)


def sigmoid(input):
    return _nn.sigmoid(_t(input))


def tanh(input):
    return _nn.tanh(_t(input))


def relu(input):
    return _nn.relu(_t(input))


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input) -> bool:
    return input.is_floating_point()


def numel(input) -> int:
    return input.numel()


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    return bool(np.allclose(np.asarray(input), np.asarray(other), rtol, atol, equal_nan))


def equal(input, other) -> bool:
    return input.shape == other.shape and bool((input == other).all())
