"""Module, Parameter and the containers, with PyTorch's behaviour and state_dict keys."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from ..tensor import Tensor, _to_array


def as_host_array(value, what: str) -> np.ndarray:
    """A NumPy view or copy of a convnet/torch tensor, NumPy or CuPy array or nested list."""
    if isinstance(value, Tensor):
        value = value._data
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            import ml_dtypes

            return value.view(__import__("torch").int16).numpy().view(ml_dtypes.bfloat16)
        return value.numpy()
    if hasattr(value, "get") and type(value).__module__.startswith("cupy"):
        return value.get()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: cannot read {type(value).__name__} as an array ({exc})") \
            from None
    if arr.dtype.kind not in "biufV":
        raise TypeError(f"{what}: expected numbers, got an array of dtype {arr.dtype}")
    return arr


def convert_like(value, target: Tensor, what: str) -> np.ndarray:
    """``value`` as a new host array with ``target``'s shape and dtype, or a clear error."""
    arr = as_host_array(value, what)
    if tuple(arr.shape) != tuple(target.shape):
        raise ValueError(f"{what} has shape {tuple(arr.shape)} in the state dict but "
                         f"{tuple(target.shape)} in the model")
    try:
        return np.array(arr, dtype=target.dtype, copy=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: cannot convert {arr.dtype} to {target.dtype} ({exc})") \
            from None


def assign_into(target: Tensor, value: np.ndarray) -> None:
    """Copy ``value`` into ``target``'s existing storage when it can take it (same shape and
    dtype, writable), else rebind its array; the conversion was checked before. Either way
    the write bumps the version counter, as PyTorch's ``copy_`` does."""
    data = target._data
    if isinstance(data, np.ndarray) and data.flags.writeable and data.shape == value.shape \
            and data.dtype == value.dtype:
        data[...] = value
    elif type(data).__module__.startswith("cupy") and data.shape == value.shape:
        data[...] = _to_array(value, None, target.device)
    else:
        target._data = _to_array(value, None, target.device)
    target._vc[0] += 1


class Parameter(Tensor):
    """A tensor that a Module registers as trainable (requires_grad by default)."""

    def __init__(self, data, requires_grad: bool = True):
        # shares the storage of a tensor or array it is given, as PyTorch's does
        arr = data._data if isinstance(data, Tensor) else _to_array(data)
        super().__init__(arr, requires_grad=False)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """What ``register_*_hook`` returns: ``remove()`` (or leaving a ``with`` block)
    unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: OrderedDict, hook):
        self.hooks_dict = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1
        hooks[self.id] = hook

    def remove(self) -> None:
        self.hooks_dict.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class Module:
    """Base class of layers and models: holds parameters, buffers and sub-modules."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        if name in self._buffers and (value is None or (isinstance(value, Tensor)
                                                        and not isinstance(value, Parameter))):
            self._buffers[name] = value  # assigning to a buffer replaces it, as in PyTorch
            return
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Tensor | None, persistent: bool = True):
        """A non-trainable tensor saved in the state_dict (e.g. running statistics)."""
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(value)
        self.__dict__.pop(name, None)
        self._buffers[name] = value
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def register_parameter(self, name: str, param: Parameter | None):
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None):
        self._modules[name] = module

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", memo=None) -> Iterator[tuple[str, Module]]:
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        mods = self.named_modules() if recurse else [("", self)]
        for mod_name, m in mods:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                full = f"{mod_name}.{name}" if mod_name else name
                yield (f"{prefix}.{full}" if prefix else full), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self):
        for mod_name, m in self.named_modules():
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter, as for transfer learning."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad._data[...] = 0

    def to(self, *args, device=None, dtype=None, non_blocking=False) -> Module:
        """Move (in place) every parameter and buffer: ``to(device)``, ``to(dtype)``,
        ``to(device, dtype)`` or ``to(tensor)``; a dtype applies to the floating ones only
        (an integer buffer such as ``num_batches_tracked`` keeps its type), as PyTorch."""
        from .. import _dtypes

        for a in args:
            if a is None:
                continue
            if isinstance(a, Tensor):
                device, dtype = a.device, a.dtype
            elif _dtypes.is_dtype(a):
                dtype = a
            else:
                device = a
        if dtype is not None:
            dtype = _dtypes.as_dtype(dtype)
            if dtype not in _dtypes.FLOATING:
                raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got "
                                f"desired dtype={dtype}")
        for m in self.modules():
            for store in (m._parameters, m._buffers):
                for t in store.values():
                    if t is None:
                        continue
                    dt = dtype if t.dtype in _dtypes.FLOATING else None
                    moved = t.detach().to(device, dt)
                    t._data = moved._data
                    if t.grad is not None:
                        t.grad = t.grad.to(device, dt)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    def float(self) -> Module:
        return self.to(dtype=np.float32)

    def double(self) -> Module:
        return self.to(dtype=np.float64)

    def half(self) -> Module:
        return self.to(dtype=np.float16)

    def bfloat16(self) -> Module:
        from .. import _dtypes

        return self.to(dtype=_dtypes.bfloat16)

    def apply(self, fn) -> Module:
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict:
        """Parameters and persistent buffers under PyTorch's key names, as detached tensors
        on the same storage (as PyTorch's: copy them, e.g. ``v.clone()``, to keep a
        snapshot)."""
        out = OrderedDict()
        for mod_name, m in self.named_modules():
            skip = m.__dict__.get("_non_persistent", set())
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is None or name in skip:
                        continue
                    key = f"{mod_name}.{name}" if mod_name else name
                    out[key] = t.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays (NumPy, CuPy, convnet or torch tensors) into the parameters and buffers
        with matching keys.

        All or nothing: every value is converted to its target's dtype and checked against
        its shape into new arrays first; only when all succeeded are they copied into the
        parameters' existing storage (so that optimizers holding that storage see the new
        values). A failure raises before anything changed. With ``strict=False`` missing and
        unexpected keys are returned instead of raised, which is how part of a model (a
        pretrained body) is loaded.
        """
        incoming, report = self._checked_state(state_dict, strict)
        self._assign_state(incoming)
        return report

    def _checked_state(self, state_dict, strict: bool = True):
        """The converted values of :meth:`load_state_dict` and its key report, changing
        nothing; raises on the first fault."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict: expected a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        own = self._state_targets()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected}")
        incoming = {key: convert_like(state_dict[key], t, f"load_state_dict: {key}")
                    for key, t in own.items() if key in state_dict}
        return incoming, {"missing_keys": missing, "unexpected_keys": unexpected}

    def _assign_state(self, incoming: dict) -> None:
        own = self._state_targets()
        for key, value in incoming.items():
            assign_into(own[key], value)

    def _state_targets(self) -> OrderedDict:
        own = OrderedDict()
        for mod_name, m in self.named_modules():
            skip = m.__dict__.get("_non_persistent", set())
            for store in (m._parameters, m._buffers):
                for name, t in store.items():
                    if t is not None and name not in skip:
                        own[f"{mod_name}.{name}" if mod_name else name] = t
        return own

    # ------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):  # pragma: no cover - interface
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __call__(self, *args, **kwargs):
        pre = self.__dict__.get("_forward_pre_hooks")
        post = self.__dict__.get("_forward_hooks")
        if not pre and not post:
            return self.forward(*args, **kwargs)
        for hook in list(pre.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(post.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """``hook(module, args)`` runs before ``forward``; a non-None result replaces the
        positional arguments (a single value is wrapped in a tuple)."""
        return RemovableHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook) -> RemovableHandle:
        """``hook(module, args, output)`` runs after ``forward``; a non-None result
        replaces the output. ``handle.remove()`` unregisters it."""
        return RemovableHandle(self._forward_hooks, hook)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {sub}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


class _ModuleSequence(Module):
    """Sub-modules kept in order under the keys "0", "1", ...: indexing, len, iteration."""

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        return type(self)(*mods[idx]) if isinstance(idx, slice) else mods[idx]

    def __setitem__(self, idx, module):
        key = list(self._modules.keys())[idx]
        self._modules[key] = module

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(_ModuleSequence):
    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for m in modules:
                self.append(m)

    def forward(self, x):
        # Conv2d/Linear [+ BatchNorm2d in eval] + activation run fused (convnet.nn.fusion)
        from .fusion import sequential_forward

        return sequential_forward(list(self._modules.values()), x)


class ModuleList(_ModuleSequence):
    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        return ModuleList(mods[idx]) if isinstance(idx, slice) else mods[idx]

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self
