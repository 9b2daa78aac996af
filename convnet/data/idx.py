"""The IDX file format (MNIST, Fashion-MNIST, KMNIST), gzipped or plain.

An IDX file is a 4-byte magic number ``00 00 TT DD`` (``TT`` the element type, ``DD`` the
number of dimensions), ``DD`` big-endian uint32 sizes, then the elements in C order,
big-endian. Reading checks every part of that and that the payload holds exactly the
elements the header announces: a damaged file is a ``ValueError`` naming the file and the
fault, never a crash or an array of the wrong shape.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from .._io import atomic_write_bytes

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

# type code -> element dtype, big-endian as stored
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _raw_bytes(path: str) -> bytes:
    """The file's IDX bytes, decompressed when it starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"IDX file {path}: corrupt or truncated gzip data ({exc})") from exc
    return data


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or plain, told apart by its first bytes) into an array.

    The array has the header's shape and the element type in native byte order (uint8 for
    the image and label files of MNIST-like data sets); it is writable and owns its memory.
    Raises ``ValueError`` naming the file for a bad magic number, an unknown type code, a
    truncated header, or a payload larger or smaller than the header's dimensions announce.
    """
    path = os.fspath(path)
    data = _raw_bytes(path)
    if len(data) < 4:
        raise ValueError(f"IDX file {path}: {len(data)} bytes, too short for the 4-byte magic "
                         "number (empty or truncated file?)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"IDX file {path}: bad magic number {data[:4].hex()} (the first two "
                         "bytes must be zero; not an IDX file?)")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"IDX file {path}: unknown element type code 0x{code:02X} "
                         f"(known: {known})")
    if ndim == 0:
        raise ValueError(f"IDX file {path}: header announces 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX file {path}: truncated header ({len(data)} bytes, the "
                         f"{ndim} dimension sizes need {header})")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = dtype.itemsize
    for d in dims:
        expected *= d
    got = len(data) - header
    if got != expected:
        fault = "truncated" if got < expected else "oversized"
        raise ValueError(f"IDX file {path}: {fault} payload: header shape {dims} of "
                         f"{dtype.newbyteorder('=').name} needs {expected} bytes after the "
                         f"{header}-byte header, the file has {got}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file, gzipped when ``compress`` is true (by default when
    the name ends in ``.gz``). Written atomically (temporary file, then rename).

    The element type must be one IDX has: uint8, int8, int16, int32, float32 or float64.
    """
    path = os.fspath(path)
    arr = np.asarray(array)
    codes = {dt.newbyteorder("="): c for c, dt in IDX_DTYPES.items()}
    native = arr.dtype.newbyteorder("=")
    if native not in codes:
        raise TypeError(f"write_idx: IDX has no element type for dtype {arr.dtype} "
                        "(use uint8, int8, int16, int32, float32 or float64)")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"write_idx: array must have 1 to 255 dimensions, got {arr.ndim}")
    if any(d >= 2**32 for d in arr.shape):
        raise ValueError(f"write_idx: dimension sizes must fit in 32 bits, got {arr.shape}")
    code = codes[native]
    payload = (bytes([0, 0, code, arr.ndim])
               + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
               + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes())
    if compress is None:
        compress = path.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)
    atomic_write_bytes(path, payload)
