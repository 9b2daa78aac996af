"""Losses with ``torch.nn.functional``'s options: class weights, ``ignore_index``,
label smoothing and probability targets for cross-entropy; ``pos_weight`` for BCE with
logits; Huber, smooth L1 and KL divergence; ``one_hot``.

The per-element losses are Functions (forward and backward side by side) or short
compositions of differentiable ops; the weighted means divide by the summed weights of
the counted targets, as PyTorch does.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..amp.autocast_mode import float32_op
from ..autograd import Function
from ..kernels._checks import xp_of
from ..tensor import Tensor
from ._nn import log_softmax

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "one_hot"]


class TargetIndexError(IndexError, ValueError):
    """A class index outside [0, C): PyTorch raises IndexError; a ValueError too, being
    bad input (as NumPy's AxisError is both)."""


class InputRangeError(RuntimeError, ValueError):
    """Probabilities outside [0, 1]: PyTorch raises RuntimeError; a ValueError too."""


_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, allowed=_REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"reduction: expected one of {', '.join(map(repr, allowed))}, got "
                         f"{reduction!r}")


def _reduce(loss, reduction):
    _check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _array(v, like: Tensor, dtype=None):
    """``v`` (Tensor, array or sequence) as an array on ``like``'s device."""
    if v is None:
        return None
    data = v._data if isinstance(v, Tensor) else v
    return like._xp.asarray(data, dtype=dtype if dtype is not None else like.dtype)


def _const(v, like: Tensor) -> Tensor:
    """``v`` as a tensor of ``like``'s dtype (a tensor is cast differentiably)."""
    if isinstance(v, Tensor):
        return v if v.dtype == like.dtype else v.to(dtype=like.dtype)
    return Tensor._wrap(_array(v, like), False)


# --------------------------------------------------------------------------- class targets


class NLLLoss(Function):
    """loss_i = -w[y_i] * logp[i, y_i] on (M, C) log-probabilities; ignored targets give 0."""

    def forward(self, logp, labels=None, weight=None, keep=None):
        xp = xp_of(logp)
        rows = xp.arange(logp.shape[0])
        safe = labels if keep is None else xp.where(keep, labels, 0)
        coef = None if weight is None else weight[safe]
        if keep is not None:
            coef = keep.astype(logp.dtype) if coef is None else coef * keep
        self.save_for_backward(logp.shape, rows, safe, coef)
        picked = logp[rows, safe]
        return -picked if coef is None else -coef * picked

    def backward(self, g):
        shape, rows, safe, coef = self.saved
        out = xp_of(g).zeros(shape, dtype=g.dtype)
        out[rows, safe] = -g if coef is None else -g * coef
        return out


def _class_last(input):
    """(N, C, d1, ...) -> (N*d1*..., C), as PyTorch's losses accept spatial inputs."""
    if input.ndim > 2:
        perm = (0,) + tuple(range(2, input.ndim)) + (1,)
        return input.permute(*perm).reshape(-1, input.shape[1])
    return input


def _labels(target, input, ignore_index):
    """Integer labels, flat, checked against the C classes (ignore_index allowed)."""
    labels = target._data if isinstance(target, Tensor) else input._xp.asarray(target)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"target: expected integer class labels (or probabilities with the "
                        f"input's shape {input.shape}), got dtype {labels.dtype} and shape "
                        f"{tuple(labels.shape)}")
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if tuple(labels.shape) != expected:
        raise ValueError(f"target: expected shape {expected} for input of shape {input.shape}, "
                         f"got {tuple(labels.shape)}")
    labels = labels.reshape(-1)
    if not labels.size or (int(labels.min()) >= 0 and int(labels.max()) < c):
        return labels
    counted = labels[labels != ignore_index]
    if counted.size and (int(counted.min()) < 0 or int(counted.max()) >= c):
        raise TargetIndexError(f"target: labels must be in [0, {c}) (or ignore_index="
                               f"{ignore_index}), got values in [{int(counted.min())}, "
                               f"{int(counted.max())}]")
    return labels


def _nll(logp2d, labels, weight, ignore_index, reduction, out_shape):
    """The weighted, masked NLL of flat (M, C) log-probs and its PyTorch reduction."""
    xp = logp2d._xp
    keep = labels != ignore_index
    all_kept = bool(keep.all())
    w = _array(weight, logp2d)
    loss = NLLLoss.apply(logp2d, labels=labels, weight=w, keep=None if all_kept else keep)
    if reduction == "none":
        return loss.reshape(out_shape)
    if reduction == "sum":
        return loss.sum()
    if w is None and all_kept:
        return loss.mean()
    safe = xp.where(keep, labels, 0)
    denom = keep.astype(logp2d.dtype) if w is None else w[safe] * keep
    return loss.sum() / Tensor._wrap(denom.sum(), False)


