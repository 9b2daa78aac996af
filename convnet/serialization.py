"""``save``/``load``: checkpoints in the safetensors format, never pickle.

Any nesting of dicts, lists and tuples holding arrays, tensors, numbers, strings, bools and
None is stored: the arrays as safetensors tensors, the structure as JSON in the file's
metadata. Loading parses JSON and raw tensor bytes only, so it never executes code. Files
are written to a temporary file in the same folder and renamed over the target, so a crash
mid-write never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import numbers
import os

import numpy as np

from ._io import atomic_write_bytes
from .tensor import Tensor

_META_KEY = "convnet.structure"


def _encode(obj, arrays: dict):
    if isinstance(obj, Tensor):
        obj = obj._data
    if hasattr(obj, "get") and type(obj).__module__.startswith("cupy"):
        obj = obj.get()
    if isinstance(obj, np.ndarray):
        key = f"t{len(arrays)}"
        arrays[key] = np.ascontiguousarray(obj)
        # safetensors stores a 0-d array as shape (1,); the node remembers it was a scalar
        return {"__array__": key, "0d": True} if obj.ndim == 0 else {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, str, numbers.Number)):
        return obj
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__" if isinstance(obj, list) else "__tuple__":
                [_encode(v, arrays) for v in obj]}
    raise TypeError(f"save: cannot store a {type(obj).__name__} (only arrays, tensors, "
                    "numbers, strings, bools, None and dicts/lists/tuples of them)")


def _decode(node, arrays: dict):
    if isinstance(node, dict):
        if "__array__" in node:
            array = arrays[node["__array__"]]
            return array.reshape(()) if node.get("0d") else array
        if "__dict__" in node:
            return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in node["__dict__"]}
        if "__list__" in node:
            return [_decode(v, arrays) for v in node["__list__"]]
        if "__tuple__" in node:
            return tuple(_decode(v, arrays) for v in node["__tuple__"])
        raise ValueError("load: unknown node in the checkpoint structure")
    return node


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


def save(obj, path) -> None:
    """Write ``obj`` (e.g. ``{"model": model.state_dict(), "optimizer": opt.state_dict(),
    "epoch": 3}``) to ``path`` atomically."""
    from safetensors.numpy import save as st_save

    arrays: dict[str, np.ndarray] = {}
    structure = _encode(obj, arrays)
    blob = st_save(arrays, metadata={_META_KEY: json.dumps(structure)})
    atomic_write_bytes(path, blob)


def load(path):
    """Read a checkpoint written by :func:`save` (arrays come back as NumPy arrays).

    A plain safetensors file (e.g. PyTorch weights exported with safetensors) loads as a
    flat ``{name: array}`` dict. A corrupt or truncated file raises ValueError.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    path = os.fspath(path)
    with open(path, "rb") as f:
        blob = f.read()
    try:
        arrays = st_load(blob)
        meta = _metadata(blob)
    except (SafetensorError, ValueError, OverflowError) as exc:
        raise ValueError(f"load: {path} is not a valid checkpoint (corrupt or truncated "
                         f"safetensors file: {exc})") from exc
    if _META_KEY not in meta:
        return arrays
    try:
        structure = json.loads(meta[_META_KEY])
        return _decode(structure, arrays)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"load: {path} has a damaged structure record ({exc})") from exc


def _metadata(blob: bytes) -> dict:
    if len(blob) < 8:
        raise ValueError("file shorter than the safetensors header")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8:
        raise ValueError("header length exceeds the file")
    header = json.loads(blob[8 : 8 + n])
    return header.get("__metadata__", {}) or {}
