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


MAX_BYTES = 1 << 30  # default limit of a payload: MNIST-like sets are far below it
_CHUNK = 1 << 20


def _read_exactly(stream, buf, path: str) -> int:
    """Fill ``buf`` from ``stream``; the number of bytes read (less only at the end)."""
    view = memoryview(buf.reshape(-1).view(np.uint8) if isinstance(buf, np.ndarray) else buf)
    done = 0
    try:
        while done < len(view):
            got = stream.readinto(view[done:done + _CHUNK])
            if not got:
                break
            done += got
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"IDX file {path}: corrupt or truncated gzip data ({exc})") from exc
    return done


def read_idx(path, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """Read an IDX file (gzipped or plain, told apart by its first bytes) into an array.

    The array has the header's shape and the element type in native byte order (uint8 for
    the image and label files of MNIST-like data sets); it is writable and owns its memory.
    Raises ``ValueError`` naming the file for a bad magic number, an unknown type code, a
    truncated header, a payload larger or smaller than the header's dimensions announce, or
    a payload above ``max_bytes`` (1 GiB by default). A gzip file is inflated as a stream:
    the header is checked first and inflation stops one byte past the declared size, so a
    small file that inflates to gigabytes (a "gzip bomb") is refused without holding them.
    Only regular files are read (not a device or a FIFO).
    """
    from .._io import open_regular_file

    path = os.fspath(path)
    with open_regular_file(path, "read_idx") as fh:
        gz = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        stream = gzip.GzipFile(fileobj=fh, mode="rb") if gz else fh
        head = bytearray(4)
        n = _read_exactly(stream, head, path)
        if n < 4:
            raise ValueError(f"IDX file {path}: {n} bytes, too short for the 4-byte magic "
                             "number (empty or truncated file?)")
        if head[0] != 0 or head[1] != 0:
            raise ValueError(f"IDX file {path}: bad magic number {bytes(head).hex()} (the "
                             "first two bytes must be zero; not an IDX file?)")
        code, ndim = head[2], head[3]
        if code not in IDX_DTYPES:
            known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
            raise ValueError(f"IDX file {path}: unknown element type code 0x{code:02X} "
                             f"(known: {known})")
        if ndim == 0:
            raise ValueError(f"IDX file {path}: header announces 0 dimensions")
        header = 4 + 4 * ndim
        sizes = bytearray(4 * ndim)
        got = _read_exactly(stream, sizes, path)
        if got < len(sizes):
            raise ValueError(f"IDX file {path}: truncated header ({4 + got} bytes, the "
                             f"{ndim} dimension sizes need {header})")
        dims = tuple(int.from_bytes(sizes[4 * i: 4 * i + 4], "big") for i in range(ndim))
        dtype = IDX_DTYPES[code]
        expected = dtype.itemsize
        for d in dims:
            expected *= d
        name = dtype.newbyteorder("=").name
        if expected > max_bytes:
            raise ValueError(f"IDX file {path}: header shape {dims} of {name} declares "
                             f"{expected} bytes, above the limit of {max_bytes} "
                             "(read_idx(..., max_bytes=) raises it)")
        arr = np.empty(dims, dtype=dtype)
        got = _read_exactly(stream, arr, path)
        if got < expected:
            raise ValueError(f"IDX file {path}: truncated payload: header shape {dims} of "
                             f"{name} needs {expected} bytes after the {header}-byte header, "
                             f"the file has {got}")
        if _read_exactly(stream, bytearray(1), path):
            raise ValueError(f"IDX file {path}: oversized payload: header shape {dims} of "
                             f"{name} needs {expected} bytes after the {header}-byte header, "
                             "the file has more")
    return arr.astype(dtype.newbyteorder("="), copy=False)  # native order, writable


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
