"""PyTorch's zip checkpoints (``torch.save``), read and written without importing torch.

A PyTorch checkpoint is a zip archive: ``<name>/data.pkl`` (a pickle of the saved object
in which every tensor is a call of ``torch._utils._rebuild_tensor_v2`` on a storage that the
pickle names by a persistent id) and ``<name>/data/<key>`` (each storage's raw bytes).

Reading unpickles ``data.pkl`` with a restricted unpickler that, like
``torch.load(weights_only=True)``, resolves only the tensor and parameter rebuild functions,
the storage classes, ``OrderedDict`` and ``torch.Size``, to convnet's own stand-ins: nothing
from torch is imported and any other global (``os.system``, ``builtins.eval``, a class's
``__reduce__``) is refused before it is looked up, so it never runs. Tensors come back as
NumPy arrays. Storage records must be stored uncompressed (``torch.save`` always does so),
so a small archive cannot inflate into a huge allocation.

Writing emits the same layout with a hand-written protocol-2 pickle that ``torch.load``
(``weights_only=True`` included) reads.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np

MAX_PICKLE_BYTES = 256 * 2**20
_STORAGES = {"DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
             "BFloat16Storage": "bfloat16", "LongStorage": "<i8", "IntStorage": "<i4",
             "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
             "BoolStorage": "?"}


def _dtype(code: str) -> np.dtype:
    if code == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(code)


class _StorageType:
    """Stands for ``torch.FloatStorage`` and the like: only its element type is used."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _dtype(_STORAGES[name])


class _TensorType:
    """Stands for ``torch.Tensor`` / ``torch.nn.Parameter`` in ``_rebuild_from_type_v2``."""


def _check_int(v, what: str) -> int:
    if type(v) is not int:
        raise pickle.UnpicklingError(f"{what}: expected an int, got {type(v).__name__}")
    return v


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise pickle.UnpicklingError("a tensor's storage is not a storage")
    offset = _check_int(storage_offset, "storage_offset")
    size = tuple(_check_int(d, "size") for d in size)
    stride = tuple(_check_int(s, "stride") for s in stride)
    if len(size) != len(stride) or len(size) > 64 or min(size + (0,)) < 0 or \
            min(stride + (0,)) < 0 or offset < 0:
        raise pickle.UnpicklingError(f"bad tensor geometry: size {size}, stride {stride}, "
                                     f"offset {offset}")
    if 0 in size:
        return np.empty(size, storage.dtype)
    last = offset + sum((d - 1) * s for d, s in zip(size, stride))
    if last >= len(storage):
        raise pickle.UnpicklingError(f"tensor of size {size} and stride {stride} at offset "
                                     f"{offset} runs past its storage of {len(storage)}")
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], size,
                                           tuple(s * item for s in stride), writeable=False)
    return np.array(view, order="C")


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, state=None):
    if not isinstance(data, np.ndarray):
        raise pickle.UnpicklingError("a parameter's data is not a tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_rebuild_tensor_v2, _rebuild_parameter) or new_type is not _TensorType:
        raise pickle.UnpicklingError("only plain tensors and parameters are rebuilt")
    return func(*args)


def _size(*args):
    return tuple(*args)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorType,
    ("torch.nn.parameter", "Parameter"): _TensorType,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "Size"): _size,
    **{("torch", name): _StorageType(name) for name in _STORAGES},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, zf: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(io.BytesIO(data))
        self._zf, self._prefix, self._byteorder = zf, prefix, byteorder
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only tensors and "
                                         "plain containers are read (as torch.load with "
                                         "weights_only=True)") from None

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage"
                or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str)):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:60]}")
        _, kind, key, _location, numel = pid
        numel = _check_int(numel, "numel")
        if key not in self._storages:
            self._storages[key] = self._read_storage(key, kind.dtype, numel)
        storage = self._storages[key]
        if storage.dtype != kind.dtype or len(storage) != numel:
            raise pickle.UnpicklingError(f"storage {key!r} is used with two types or sizes")
        return storage

    def _read_storage(self, key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        try:
            info = self._zf.getinfo(f"{self._prefix}data/{key}")
        except KeyError:
            raise pickle.UnpicklingError(f"storage record {key!r} is missing") from None
        if info.compress_type != zipfile.ZIP_STORED:
            raise pickle.UnpicklingError(f"storage record {key!r} is compressed")
        if numel < 0 or info.file_size != numel * dtype.itemsize:
            raise pickle.UnpicklingError(f"storage record {key!r} holds {info.file_size} "
                                         f"bytes, {numel} elements of {dtype} need "
                                         f"{numel * dtype.itemsize}")
        raw = self._zf.read(info)
        stored = dtype.newbyteorder("<" if self._byteorder == "little" else ">") \
            if dtype.itemsize > 1 and dtype.kind != "V" else dtype
        return np.frombuffer(raw, stored).astype(dtype)


def _check_plain(obj, depth: int = 0):
    """Only containers, scalars and numeric arrays may come out of the unpickler."""
    if depth > 256:
        raise ValueError("nested too deeply")
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "O":
            raise ValueError("an object array")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, depth + 1)
            _check_plain(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_plain(v, depth + 1)
    elif not (obj is None or isinstance(obj, (bool, int, float, str, bytes))):
        raise ValueError(f"a {type(obj).__name__}")


def read_torch_zip(fh, name: str):
    """Read a ``torch.save`` zip checkpoint; ValueError for anything else or anything
    hostile."""
    try:
        zf = zipfile.ZipFile(fh)
        pkl = [i for i in zf.infolist() if i.filename.endswith("data.pkl")
               and i.filename.count("/") == 1]
        if len(pkl) != 1:
            raise ValueError("no single <name>/data.pkl record: not a PyTorch checkpoint")
        info = pkl[0]
        prefix = info.filename[: -len("data.pkl")]
        if info.file_size > MAX_PICKLE_BYTES:
            raise ValueError(f"data.pkl declares {info.file_size} bytes")
        byteorder = "little"
        if f"{prefix}byteorder" in zf.namelist():
            byteorder = zf.read(f"{prefix}byteorder")[:16].decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"unknown byte order {byteorder!r}")
        obj = _Unpickler(zf.read(info), zf, prefix, byteorder).load()
        _check_plain(obj)
        return obj
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError,
            KeyError, IndexError, AttributeError, OverflowError, RecursionError,
            MemoryError, struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"load: {name}: not loaded as a PyTorch checkpoint "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None