def _out_shape(input):
    return () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]


def _batched(input):
    """An unbatched (C,) input as (1, C)."""
    return input.reshape(1, -1) if input.ndim == 1 else input


@float32_op("nll_loss")
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities input (N, C[, d...]) or (C,) and
    integer targets (N[, d...]) or (); ``weight`` (C,) rescales each class, targets equal
    to ``ignore_index`` count for nothing (also not in the mean's denominator)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    labels = _labels(target, input, ignore_index)
    logp = _class_last(_batched(input))
    return _nll(logp, labels, weight, ignore_index, reduction, _out_shape(input))


@float32_op("cross_entropy")
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy of logits (N, C[, d...]) or (C,) with integer class targets
    or class probabilities (a float target of the input's shape), PyTorch's options."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if input.ndim < 1:
        raise ValueError(f"input: expected logits (C,), (N, C) or (N, C, d...), got shape "
                         f"{input.shape}")
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: expected a value in [0, 1], got "
                         f"{label_smoothing!r}")
    c = input.shape[0] if input.ndim == 1 else input.shape[1]
    logp = log_softmax(_class_last(_batched(input)), 1)
    w = None if weight is None else _const(weight, input).reshape(1, c)
    tdata = target._data if isinstance(target, Tensor) else np.asarray(target)
    if tdata.dtype.kind == "f" and tuple(tdata.shape) == input.shape:
        probs = _class_last(_batched(_const(target, input)))
        if label_smoothing:
            probs = probs * (1 - label_smoothing) + label_smoothing / c
        term = logp * probs if w is None else logp * w * probs
        loss = -term.sum(dim=1)
        if reduction == "none":
            return loss.reshape(_out_shape(input))
        return loss.sum() if reduction == "sum" else loss.mean()
    labels = _labels(target, input, ignore_index)
    nll = _nll(logp, labels, weight, ignore_index, reduction, _out_shape(input))
    if not label_smoothing:
        return nll
    keep = labels != ignore_index
    keep_t = Tensor._wrap(keep.astype(input.dtype), False)
    smooth = -(logp if w is None else logp * w).sum(dim=1) * keep_t
    if reduction == "none":
        smooth = smooth.reshape(_out_shape(input))
    elif reduction == "sum":
        smooth = smooth.sum()
    else:
        if weight is None:
            denom = keep.sum()
        else:
            denom = _array(weight, input)[labels[keep]].sum()
        smooth = smooth.sum() / Tensor._wrap(input._xp.asarray(denom, input.dtype), False)
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / c)


def _legacy_reduction(size_average, reduce, reduction):
    """PyTorch's deprecated size_average/reduce flags mapped to ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


# --------------------------------------------------------------------------- regression


def _same_shape(input, target, name):
    target = _const(target, input)
    if target.shape != input.shape:
        raise ValueError(f"{name}: target shape {target.shape} differs from input shape "
                         f"{input.shape}")
    return target


@float32_op("mse_loss")
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    target = _same_shape(input, target, "mse_loss")
    diff = input - target
    return _reduce(diff * diff, _legacy_reduction(size_average, reduce, reduction))


@float32_op("l1_loss")
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    target = _same_shape(input, target, "l1_loss")
    return _reduce((input - target).abs(), _legacy_reduction(size_average, reduce, reduction))


class Huber(Function):
    """0.5 d^2 where |d| < delta, else delta * (|d| - 0.5 delta), for d = a - b."""

    def forward(self, a, b, delta=1.0):
        xp = xp_of(a)
        d = a - b
        ad = xp.abs(d)
        small = ad < delta
        self.save_for_backward(d, small, delta)
        return xp.where(small, 0.5 * d * d, delta * (ad - 0.5 * delta)).astype(a.dtype)

    def backward(self, g):
        d, small, delta = self.saved
        xp = xp_of(g)
        gd = g * xp.where(small, d, delta * xp.sign(d)).astype(g.dtype)
        return gd, (-gd if self.needs_grad[1] else None)


@float32_op("huber_loss")
def huber_loss(input, target, reduction="mean", delta=1.0):
    if not delta > 0:
        raise ValueError(f"delta: huber_loss needs delta > 0, got {delta!r}")
    target = _same_shape(input, target, "huber_loss")
    return _reduce(Huber.apply(input, target, delta=float(delta)), reduction)


@float32_op("smooth_l1_loss")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean",
                   beta=1.0):
    """Huber loss divided by ``beta`` (L1 when ``beta`` is 0)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"beta: smooth_l1_loss does not support negative values, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    target = _same_shape(input, target, "smooth_l1_loss")
    return _reduce(Huber.apply(input, target, delta=float(beta)) * (1.0 / beta), reduction)


