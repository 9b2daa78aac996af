"""``save``/``load``: checkpoints in the safetensors format with checksums, never pickle.

Any nesting of dicts, lists and tuples holding arrays, tensors, numbers, strings, bools and
None is stored: the arrays as safetensors tensors, the structure as JSON in the file's
metadata. Loading parses JSON and raw tensor bytes only, so it never executes code.

Integrity (format 2, written since checksums were added): the header's metadata holds the
CRC32C of every tensor's bytes (``convnet.crc32c``) and the CRC32C of the whole header
(``convnet.header_crc32c``, computed with that field zeroed, over the 8-byte length prefix
too). The header names every tensor's checksum, so the header checksum covers the whole
record. ``load`` checks the header checksum before trusting anything in it and each tensor
as it reads it; a mismatch is a ``ValueError`` naming the tensor. ``verify=False`` skips the
CRCs (the structural checks stay). Files written before checksums existed (format 1: only
``convnet.structure`` in the metadata) and plain safetensors files from other tools load
without verification.

Safety: a path must name a regular file (a device such as ``/dev/zero``, a FIFO or a folder
is refused without reading it); the header's length, the tensors' offsets and the file's
size must agree before any tensor is read; tensors are read by offset into arrays that own
their memory (not memory-mapped: a mapping crashes the process with SIGBUS when the file is
truncated while the arrays live). Every malformed header is a ``ValueError``.

Writes go to a temporary file beside the target, renamed over it when complete (see
:mod:`convnet._io`). PyTorch's zip checkpoints (``torch.save``) are read by a restricted
unpickler and ``format="torch"`` writes one (see :mod:`convnet._torch_format`).
"""

from __future__ import annotations

import io
import json
import numbers
import os

import numpy as np

from ._io import atomic_writer, open_regular_file
from .tensor import Tensor

_META_KEY = "convnet.structure"
_CRC_KEY = "convnet.crc32c"
_HEADER_CRC_KEY = "convnet.header_crc32c"
_HEADER_PREFIX = b'{"__metadata__":{"' + _HEADER_CRC_KEY.encode() + b'":"'
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit
MAX_DEPTH = 256  # nesting of the structure record; a state_dict checkpoint needs about 4
_CHUNK = 1 << 20  # read and checksum in pieces that stay in cache
_THREADED_CRC_BYTES = 8 << 20


def _dtypes() -> dict[str, np.dtype]:
    import ml_dtypes

    return {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
            "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"),
            "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
            "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"),
            "U8": np.dtype("u1"), "BOOL": np.dtype("?")}


def _dtype_code(arr: np.ndarray) -> str:
    for code, dt in _dtypes().items():
        if arr.dtype == dt or arr.dtype == dt.newbyteorder("="):
            return code
    kind = "complex" if arr.dtype.kind == "c" else str(arr.dtype)
    raise TypeError(f"save: cannot store an array of dtype {arr.dtype} ({kind} is not "
                    "supported; use float16/bfloat16/float32/float64, ints, uints or bool)")


def _crc(buffer, value: int = 0) -> int:
    import crc32c

    return crc32c.crc32c(buffer, value)


# ---------------------------------------------------------------------- structure record
def _encode(obj, arrays: dict, depth: int = 0):
    if depth > MAX_DEPTH:
        raise ValueError(f"save: the object is nested more than {MAX_DEPTH} levels deep")
    if isinstance(obj, Tensor):
        obj = obj._data
    if hasattr(obj, "get") and type(obj).__module__.startswith("cupy"):
        obj = obj.get()
    if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
        from .nn.module import as_host_array  # torch tensors, bfloat16 and parameters too

        obj = np.array(as_host_array(obj, "save"))
    if isinstance(obj, np.ndarray):
        key = f"t{len(arrays)}"
        _dtype_code(obj)
        arrays[key] = obj
        # safetensors stores a 0-d array as shape (1,) in some readers; the node remembers
        return {"__array__": key, "0d": True} if obj.ndim == 0 else {"__array__": key}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, complex):
        raise TypeError(f"save: cannot store the complex number {obj!r}")
    if obj is None or isinstance(obj, (bool, str, numbers.Number)):
        return obj
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, arrays, depth + 1), _encode(v, arrays, depth + 1)]
                             for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__" if isinstance(obj, list) else "__tuple__":
                [_encode(v, arrays, depth + 1) for v in obj]}
    raise TypeError(f"save: cannot store a {type(obj).__name__} (only arrays, tensors, "
                    "numbers, strings, bools, None and dicts/lists/tuples of them)")


