"""``autocast``: mixed precision as in ``torch.amp``.

Inside an enabled region, each op of the policy tables (``convnet.amp._policy``) sees its
floating inputs cast first: the matrix products (conv, linear, matmul, the RNN GEMMs) to
the region's 16-bit dtype, the ops listed as "float32" to float32; every other op runs on
what it gets and NumPy's promotion decides (float32 with 16-bit gives float32). The casts
are differentiable, so a float32 weight gets its gradient in float32 (master weights).
float64 tensors are never cast, as in PyTorch.

The cast happens where the op's Function is applied (``autograd.Function.apply`` calls
:func:`_cast_inputs` while a region is active on any thread), or, for the ops made of
several Functions (the losses), in the wrapper :func:`float32_op`. Casts of leaf tensors
that require grad (the weights) are cached until the outermost region exits, as PyTorch
does, so a weight used by several layers or time steps is converted once.
"""

from __future__ import annotations

import functools
import threading
import warnings

from .. import _dtypes, autograd

_LOW = (_dtypes.float16, _dtypes.bfloat16)
_CASTABLE = (_dtypes.float16, _dtypes.bfloat16, _dtypes.float32)
_DEFAULT_DTYPE = {"cpu": _dtypes.bfloat16, "cuda": _dtypes.float16}

_tls = threading.local()
_lock = threading.Lock()
_active_regions = [0]  # enabled regions open on all threads: the hook is set while > 0


def _states() -> dict:
    """This thread's state per device type: [enabled, dtype, cache_enabled]."""
    st = getattr(_tls, "states", None)
    if st is None:
        st = _tls.states = {d: [False, _DEFAULT_DTYPE[d], True] for d in _DEFAULT_DTYPE}
        _tls.nesting = 0
        _tls.cache = {}
    return st


def _check_device_type(device_type) -> str:
    kind = str(getattr(device_type, "type", device_type))
    if kind not in _DEFAULT_DTYPE:
        raise ValueError(f"device_type: expected 'cpu' or 'cuda', got {device_type!r}")
    return kind


def is_autocast_enabled(device_type: str = "cuda") -> bool:
    """Whether autocast is on for ``device_type`` in this thread (``torch``'s function)."""
    return _states()[_check_device_type(device_type)][0]


def get_autocast_dtype(device_type: str) -> object:
    return _states()[_check_device_type(device_type)][1]


def is_autocast_available(device_type: str) -> bool:
    return str(device_type) in _DEFAULT_DTYPE


def clear_autocast_cache() -> None:
    _states()
    _tls.cache.clear()


class autocast:  # noqa: N801 - PyTorch's name
    """``with autocast("cpu"):`` or ``@autocast("cpu")``: run the region in mixed precision.

    device_type: 'cpu' or 'cuda'; dtype: the 16-bit type of the matrix products (bfloat16
    on the CPU, float16 on CUDA by default, as PyTorch); enabled=False turns autocast off
    inside an enabled region; cache_enabled: cache the casts of the weights for the region.
    """

    def __init__(self, device_type: str, dtype=None, enabled: bool = True,
                 cache_enabled: bool | None = None):
        self.device = _check_device_type(device_type)
        if dtype is None:
            dtype = _DEFAULT_DTYPE[self.device]
        dtype = _dtypes.as_dtype(dtype)
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled: expected a bool, got {enabled!r}")
        if dtype not in _LOW and enabled:  # PyTorch warns and turns the region off
            warnings.warn(f"In {self.device.upper()} autocast, but the target dtype is not "
                          f"supported (got {dtype}; bfloat16 and float16 are). Disabling "
                          f"autocast.", stacklevel=2)
            enabled = False
        self.fast_dtype = dtype
        self._enabled = enabled
        self._cache_enabled = True if cache_enabled is None else bool(cache_enabled)

    def __enter__(self):
        st = _states()[self.device]
        self._prev = list(st)
        st[:] = [self._enabled, self.fast_dtype, self._cache_enabled]
        _tls.nesting += 1
        if self._enabled:
            with _lock:
                _active_regions[0] += 1
                autograd._autocast_hook[0] = _cast_inputs
        return self

    def __exit__(self, *exc):
        _states()[self.device][:] = self._prev
        _tls.nesting -= 1
        if _tls.nesting == 0:  # the outermost region (enabled or not) drops the cache
            _tls.cache.clear()
        if self._enabled:
            with _lock:
                _active_regions[0] -= 1
                if _active_regions[0] == 0:
                    autograd._autocast_hook[0] = None
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)

        return wrapper


def _cast(t, dtype, cache: dict | None):
    """``t`` as ``dtype`` (differentiable); a cached copy for a weight when allowed."""
    if cache is None or not (t.requires_grad and t._ctx is None and t._base is None):
        return t.to(dtype=dtype)
    key = (id(t), dtype)
    hit = cache.get(key)
    # a hit is good while it is the same tensor at the same version and its cast node has
    # not been freed by a backward pass (the engine here refuses a freed node)
    if hit is not None and hit[0] is t and hit[1] == t._vc[0] and not (
            hit[2]._ctx is not None and hit[2]._ctx.freed):
        return hit[2]
    out = t.to(dtype=dtype)
    cache[key] = (t, t._vc[0], out)
    return out


def _target(policy: str, state) -> object:
    return state[1] if policy == "lower" else _dtypes.float32


def _cast_tensors(tensors, policy: str, state):
    dtype = _target(policy, state)
    cache = _tls.cache if (state[2] and policy == "lower" and autograd.is_grad_enabled()) \
        else None
    out = []
    for t in tensors:
        if hasattr(t, "_vc") and t.dtype in _CASTABLE and t.dtype != dtype:
            t = _cast(t, dtype, cache)
        out.append(t)
    return out


def _cast_inputs(cls, tensors):
    """The hook of ``Function.apply``: ``tensors`` cast as ``cls``'s policy says."""
    from ._policy import policy_of

    if not tensors:
        return tensors
    device = tensors[0].device.type
    state = _states()[device]
    if not state[0]:
        return tensors
    policy = policy_of(cls, device)
    if policy is None:
        return tensors
    return tuple(_cast_tensors(tensors, policy, state))


def float32_op(name: str):
    """Decorator for an op made of several Functions (a loss): in a region where the
    policy lists ``name`` as float32, its tensor arguments are cast to float32 and its
    inner ops run without autocast, as PyTorch runs an op below its autocast layer."""

    def wrap(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if autograd._autocast_hook[0] is None:
                return fn(*args, **kwargs)
            first = next((a for a in args if hasattr(a, "_vc")), None)
            if first is None:
                return fn(*args, **kwargs)
            device = first.device.type
            state = _states()[device]
            from ._policy import composite_policy

            policy = composite_policy(name, device)
            if not state[0] or policy is None:
                return fn(*args, **kwargs)
            args = _cast_tensors(args, policy, state)
            kwargs = dict(zip(kwargs, _cast_tensors(kwargs.values(), policy, state),
                              strict=True))
            with autocast(device, state[1], enabled=False):
                return fn(*args, **kwargs)

        return wrapper

    return wrap
