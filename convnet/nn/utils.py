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
        total = max(float(abs(p.grad._data).max()) for p in params)
    else:
        total = sum(float((abs(p.grad._data) ** norm_type).sum()) for p in params)
        total = total ** (1.0 / norm_type)
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad._data *= p.grad.dtype.type(scale)  # in place, as PyTorch's
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value]."""
    for p in _params(parameters):
        p._xp.clip(p.grad._data, -clip_value, clip_value, out=p.grad._data)


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


# --------------------------------------------------------------------------- truncated BPTT


def detach_state(state):
    """The recurrent state cut from the graph: a Tensor, a tuple/list of them (the LSTM's
    (h, c)) or None, detached alike. Carrying ``detach_state(h_n)`` into the next chunk of a
    long sequence is truncated backpropagation through time: the next backward stops here.
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"state: expected a Tensor, a tuple of Tensors or None, got "
                    f"{type(state).__name__}")


def tbptt_chunks(*sequences, k: int, dim: int = 0):
    """Consecutive chunks of ``k`` steps (the last may be shorter) cut along ``dim`` (the time
    axis: 0 for (T, B, F) tensors, 1 with batch_first) from tensors or arrays sharing that
    length; yields one tuple per chunk. The truncated-BPTT loop::

        state = None
        for x, y in tbptt_chunks(inputs, targets, k=20, dim=1):
            out, state = lstm(x, state)
            loss = loss_fn(head(out), y)
            opt.zero_grad(); loss.backward(); opt.step()
            state = detach_state(state)      # gradients flow back at most k steps

    (or ``stateful=True`` on the layer, which carries and detaches the state itself).
    """
    if not sequences:
        raise ValueError("sequences: give at least one tensor or array")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: expected a positive int (steps per chunk), got {k!r}")
    lengths = {s.shape[dim] for s in sequences}
    if len(lengths) != 1:
        raise ValueError(f"sequences: lengths along dim {dim} differ: {sorted(lengths)}")
    (length,) = lengths
    for start in range(0, length, k):
        cut = slice(start, start + k)
        yield tuple(s[(slice(None),) * (dim % s.ndim) + (cut,)] for s in sequences)
