"""The autograd engine: Function nodes, the grad mode, and the backward pass.

A :class:`Function` subclass holds one op's ``forward`` and ``backward`` side by side.
``forward`` receives raw arrays (NumPy or CuPy) plus keyword parameters and returns an
array; ``backward`` receives the output's gradient and returns one gradient (or None) per
input. ``Function.apply`` wraps the result in a Tensor and records the node when a
gradient is needed. The graph is freed as the backward pass walks it, unless
``retain_graph=True``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tensor import Tensor

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


class _GradMode:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self.enabled

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def no_grad():
    """Context manager (or decorator) that records no graph, like ``torch.no_grad``."""
    return _GradMode(False)


def enable_grad():
    return _GradMode(True)


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward``."""

    def __init__(self):
        self.inputs: tuple[Tensor, ...] = ()
        self.saved: tuple = ()
        self.needs_grad: tuple[bool, ...] = ()
        self.freed = False

    def save_for_backward(self, *values):
        self.saved = values

    def forward(self, *arrays, **params):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        from .tensor import Tensor, as_tensor

        tensors = tuple(t if isinstance(t, Tensor) else as_tensor(t) for t in inputs)
        _check_devices(cls.__name__, tensors)
        fn = cls()
        fn.needs_grad = tuple(t.requires_grad for t in tensors)
        track = is_grad_enabled() and any(fn.needs_grad)
        out = fn.forward(*(t.data for t in tensors), **params)
        if not track:
            return Tensor._wrap(out, False)
        fn.inputs = tensors
        return Tensor._wrap(out, True, fn)


def _check_devices(op: str, tensors) -> None:
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(
            f"{op}: expected all tensors on one device, got {sorted(devices)} "
            "(move them with .to(device))"
        )


def backward(root: Tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf's ``.grad`` that requires it."""
    from .tensor import Tensor

    if not root.requires_grad:
        raise RuntimeError(
            "backward: the tensor does not require grad and has no graph "
            "(was it computed under no_grad, or from tensors without requires_grad?)"
        )
    xp = root._xp
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs, but the "
                f"output has shape {tuple(root.shape)}; pass a gradient of that shape"
            )
        grad = xp.ones_like(root.data)
    else:
        grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=root.dtype)
        if tuple(grad.shape) != tuple(root.shape):
            raise ValueError(
                f"backward: gradient shape {tuple(grad.shape)} differs from the output's "
                f"{tuple(root.shape)}"
            )

    # Topological order of the nodes reachable from root (iterative: deep graphs such as
    # long RNN unrolls must not hit Python's recursion limit).
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, done = stack.pop()
        if done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            if t._ctx.freed:
                raise RuntimeError(
                    "backward: trying to backward through the graph a second time; its "
                    "buffers were freed. Specify retain_graph=True on the first backward call"
                )
            # reversed: the first input (the activations) is explored first, so a layer's
            # parameters come right after it in the backward order and their gradients
            # are final as early as possible (DistributedDataParallel overlaps on that)
            for parent in reversed(t._ctx.inputs):
                if parent.requires_grad and id(parent) not in seen:
                    stack.append((parent, False))

    grads: dict[int, object] = {id(root): grad}
    for t in reversed(order):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        fn = t._ctx
        if fn is None:  # a leaf
            t._accumulate(g)
            for hook in getattr(t, "_post_accumulate_hooks", {}).values():
                hook(t)
            continue
        if t._retains_grad:
            t._accumulate(g)
        in_grads = fn.backward(g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for parent, need, pg in zip(fn.inputs, fn.needs_grad, in_grads, strict=False):
            if not need or pg is None:
                continue
            key = id(parent)
            if key in grads:
                grads[key] = grads[key] + pg
            else:
                grads[key] = pg
        if not retain_graph:
            fn.inputs = ()
            fn.saved = ()
            fn.freed = True
