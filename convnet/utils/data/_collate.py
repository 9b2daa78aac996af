"""``default_collate`` and ``default_convert``: PyTorch's rules for turning a list of
samples into a batch (tensors stacked, numbers into tensors, containers collated field
by field), with convnet tensors."""

from __future__ import annotations

import collections.abc
import copy
import numbers

import numpy as np

from ...tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
          "lists; found {}")


def _is_numpy_value(x) -> bool:
    return type(x).__module__ == "numpy" and not isinstance(x, (np.str_, np.bytes_))


def _has_text(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "OSUV"


def _stack_tensors(batch):
    from ...functional import stack

    shapes = {tuple(t.shape) for t in batch}
    if len(shapes) > 1:
        raise RuntimeError(f"stack expects each tensor to be equal size, but got shapes "
                           f"{sorted(shapes)}")
    if not any(t.requires_grad for t in batch):
        # one copy, no graph: the common case of a dataset of plain tensors
        xp = batch[0]._xp
        return Tensor._wrap(xp.stack([t._data for t in batch]), False)
    return stack(batch)


def _map(elem, fn, keys):
    """A mapping of the same type as ``elem`` with ``fn(key)`` for each key."""
    values = {key: fn(key) for key in keys}
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(values)
            return clone
        return type(elem)(values)
    except TypeError:
        return values


def default_collate(batch):
    """Collate a list of samples into a batch, as ``torch.utils.data.default_collate``:

    - Tensors are stacked along a new first axis; NumPy arrays likewise (as tensors);
      NumPy scalars become a 1-D tensor of their dtype;
    - Python floats become a float64 tensor, ints int64, bools bool;
    - strings and bytes stay a list;
    - mappings give a mapping of collated values, named tuples a named tuple, other
      sequences (which must all have one length) a list of collated fields.
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if _is_numpy_value(elem):
        if isinstance(elem, np.ndarray) and elem.ndim > 0:
            if _has_text(elem):
                raise TypeError(_ERROR.format(elem.dtype))
            shapes = {a.shape for a in batch}
            if len(shapes) > 1:
                raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                                   f"shapes {sorted(shapes)}")
            return Tensor._wrap(np.stack(batch), False)
        return Tensor._wrap(np.asarray(batch), False)  # NumPy scalars and 0-d arrays
    if isinstance(elem, bool):
        return Tensor._wrap(np.asarray(batch, dtype=np.bool_), False)
    if isinstance(elem, numbers.Integral):
        return Tensor._wrap(np.asarray(batch, dtype=np.int64), False)
    if isinstance(elem, numbers.Real):
        return Tensor._wrap(np.asarray(batch, dtype=np.float64), False)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _map(elem, lambda k: default_collate([d[k] for d in batch]), elem)
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a named tuple
        return type(elem)(*(default_collate(s) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(e) != size for e in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(s) for s in zip(*batch)]
        if isinstance(elem, tuple):
            return fields
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                clone[:] = fields
                return clone
            return type(elem)(fields)
        except TypeError:
            return fields
    raise TypeError(_ERROR.format(type(elem)))


def default_convert(data):
    """NumPy arrays and scalars in ``data`` become tensors, containers are walked; the
    conversion used when the DataLoader does not batch (``batch_size=None``)."""
    if isinstance(data, Tensor):
        return data
    if _is_numpy_value(data):
        if isinstance(data, np.ndarray) and _has_text(data):
            return data
        return Tensor._wrap(np.asarray(data), False)
    if isinstance(data, collections.abc.Mapping):
        return _map(data, lambda k: default_convert(data[k]), data)
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        converted = [default_convert(d) for d in data]
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                clone[:] = converted
                return clone
            return type(data)(converted)
        except TypeError:
            return converted
    return data