def _decode(node, arrays: dict, depth: int = 0):
    if depth > MAX_DEPTH:
        raise ValueError(f"the structure is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, dict):
        if "__array__" in node:
            array = arrays[node["__array__"]]
            return array.reshape(()) if node.get("0d") else array
        if "__dict__" in node:
            return {_hashable(_decode(k, arrays, depth + 1)): _decode(v, arrays, depth + 1)
                    for k, v in node["__dict__"]}
        if "__list__" in node:
            return [_decode(v, arrays, depth + 1) for v in node["__list__"]]
        if "__tuple__" in node:
            return tuple(_decode(v, arrays, depth + 1) for v in node["__tuple__"])
        raise ValueError(f"unknown node {sorted(node)[:3]}")
    if isinstance(node, list):
        raise ValueError("a bare list node")
    return node


def _hashable(k):
    return tuple(k) if isinstance(k, list) else k


# ---------------------------------------------------------------------- save
def save(obj, f, format: str = "convnet") -> None:
    """Write ``obj`` (e.g. ``{"model": model.state_dict(), "optimizer": opt.state_dict(),
    "epoch": 3}``) to ``f``: a path (written atomically) or a binary file object.

    ``format="convnet"`` (default) writes safetensors with checksums, which
    ``safetensors.numpy.load_file`` and ``safetensors.torch.load_file`` also read (flat
    ``t0, t1, ...`` names, the structure in the metadata). ``format="torch"`` writes the zip
    checkpoint that ``torch.load`` reads (``weights_only=True`` included), arrays as tensors.
    """
    if format == "torch":
        from ._torch_format import write_torch_zip

        arrays_only = {}
        structure = _encode(obj, arrays_only)
        _write(f, lambda fh: write_torch_zip(fh, structure, arrays_only))
        return
    if format != "convnet":
        raise ValueError(f"format: expected 'convnet' or 'torch', got {format!r}")
    arrays: dict[str, np.ndarray] = {}
    structure = _encode(obj, arrays)
    _write(f, lambda fh: _write_safetensors(fh, structure, arrays))


def _write(f, writer) -> None:
    if isinstance(f, (str, bytes, os.PathLike)):
        with atomic_writer(f) as fh:
            writer(fh)
    elif hasattr(f, "write"):
        writer(f)
    else:
        raise TypeError(f"f: expected a path or a binary file object, got {type(f).__name__}")


def _write_safetensors(fh, structure, arrays: dict) -> None:
    entries, crcs, datas, offset = {}, {}, [], 0
    for key, arr in arrays.items():
        code = _dtype_code(arr)
        data = np.ascontiguousarray(arr, dtype=_dtypes()[code]).reshape(-1).view(np.uint8)
        crcs[key] = _crc(data)
        entries[key] = {"dtype": code, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + data.nbytes]}
        datas.append(data)
        offset += data.nbytes
    meta = {_HEADER_CRC_KEY: "00000000", _CRC_KEY: json.dumps(crcs, separators=(",", ":")),
            _META_KEY: json.dumps(structure, separators=(",", ":"))}
    header = json.dumps({"__metadata__": meta, **entries}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # safetensors aligns the data to 8 bytes
    prefix = len(header).to_bytes(8, "little")
    assert header.startswith(_HEADER_PREFIX)
    crc = f"{_crc(prefix + header):08x}".encode()
    at = len(_HEADER_PREFIX)
    fh.write(prefix + header[:at] + crc + header[at + 8:])
    for data in datas:
        fh.write(data)


# ---------------------------------------------------------------------- load
def load(f, map_location=None, *, verify: bool = True, weights_only: bool | None = True):
    """Read a checkpoint written by :func:`save`, a safetensors file or a PyTorch zip
    checkpoint (``torch.save``); arrays come back as NumPy arrays (CuPy with
    ``map_location="cuda"``).

    ``f`` is a path or a binary file object. ``verify=False`` skips the checksums (the
    structural checks stay). A plain safetensors file loads as a flat ``{name: array}``
    dict. Anything damaged, truncated, hostile or not a checkpoint raises ``ValueError``.
    ``weights_only`` is accepted for PyTorch compatibility; only ``True`` is supported.
    """
    device = _map_location(map_location)
    if weights_only not in (True, None):  # None is torch.load's default, meaning True
        raise ValueError("weights_only: only True is supported (convnet never unpickles "
                         "arbitrary objects)")
    if isinstance(f, (str, bytes, os.PathLike)):
        name = os.fsdecode(f)
        with open_regular_file(f) as fh:
            out = _load_from(fh, name, verify)
    elif hasattr(f, "read"):
        fh = f if _seekable(f) else io.BytesIO(f.read())
        out = _load_from(fh, getattr(f, "name", type(f).__name__), verify)
    else:
        raise TypeError(f"f: expected a path or a binary file object, got {type(f).__name__}")
    return _to_device(out, device) if device != "cpu" else out


def _seekable(f) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _map_location(loc) -> str:
    if loc is None:
        return "cpu"
    if isinstance(loc, dict):
        if all(str(v) == "cpu" for v in loc.values()):
            return "cpu"
        raise ValueError(f"map_location: only mappings to 'cpu' are supported, got {loc!r}")
    name = str(loc)  # a str or a torch.device
    if name == "cpu" or name == "cuda" or name.startswith("cuda:"):
        return name
    raise ValueError(f"map_location: expected None, 'cpu' or 'cuda[:N]', got {loc!r}")


def _to_device(obj, device: str):
    import cupy

    with cupy.cuda.Device(int(device.split(":")[1]) if ":" in device else 0):
        def move(o):
            if isinstance(o, np.ndarray):
                return cupy.asarray(o)
            if isinstance(o, dict):
                return type(o)((k, move(v)) for k, v in o.items())
            if isinstance(o, (list, tuple)):
                return type(o)(move(v) for v in o)
            return o
        return move(obj)


def _load_from(fh, name: str, verify: bool):
    start = fh.tell()
    size = fh.seek(0, os.SEEK_END) - start
    fh.seek(start)
    magic = fh.read(8)
    fh.seek(start)
    if magic[:4] == b"PK\x03\x04":
        from ._torch_format import read_torch_zip

        return read_torch_zip(fh, name)
    try:
        return _read_safetensors(fh, start, size, name, verify)
    except ValueError:
        # a pickle starts with PROTO (0x80, 2..5) then an opcode (never 0); a safetensors
        # length can start the same way, so this is only the explanation of a failure
        if magic[:1] == b"\x80" and len(magic) > 2 and magic[1] <= 5 and magic[2] != 0:
            raise ValueError(f"load: {name} is a pickle (PyTorch's legacy format or another "
                             "program's); convnet does not unpickle it. Re-save it with a "
                             "recent torch.save (zip format) or as safetensors") from None
        raise


def _bad(name: str, why: str) -> ValueError:
    return ValueError(f"load: {name} is not a valid checkpoint ({why})")


def _read_safetensors(fh, start: int, size: int, name: str, verify: bool):
    if size < 8:
        raise _bad(name, f"{size} bytes: shorter than the safetensors header; empty or "
                   "truncated file")
    prefix = fh.read(8)
    n = int.from_bytes(prefix, "little")
    if n > min(size - 8, MAX_HEADER_BYTES) or n < 2:
        raise _bad(name, f"the header claims {n} bytes, the file holds {size - 8} after the "
                   "length; corrupt or truncated safetensors file")
    raw = fh.read(n)
    if len(raw) != n:
        raise _bad(name, "the file ended inside the header")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(name, f"damaged header: {str(exc)[:80]}") from exc
    if not isinstance(header, dict):
        raise _bad(name, "damaged header: not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _bad(name, "damaged header: __metadata__ is not a string map")
    crcs = _check_header_crc(meta, prefix, raw, name, verify)
    data_len = size - 8 - n
    layout = _layout(header, data_len, name)
    if crcs is not None and set(crcs) != set(layout):
        raise _bad(name, "damaged header: the checksums do not name the tensors stored")
    arrays = {}
    checker = _Checker(data_len) if crcs is not None and verify else None
    try:
        for key, (dtype, shape, begin, end) in layout.items():
            fh.seek(start + 8 + n + begin)
            arrays[key] = _read_tensor(fh, dtype, shape, end - begin, name, checker, key)
        bad = checker.first_mismatch(crcs) if checker else None
    finally:
        if checker:
            checker.close()
    if bad is not None:
        raise ValueError(f"load: {name}: checksum mismatch in tensor {_tensor_path(meta, bad)} "
                         "(the file is damaged; verify=False reads it anyway)")
    if _META_KEY not in meta:
        return arrays
    try:
        structure = json.loads(meta[_META_KEY])
        return _decode(structure, arrays)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ValueError(f"load: {name} has a damaged structure record "
                         f"({type(exc).__name__}: {str(exc)[:80]})") from None


def _check_header_crc(meta: dict, prefix: bytes, raw: bytes, name: str, verify: bool):
    """The per-tensor checksums of a format-2 file (None for older or foreign files), after
    checking the header's own checksum."""
    if _HEADER_CRC_KEY not in meta:
        # format 1 wrote exactly one metadata key; a format-2 header whose checksum key was
        # damaged still has its other keys, and must not pass as an unchecked old file
        if _META_KEY in meta and len(meta) != 1 or _CRC_KEY in meta:
            raise _bad(name, "damaged header: checksum field missing")
        return None
    if not raw.startswith(_HEADER_PREFIX):
        raise _bad(name, "damaged header: checksum field out of place")
    at = len(_HEADER_PREFIX)
    stored = raw[at:at + 8]
    if verify:
        # exactly 8 lowercase hex digits: int() alone would accept " f7b" or "F7B"
        if len(stored) != 8 or not all(c in b"0123456789abcdef" for c in stored):
            raise _bad(name, "damaged header: checksum is not 8 lowercase hex digits")
        expected = int(stored, 16)
        if _crc(prefix + raw[:at] + b"00000000" + raw[at + 8:]) != expected:
            raise _bad(name, "header checksum mismatch: the header is damaged")
    try:
        crcs = json.loads(meta.get(_CRC_KEY, ""))
    except (ValueError, RecursionError):
        raise _bad(name, "damaged header: unreadable tensor checksums") from None
    if not isinstance(crcs, dict) or not all(type(v) is int for v in crcs.values()):
        raise _bad(name, "damaged header: unreadable tensor checksums")
    return crcs


def _layout(header: dict, data_len: int, name: str) -> dict:
    """Check every tensor entry; they must tile the data region exactly."""
    dtypes = _dtypes()
    layout = {}
    for key, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _bad(name, f"damaged header: entry {key!r} is not a tensor description")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in dtypes:
            raise _bad(name, f"tensor {key!r}: unsupported dtype {dtype!r}")
        if (not isinstance(shape, list) or len(shape) > 64
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise _bad(name, f"tensor {key!r}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(type(o) is int for o in offs) or not 0 <= offs[0] <= offs[1]):
            raise _bad(name, f"tensor {key!r}: bad data offsets {offs!r}")
        count = 1
        for d in shape:
            count *= d
        if count * dtypes[dtype].itemsize != offs[1] - offs[0]:
            raise _bad(name, f"tensor {key!r}: {offs[1] - offs[0]} bytes for shape {shape} "
                       f"of {dtype}")
        layout[key] = (dtypes[dtype], tuple(shape), offs[0], offs[1])
    end = 0
    for _, _, begin, stop in sorted(layout.values(), key=lambda t: (t[2], t[3])):
        if begin != end:
            raise _bad(name, "damaged header: tensor data overlap or leave gaps")
        end = stop
    if end != data_len:
        raise _bad(name, f"the header describes {end} bytes of tensor data, the file holds "
                   f"{data_len}: truncated or damaged")
    return layout


class _Checker:
    """CRC32C of each tensor, computed on a worker thread while the next piece is read: the
    CRC releases the GIL, so on a machine with a spare core the checksums cost little more
    than the reads. One worker keeps the pieces of a tensor in order."""

    def __init__(self, nbytes: int):
        self._pool = None
        if nbytes >= _THREADED_CRC_BYTES:  # below it, a thread costs more than it hides
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convnet-crc")
        self._values: dict[str, int] = {}
        self._jobs = []

    def _update(self, key: str, piece) -> None:
        self._values[key] = _crc(piece, self._values.get(key, 0))

    def add(self, key: str, piece) -> None:
        if self._pool is None:
            self._update(key, piece)
        else:
            self._jobs.append(self._pool.submit(self._update, key, piece))

    def first_mismatch(self, expected: dict) -> str | None:
        for job in self._jobs:
            job.result()
        for key, crc in expected.items():
            if self._values.get(key, 0) != crc:
                return key
        return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _tensor_path(meta: dict, key: str) -> str:
    """Where tensor ``key`` sits in the saved object, e.g. ``['model']['fc.weight']``."""
    def walk(node, path):
        if isinstance(node, dict):
            if node.get("__array__") == key:
                return path
            if "__dict__" in node:
                for k, v in node["__dict__"]:
                    found = walk(v, f"{path}[{k!r}]")
                    if found:
                        return found
            for v in node.get("__list__", node.get("__tuple__", [])):
                found = walk(v, f"{path}[...]")
                if found:
                    return found
        return None

    try:
        where = walk(json.loads(meta.get(_META_KEY, "null")), "")
    except (ValueError, RecursionError, TypeError):
        where = None
    return f"{key!r} ({where})" if where else repr(key)


def _read_tensor(fh, dtype, shape, nbytes: int, name: str, checker, key: str):
    try:
        arr = np.empty(shape, dtype)
    except (MemoryError, ValueError):
        # a (sparse) file may declare more than this machine holds: refuse, do not crash
        raise _bad(name, f"tensor {key!r} of {nbytes} bytes does not fit in memory") from None
    flat = arr.reshape(-1).view(np.uint8)
    done = 0
    while done < nbytes:
        piece = flat[done:done + _CHUNK]
        got = fh.readinto(piece)
        if not got:
            raise _bad(name, "the file ended inside a tensor (changed while reading?)")
        if checker is not None:
            checker.add(key, piece[:got])
        done += got
    return arr
