"""Gradient clipping and weight penalties."""

from __future__ import annotations

import math

from ..tensor import Tensor


def _params(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so their global norm is at most ``max_norm``;
    returns the norm before clipping (as PyTorch)."""
    params = _params(parameters)
    if not params:
        return 0.0
    if norm_type == math.inf:
        total = max(float(abs(p.grad.data).max()) for p in params)
    else:
        total = sum(float((abs(p.grad.data) ** norm_type).sum()) for p in params)
        total = total ** (1.0 / norm_type)
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad.data = p.grad.data * p.grad.dtype.type(scale)
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value]."""
    for p in _params(parameters):
        p.grad.data = p._xp.clip(p.grad.data, -clip_value, clip_value)


def l1_penalty(parameters, weight: float = 1.0) -> Tensor:
    """weight * sum |w| over the parameters, as a differentiable scalar to add to a loss."""
    params = list(parameters)
    total = params[0].abs().sum()
    for p in params[1:]:
        total = total + p.abs().sum()
    return total * weight


def l2_penalty(parameters, weight: float = 1.0) -> Tensor:
    """weight * sum w^2 over the parameters (an explicit l2 term, unlike weight decay)."""
    params = list(parameters)
    total = (params[0] * params[0]).sum()
    for p in params[1:]:
        total = total + (p * p).sum()
    return total * weight