# --------------------------------------------------------------------------- binary


class BCEWithLogits(Function):
    """(1 - t) z + (1 + (pw - 1) t) * softplus(-z), the stable form with a positive weight."""

    def forward(self, z, t, pos_weight=None):
        xp = xp_of(z)
        sp = xp.maximum(-z, 0) + xp.log1p(xp.exp(-xp.abs(z)))  # softplus(-z), no overflow
        lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        self.save_for_backward(z, t, sp, lw, pos_weight)
        return ((1 - t) * z + lw * sp).astype(z.dtype, copy=False)

    def backward(self, g):
        z, t, sp, lw, pw = self.saved
        xp = xp_of(z)
        e = xp.exp(-xp.abs(z))
        sig = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
        dz = g * ((1 - t) + lw * (sig - 1))
        dt = None
        if self.needs_grad[1]:
            dt = g * (-z + (0 if pw is None else (pw - 1) * sp))
        return dz.astype(z.dtype, copy=False), dt


@float32_op("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction="mean", pos_weight=None):
    """BCE of sigmoid(input) without forming it; ``weight`` scales each element
    (broadcast), ``pos_weight`` the positive term of each class (broadcast over the last
    dimension)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    target = _same_shape(input, target, "binary_cross_entropy_with_logits")
    loss = BCEWithLogits.apply(input, target, pos_weight=_array(pos_weight, input))
    if weight is not None:
        loss = loss * _const(weight, input)
    return _reduce(loss, reduction)


@float32_op("binary_cross_entropy")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """BCE on probabilities; the logs are clamped at -100 as in PyTorch."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    target = _same_shape(input, target, "binary_cross_entropy")
    data = input._data
    if data.size and (float(data.min()) < 0 or float(data.max()) > 1):
        raise InputRangeError("binary_cross_entropy: input must hold probabilities in [0, 1] "
                              "(use binary_cross_entropy_with_logits for logits)")
    log_p = input.log().clip(min=-100)
    log_q = (1 - input).log().clip(min=-100)
    loss = -(target * log_p + (1 - target) * log_q)
    if weight is not None:
        loss = loss * _const(weight, input)
    return _reduce(loss, reduction)


# --------------------------------------------------------------------------- KL


class KLDiv(Function):
    """target * (log target - input), 0 where target is 0 (or exp(t) (t - input) for a
    log-space target)."""

    def forward(self, x, t, log_target=False):
        xp = xp_of(x)
        if log_target:
            out = xp.exp(t) * (t - x)
        else:
            pos = t > 0
            out = xp.where(pos, t * xp.log(xp.where(pos, t, 1)), 0) - t * x
        self.save_for_backward(x, t, log_target)
        return out.astype(x.dtype, copy=False)

    def backward(self, g):
        x, t, log_target = self.saved
        xp = xp_of(x)
        if log_target:
            et = xp.exp(t)
            return -g * et, (g * et * (t - x + 1) if self.needs_grad[1] else None)
        dt = None
        if self.needs_grad[1]:
            pos = t > 0
            dt = g * (xp.where(pos, xp.log(xp.where(pos, t, 1)) + 1, 0) - x)
        return -g * t, dt


@float32_op("kl_div")
def kl_div(input, target, size_average=None, reduce=None, reduction="mean",
           log_target=False):
    """KL(target || exp(input)) per element; ``input`` holds log-probabilities.
    ``reduction="batchmean"`` divides the sum by the batch size (the true KL);
    ``"mean"`` divides by the number of elements, as PyTorch does."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, _REDUCTIONS + ("batchmean",))
    target = _same_shape(input, target, "kl_div")
    loss = KLDiv.apply(input, target, log_target=bool(log_target))
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


# --------------------------------------------------------------------------- one_hot


def one_hot(tensor, num_classes=-1):
    """(..., ) integer classes -> (..., num_classes) int64 zeros and ones."""
    labels = tensor._data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if labels.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot: tensor must hold integer class indices (int64), got "
                           f"dtype {labels.dtype}")
    xp = xp_of(labels)
    if num_classes == -1:
        if labels.size == 0:
            raise RuntimeError("one_hot: can not infer total number of classes from empty "
                               "tensor")
        num_classes = int(labels.max()) + 1
    if labels.size and int(labels.min()) < 0:
        raise RuntimeError("one_hot: Class values must be non-negative.")
    if labels.size and int(labels.max()) >= num_classes:
        raise RuntimeError(f"one_hot: Class values must be smaller than num_classes "
                           f"({num_classes}), got {int(labels.max())}.")
    out = (labels[..., None] == xp.arange(num_classes)).astype(np.int64)
    return Tensor._wrap(out, False)