# ---------------------------------------------------------------------- writing
_TORCH_STORAGE = {np.dtype(v) if v != "bfloat16" else "bfloat16": k
                  for k, v in _STORAGES.items()}


def _storage_name(arr: np.ndarray) -> str:
    if arr.dtype.name == "bfloat16":
        return "BFloat16Storage"
    name = _TORCH_STORAGE.get(arr.dtype.newbyteorder("<")) or \
        _TORCH_STORAGE.get(arr.dtype.newbyteorder("="))
    if name is None:
        raise TypeError(f"save(format='torch'): PyTorch's zip format has no storage for "
                        f"dtype {arr.dtype}")
    return name


class _PickleWriter:
    """Protocol-2 opcodes for the structure record of :mod:`convnet.serialization`."""

    def __init__(self, arrays: dict):
        self.out = bytearray(b"\x80\x02")
        self.arrays = arrays
        self.records: list[tuple[str, np.ndarray]] = []

    def global_(self, module: str, name: str):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def value(self, node):
        out = self.out
        if node is None:
            out += b"N"
        elif node is True or node is False:
            out += b"\x88" if node else b"\x89"
        elif isinstance(node, int):
            if 0 <= node < 256:
                out += b"K" + bytes([node])
            elif -2**31 <= node < 2**31:
                out += b"J" + struct.pack("<i", node)
            else:
                raw = node.to_bytes((node.bit_length() + 8) // 8, "little", signed=True)
                out += b"\x8a" + bytes([len(raw)]) + raw
        elif isinstance(node, float):
            out += b"G" + struct.pack(">d", node)
        elif isinstance(node, str):
            raw = node.encode("utf-8", "surrogatepass")
            out += b"X" + struct.pack("<I", len(raw)) + raw
        elif "__array__" in node:
            self.tensor(self.arrays[node["__array__"]], node.get("0d", False))
        elif "__dict__" in node:
            out += b"}"
            if node["__dict__"]:
                out += b"("
                for k, v in node["__dict__"]:
                    self.value(k)
                    self.value(v)
                out += b"u"
        elif "__list__" in node:
            out += b"]"
            if node["__list__"]:
                out += b"("
                for v in node["__list__"]:
                    self.value(v)
                out += b"e"
        else:
            out += b"("
            for v in node["__tuple__"]:
                self.value(v)
            out += b"t"

    def tensor(self, arr: np.ndarray, zero_d: bool):
        shape = () if zero_d else arr.shape
        key = str(len(self.records))
        data = np.ascontiguousarray(arr)
        if data.dtype.byteorder == ">":
            data = data.astype(data.dtype.newbyteorder("<"))
        self.records.append((key, data))
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.out += b"(("
        self.value("storage")
        self.global_("torch", _storage_name(arr))
        self.value(key)
        self.value("cpu")
        self.value(int(data.size))
        self.out += b"tQ"
        self.value(0)
        self.value(tuple_node(shape))
        strides, acc = [], 1
        for d in reversed(shape):
            strides.append(acc)
            acc *= d
        self.value(tuple_node(tuple(reversed(strides))))
        self.value(False)
        self.global_("collections", "OrderedDict")
        self.out += b")R"  # an empty OrderedDict: no backward hooks
        self.out += b"tR"


def tuple_node(values) -> dict:
    return {"__tuple__": [int(v) for v in values]}


def write_torch_zip(fh, structure, arrays: dict, name: str = "archive") -> None:
    writer = _PickleWriter(arrays)
    writer.value(structure)
    writer.out += b"."
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{name}/data.pkl", bytes(writer.out))
        zf.writestr(f"{name}/byteorder", "little")
        for key, data in writer.records:
            zf.writestr(f"{name}/data/{key}", data.reshape(-1).view(np.uint8).tobytes())
        zf.writestr(f"{name}/version", "3\n")
