"""Optimizers with PyTorch's update formulas, defaults and state_dict layout."""

from __future__ import annotations

import copy
import math

import numpy as np

from .. import _dtypes
from ..tensor import Tensor

_SIXTEEN = (_dtypes.float16, _dtypes.bfloat16)


class Optimizer:
    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict] = []
        self.state: dict[int, dict] = {}
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict) -> None:
        group = dict(group)
        ps = group["params"]
        group["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"params: expected tensors, got {type(p).__name__}")
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        lr = group["lr"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0.0 <= lr:
            # not 0 <= lr also refuses nan, as PyTorch does ("Invalid learning rate")
            raise ValueError(f"lr: expected a non-negative learning rate, got {lr!r}")
        group.setdefault("initial_lr", group["lr"])
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad._data[...] = 0

    def _params_with_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    yield g, p, self.state.setdefault(id(p), {})

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group, p, state in self._params_with_grad():
            grad = p.grad._data
            if p.dtype in _SIXTEEN:
                # a 16-bit parameter steps in float32 (its state too) and is rounded once:
                # in 16-bit arithmetic Adam's eps and (1 - beta2) g^2 underflow to zero
                p._data[...] = self._update(p._data.astype(np.float32),
                                            grad.astype(np.float32), state, group)
                p._vc[0] += 1
                continue
            if grad.dtype != p.dtype:
                grad = grad.astype(p.dtype)
            # in place: views of the weights (.numpy(), .data, state_dict()) see the step;
            # the optimizers here write into w; one that returns a new array is copied in
            new = self._update(p._data, grad, state, group)
            if new is not p._data:
                p._data[...] = new
            p._vc[0] += 1
        return loss

    def _update(self, w, g, state, group):  # pragma: no cover - interface
        """The new weights for ``w`` (the parameter's own array: updating it in place and
        returning it saves a copy)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """{'state': {index: {name: array|number}}, 'param_groups': [...]} as in PyTorch."""
        index = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[k]: {n: (v.copy() if hasattr(v, "copy") else v) for n, v in s.items()}
                 for k, s in self.state.items() if k in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and per-parameter state saved by :meth:`state_dict`.

        All or nothing: the whole state dict is checked (group count and sizes, the same
        optimizer's hyperparameters, a finite non-negative lr, state arrays shaped like their
        parameters and converted to their dtype and device) into new objects, which replace
        the current ones only when everything passed; otherwise a ValueError/TypeError
        names the fault and the optimizer is unchanged.
        """
        groups, state = _checked_state(self, state_dict)
        self.param_groups, self.state = groups, state


def _checked_state(opt: Optimizer, state_dict) -> tuple[list[dict], dict]:
    from ..nn.module import as_host_array

    what = "optimizer load_state_dict"
    if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
        raise ValueError(f"{what}: expected a dict with 'state' and 'param_groups', got "
                         f"{_describe(state_dict)}")
    saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
    if not isinstance(saved_groups, (list, tuple)) or not isinstance(saved_state, dict):
        raise ValueError(f"{what}: 'param_groups' must be a list and 'state' a dict")
    if len(saved_groups) != len(opt.param_groups):
        raise ValueError(f"{what}: the saved state has {len(saved_groups)} parameter groups, "
                         f"this optimizer {len(opt.param_groups)}")
    by_index, groups = {}, []
    for i, (mine, theirs) in enumerate(zip(opt.param_groups, saved_groups)):
        if not isinstance(theirs, dict) or not isinstance(theirs.get("params"), (list, tuple)):
            raise ValueError(f"{what}: parameter group {i} is not a dict with 'params'")
        if len(mine["params"]) != len(theirs["params"]):
            raise ValueError(f"{what}: parameter group {i} has {len(theirs['params'])} "
                             f"parameters saved, {len(mine['params'])} here")
        absent = sorted(set(opt.defaults) - set(theirs))
        if absent:
            raise ValueError(f"{what}: parameter group {i} lacks {absent}: saved by another "
                             f"optimizer than {type(opt).__name__}?")
        lr = theirs["lr"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < math.inf:
            raise ValueError(f"{what}: parameter group {i} has lr {lr!r}; expected a finite "
                             "number >= 0")
        for idx, p in zip(theirs["params"], mine["params"]):
            if isinstance(idx, bool) or not isinstance(idx, int) or idx in by_index:
                raise ValueError(f"{what}: bad or repeated parameter index {idx!r}")
            by_index[idx] = p
        group = {k: copy.deepcopy(v) for k, v in theirs.items() if k != "params"}
        group["params"] = mine["params"]
        groups.append(group)
    state = {}
    for key, entry in saved_state.items():
        try:
            idx = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: state key {key!r} is not a parameter index") from None
        if idx not in by_index or not isinstance(entry, dict):
            raise ValueError(f"{what}: state entry {key!r} names no parameter of the groups")
        p = by_index[idx]
        new = {}
        for name, v in entry.items():
            if isinstance(v, (bool, int, float)) or v is None:
                new[name] = v
                continue
            arr = as_host_array(v, f"{what}: state[{key}][{name!r}]")
            if arr.ndim == 0:  # a scalar saved as a 0-d array (a step count, a product)
                new[name] = arr.item()
                continue
            if tuple(arr.shape) != tuple(p.shape):
                raise ValueError(f"{what}: state[{key}][{name!r}] has shape "
                                 f"{tuple(arr.shape)}, its parameter {tuple(p.shape)}")
            new[name] = p._xp.asarray(np.array(arr, dtype=p.dtype))
        state[id(p)] = new
    return groups, state


def _describe(obj) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {sorted(map(str, obj))[:6]}"
    return f"a {type(obj).__name__}"


def _decay(w, g, wd):
    return g + wd * w if wd else g


class SGD(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum and weight decay."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, w, g, state, group):
        g = _decay(w, g, group["weight_decay"])
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            buf = g.copy() if buf is None else mu * buf + (1 - group["dampening"]) * g
            state["momentum_buffer"] = buf
            g = g + mu * buf if group["nesterov"] else buf
        w -= group["lr"] * g
        return w


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps))

    def _update(self, w, g, state, group):
        if "sum" not in state:
            state["step"] = 0
            state["sum"] = w * 0 + group["initial_accumulator_value"]
        state["step"] += 1
        g = _decay(w, g, group["weight_decay"])
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        state["sum"] = state["sum"] + g * g
        w -= clr * g / (state["sum"] ** 0.5 + group["eps"])
        return w


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, w, g, state, group):
        a = group["alpha"]
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = w * 0
            if group["momentum"]:
                state["momentum_buffer"] = w * 0
            if group["centered"]:
                state["grad_avg"] = w * 0
        state["step"] += 1
        g = _decay(w, g, group["weight_decay"])
        state["square_avg"] = a * state["square_avg"] + (1 - a) * g * g
        if group["centered"]:
            state["grad_avg"] = a * state["grad_avg"] + (1 - a) * g
            avg = (state["square_avg"] - state["grad_avg"] ** 2) ** 0.5 + group["eps"]
        else:
            avg = state["square_avg"] ** 0.5 + group["eps"]
        if group["momentum"]:
            state["momentum_buffer"] = group["momentum"] * state["momentum_buffer"] + g / avg
            w -= group["lr"] * state["momentum_buffer"]
            return w
        w -= group["lr"] * g / avg
        return w


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        for b in betas:
            if not 0.0 <= b < 1.0:
                raise ValueError(f"betas: expected values in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

    _decoupled = False

    def _update(self, w, g, state, group):
        b1, b2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = w * 0
            state["exp_avg_sq"] = w * 0
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = w * 0
        state["step"] += 1
        t = state["step"]
        if self._decoupled:
            w *= 1 - lr * wd
        else:
            g = _decay(w, g, wd)
        state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
        state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
        v = state["exp_avg_sq"]
        if group["amsgrad"]:
            xp = np if isinstance(w, np.ndarray) else __import__("cupy")
            state["max_exp_avg_sq"] = xp.maximum(state["max_exp_avg_sq"], v)
            v = state["max_exp_avg_sq"]
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        denom = v**0.5 / math.sqrt(bc2) + group["eps"]
        w -= (lr / bc1) * state["exp_avg"] / denom
        return w


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class NAdam(Optimizer):
    """Adam with Nesterov momentum (Dozat), PyTorch's momentum-decay schedule."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, momentum_decay=momentum_decay))

    def _update(self, w, g, state, group):
        b1, b2 = group["betas"]
        if "exp_avg" not in state:
            state["step"] = 0
            state["mu_product"] = 1.0
            state["exp_avg"] = w * 0
            state["exp_avg_sq"] = w * 0
        state["step"] += 1
        t = state["step"]
        g = _decay(w, g, group["weight_decay"])
        psi = group["momentum_decay"]
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["mu_product"] *= mu
        mp = state["mu_product"]
        state["exp_avg"] = b1 * state["exp_avg"] + (1 - b1) * g
        state["exp_avg_sq"] = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
        denom = (state["exp_avg_sq"] / (1 - b2**t)) ** 0.5 + group["eps"]
        lr = group["lr"]
        w -= lr * (1 - mu) / (1 - mp) * g / denom
        w -= lr * mu_next / (1 - mp * mu_next) * state["exp_avg"] / denom
        return w


Nadam = NAdam
