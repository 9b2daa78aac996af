"""The autograd engine: Function nodes, the grad mode, and the backward pass.

A :class:`Function` subclass holds one op's ``forward`` and ``backward`` side by side.
``forward`` receives raw arrays (NumPy or CuPy) plus keyword parameters and returns an
array; ``backward`` receives the output's gradient and returns one gradient (or None) per
input. ``Function.apply`` wraps the result in a Tensor and records the node when a
gradient is needed. The graph is a graph of nodes, as PyTorch's: each node keeps one edge
per input (the node that produced it, the leaf tensor itself, or None), so that an
in-place op can give a tensor a new producer without rewiring the nodes that used its
earlier value. A node also remembers the version of every tensor it saved; backward
refuses to run on a saved value that an in-place op changed since. The graph is freed as
the backward pass walks it, unless ``retain_graph=True``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as _np

from .memory import track as _track

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


class set_grad_enabled:
    """Turn the graph recording on or off: a context manager, or a plain call that switches
    it for the thread, as ``torch.set_grad_enabled``."""

    def __init__(self, mode: bool):
        self.prev = is_grad_enabled()
        _state.enabled = bool(mode)

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False


class Function:
    """One differentiable op. Subclasses define ``forward`` and ``backward``.

    A view op (its output shares the input's memory) sets ``view = True`` and stores in
    ``self.read`` the map from its input array to its output, which in-place writes
    through the view replay on the base's gradient.
    """

    view = False
    # per-node state, set on the instance when it differs (no __init__: ops are hot)
    edges: tuple = ()
    saved: tuple = ()
    needs_grad: tuple = ()
    versions: tuple = ()
    retained = None
    freed = False
    out_dtype = None  # the output's dtype: backward receives its gradient in it

    def save_for_backward(self, *values):
        self.saved = values
        for v in values:  # counted by convnet.memory (a no-op for the tensors' own arrays)
            if isinstance(v, _np.ndarray):
                _track(v)

    def forward(self, *arrays, **params):  # pragma: no cover - interface
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        Tensor = _types[0]
        tensors = tuple([t if isinstance(t, Tensor) else _types[1](t) for t in inputs])
        if _autocast_hook[0] is not None:  # set only while an autocast region is open
            tensors = _autocast_hook[0](cls, tensors)
        if len(tensors) > 1:
            kind = type(tensors[0]._data)  # one array type: one device, no set to build
            for t in tensors:
                if type(t._data) is not kind:
                    _check_devices(cls.__name__, tensors)
                    break
        for t in tensors:
            if t._base is not None and t._vc[0] != t._view_v:
                refresh_view(t)
        fn = cls()
        fn.needs_grad = needs = tuple([t.requires_grad for t in tensors])
        out = fn.forward(*[t._data for t in tensors], **params)
        if isinstance(out, _np.generic):  # NumPy reductions give scalars: keep a 0-d array
            out = _np.asarray(out)
        if True in needs and is_grad_enabled():
            fn.out_dtype = out.dtype
            result = Tensor._wrap(out, True, fn)
            if cls.view:
                _share_view(fn, tensors[0], result)
            fn.connect(tensors, out, result)
            return result
        result = Tensor._wrap(out, False)
        if cls.view:
            _share_view(fn, tensors[0], result)
        return result

    def connect(self, tensors, out=None, result=None) -> None:
        """Record the edges to ``tensors``, and their versions (with the output's) for
        the check in backward, which looks at the saved values only when one changed."""
        self.edges = tuple([t._ctx if t._ctx is not None else (t if t.requires_grad else None)
                            for t in tensors])
        if self.saved:
            versions = [(t._vc, t._vc[0], id(t._data)) for t in tensors]
            if result is not None:
                versions.append((result._vc, result._vc[0], id(out)))
            self.versions = versions


# Tensor and as_tensor, bound by convnet.tensor once defined (autograd is imported first)
_types: list = [None, None]
# convnet.amp.autocast_mode._cast_inputs while an autocast region is open, else None
_autocast_hook: list = [None]


def _edge(t):
    """What a gradient for ``t`` flows into: its producer, itself (a leaf), or nothing."""
    if t._ctx is not None:
        return t._ctx
    return t if t.requires_grad else None


def refresh_view(t) -> None:
    """A view whose storage was written since its producer was recorded reads its base
    again (PyTorch regenerates a view's grad_fn the same way), so that its gradient goes
    through every in-place op that the base saw."""
    base = t._base
    if not base.requires_grad:
        t._view_v = t._vc[0]
    elif is_grad_enabled():  # (under no_grad it stays stale until used with grad)
        t._view_v = t._vc[0]
        from .functional._inplace import ReadView

        node = ReadView()
        node.read = t._view_fn
        node.needs_grad = (True,)
        node.saved = (base.shape,)
        node.edges = (_edge(base),)
        t._ctx = node
        t.requires_grad = True


def _share_view(fn, src, result) -> None:
    """``result`` is a view of ``src`` when their memory overlaps: it then shares the
    version counter, and remembers its base and how to read itself out of it."""
    xp = src._xp
    if not xp.may_share_memory(result._data, src._data):
        return
    result._vc = src._vc
    result._view_v = src._vc[0]
    read = fn.read
    prev = src._view_fn
    result._base = src if src._base is None else src._base
    result._view_fn = read if prev is None else (lambda a: read(prev(a)))


def _check_devices(op: str, tensors) -> None:
    if len(tensors) < 2:
        return
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(
            f"{op}: expected all tensors on one device, got {sorted(devices)} "
            "(move them with .to(device))"
        )


def _check_versions(fn) -> None:
    for vc, expected, key in fn.versions:
        if vc[0] == expected:
            continue
        for arr in fn.saved:  # changed: an error only if backward needs that value
            if id(arr) == key:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: [{arr.dtype} tensor of shape "
                    f"{list(arr.shape)}], which is used by {type(fn).__name__}Backward, is "
                    f"at version {vc[0]}; expected version {expected} instead. Hint: the "
                    "computation of the gradient needs the value the tensor had when it was "
                    "used; compute on a .clone() or make the operation out of place."
                )


def backward(root: Tensor, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) into every leaf's ``.grad`` that requires it."""
    Tensor = _types[0]  # noqa: N806 - bound by convnet.tensor; no import on this hot path

    if not root.requires_grad:
        raise RuntimeError(
            "element 0 of tensors does not require grad and does not have a grad_fn "
            "(was it computed under no_grad, or from tensors without requires_grad?)"
        )
    xp = root._xp
    if grad is None:
        if root._data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs, but the "
                f"output has shape {tuple(root.shape)}; pass a gradient of that shape"
            )
        grad = xp.ones_like(root._data)
    else:
        grad = grad._data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=root.dtype)
        if tuple(grad.shape) != tuple(root.shape):
            raise ValueError(
                f"backward: gradient shape {tuple(grad.shape)} differs from the output's "
                f"{tuple(root.shape)}"
            )
    start = root._ctx
    if start is None:  # a leaf: its gradient is the seed itself
        root._accumulate(grad)
        for hook in getattr(root, "_post_accumulate_hooks", {}).values():
            hook(root)
        return

    # Topological order of the nodes reachable from root (iterative: deep graphs such as
    # long RNN unrolls must not hit Python's recursion limit). Nodes are their own keys
    # (identity hashing); leaves are Tensors, which hash by id() in the dicts below.
    order: list[Function] = []
    seen: set = set()
    stack: list[tuple[Function, bool]] = [(start, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        if node.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access "
                "saved tensors after they have already been freed). Specify "
                "retain_graph=True on the first backward call"
            )
        stack.append((node, True))
        # reversed: the first input (the activations) is explored first, so a layer's
        # parameters come right after it in the backward order and their gradients are
        # final as early as possible (DistributedDataParallel overlaps on that)
        for e in reversed(node.edges):
            if e is not None and not isinstance(e, Tensor) and e not in seen:
                stack.append((e, False))

    # A leaf's gradient is final once every node with an edge to it has run: it is
    # accumulated (and its post-accumulate hooks fire) right then, not after the whole pass.
    pending: dict[int, int] = {}
    for node in order:
        for e in node.edges:
            if isinstance(e, Tensor):
                pending[id(e)] = pending.get(id(e), 0) + 1
    grads: dict = {start: grad}  # keyed by node, or by id() for a leaf
    for node in reversed(order):
        g = grads.pop(node, None)
        if g is None:
            _release_leaves(node, pending, grads)
            continue
        if node.versions:
            _check_versions(node)
        if node.out_dtype is not None and g.dtype != node.out_dtype:
            g = g.astype(node.out_dtype)  # (a float32 gradient reaching a 16-bit output)
        if node.retained is not None:
            node.retained._accumulate(g)
        in_grads = node.backward(g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        for edge, pg in zip(node.edges, in_grads, strict=False):
            if edge is None or pg is None:
                continue
            _track(pg)
            key = id(edge) if isinstance(edge, Tensor) else edge
            prev = grads.get(key)
            grads[key] = pg if prev is None else prev + pg
        _release_leaves(node, pending, grads)
        if not retain_graph:
            node.edges = ()
            node.saved = ()
            node.freed = True


def _release_leaves(node: Function, pending: dict, grads: dict) -> None:
    """Count ``node``'s edges to leaves as done; accumulate each leaf whose last one it was."""
    Tensor = _types[0]  # noqa: N806 - bound by convnet.tensor; no import on this hot path

    # reversed: a layer's later parameters (the bias) are final first, in the reverse of
    # registration order that DistributedDataParallel's buckets follow
    for edge in reversed(node.edges):
        if not isinstance(edge, Tensor):
            continue
        key = id(edge)
        pending[key] -= 1
        if pending[key] == 0 and key in grads:
            edge._accumulate(grads.pop(key))
            for hook in getattr(edge, "_post_accumulate_hooks", {}).values():
                hook(edge)
