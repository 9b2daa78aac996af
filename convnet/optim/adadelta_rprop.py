"""Adadelta (Zeiler 2012) and Rprop (Riedmiller & Braun 1993), PyTorch's formulas,
defaults and state names."""

from __future__ import annotations

from ..kernels._checks import xp_of
from .optimizer import Optimizer, _decay


class Adadelta(Optimizer):
    """Steps of RMS(previous steps) / RMS(gradients) * g, scaled by ``lr``."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"rho: expected a value in [0, 1], got {rho}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay))

    def _update(self, w, g, state, group):
        rho, eps = group["rho"], group["eps"]
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = w * 0
            state["acc_delta"] = w * 0
        state["step"] += 1
        g = _decay(w, g, group["weight_decay"])
        xp = xp_of(w)
        state["square_avg"] = rho * state["square_avg"] + (1 - rho) * g * g
        delta = xp.sqrt(state["acc_delta"] + eps) / xp.sqrt(state["square_avg"] + eps) * g
        state["acc_delta"] = rho * state["acc_delta"] + (1 - rho) * delta * delta
        w -= group["lr"] * delta  # w is the parameter's own array: updated in place
        return w


class Rprop(Optimizer):
    """Per-weight step sizes that grow by ``etas[1]`` while the gradient keeps its sign
    and shrink by ``etas[0]`` when it flips (that step is then skipped); only the sign of
    the gradient moves the weight."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50)):
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"etas: expected 0 < etaminus < 1 < etaplus, got {etas}")
        super().__init__(params, dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes)))

    def _update(self, w, g, state, group):
        xp = xp_of(w)
        eta_minus, eta_plus = group["etas"]
        lo, hi = group["step_sizes"]
        if "prev" not in state:
            state["step"] = 0
            state["prev"] = w * 0
            state["step_size"] = w * 0 + group["lr"]
        state["step"] += 1
        sign = xp.sign(g * state["prev"])
        factor = xp.where(sign > 0, eta_plus, xp.where(sign < 0, eta_minus, 1.0))
        state["step_size"] = xp.clip(state["step_size"] * factor, lo, hi).astype(w.dtype)
        g = xp.where(sign < 0, 0, g).astype(w.dtype)
        state["prev"] = g
        w -= xp.sign(g) * state["step_size"]
        return w
