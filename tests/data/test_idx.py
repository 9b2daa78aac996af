import gzip
import struct

import numpy as np
import pytest

from convnet.data import read_idx, write_idx


def idx_bytes(code: int, dims, payload: bytes) -> bytes:
    """An IDX file built by hand, independently of write_idx."""
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def test_reads_hand_written_ubyte_file(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(0x08, arr.shape, arr.tobytes()))
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


def test_reads_big_endian_elements(tmp_path):
    values = [1, -2, 300, -32768]
    path = tmp_path / "shorts"
    path.write_bytes(idx_bytes(0x0B, (4,), struct.pack(">4h", *values)))
    out = read_idx(path)
    assert out.dtype == np.int16 and out.dtype.isnative
    assert out.tolist() == values


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    if np.dtype(dtype).kind == "f":
        arr = rng.standard_normal((3, 5, 2)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=(7, 3), endpoint=True).astype(dtype)
    path = tmp_path / "data.idx"
    write_idx(path, arr, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    out = read_idx(path)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    out[0] = 0  # writable, owns its memory


def test_gzip_told_by_magic_bytes_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    raw = idx_bytes(0x08, (10,), arr.tobytes())
    gz_without_suffix = tmp_path / "labels-idx1-ubyte"
    gz_without_suffix.write_bytes(gzip.compress(raw))
    plain_with_suffix = tmp_path / "labels-idx1-ubyte.gz"
    plain_with_suffix.write_bytes(raw)
    np.testing.assert_array_equal(read_idx(gz_without_suffix), arr)
    np.testing.assert_array_equal(read_idx(str(plain_with_suffix)), arr)


def test_write_idx_compresses_by_name(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros(3, np.uint8))
    write_idx(tmp_path / "a", np.zeros(3, np.uint8))
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a").read_bytes()[:4] == bytes([0, 0, 8, 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "a.gz"]  # no temp files


def test_write_idx_refuses_types_idx_lacks(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))


GOOD = idx_bytes(0x08, (2, 3), bytes(range(6)))


@pytest.mark.parametrize("content, message", [
    (GOOD[:-1], "truncated payload"),
    (GOOD + b"\x00", "oversized payload"),
    (b"\x01" + GOOD[1:], "bad magic number"),
    (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown element type code 0x0A"),
    (GOOD[:4] + GOOD[4:9], "truncated header"),
    (b"", "too short"),
    (b"\x00\x00", "too short"),
    (bytes([0, 0, 8, 0]), "0 dimensions"),
    (idx_bytes(0x0C, (2,), b"\x00" * 7), "needs 8 bytes"),
    (idx_bytes(0x08, (60000, 28, 28), b"\x00" * 100), r"\(60000, 28, 28\)"),
], ids=["truncated", "oversized", "magic", "type", "header", "empty", "short", "ndim0",
        "int32-size", "mnist-shape"])
def test_bad_files_raise_value_error_naming_file(tmp_path, content, message):
    path = tmp_path / "broken-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    # the same fault inside a gzip container is reported the same way
    gz = tmp_path / "broken-idx.gz"
    gz.write_bytes(gzip.compress(content))
    with pytest.raises(ValueError, match=message):
        read_idx(gz)


def test_truncated_gzip_raises_value_error(tmp_path):
    data = gzip.compress(idx_bytes(0x08, (100,), bytes(100)))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory):
    """A ~1 MB gzip file whose payload inflates to 1 GiB of zeros after a small header that
    declares 60000x28x28 bytes (47 MB), and one whose header declares the whole GiB."""
    folder = tmp_path_factory.mktemp("bomb")
    # a gzip file may be several members in a row, read as one stream: one member of 1 MiB
    # of zeros (about 1 KB compressed) repeated 1024 times makes the bomb quickly
    member = gzip.compress(bytes(1 << 20), compresslevel=9)
    paths = {}
    for name, dims in (("small_header", (60000, 28, 28)), ("huge_header", (1 << 30,))):
        path = folder / f"{name}.gz"
        path.write_bytes(gzip.compress(idx_bytes(0x08, dims, b"")) + member * 1024)
        paths[name] = path
    with gzip.open(path) as check:  # it does inflate past 1 GiB (read here in pieces)
        total = sum(len(b) for b in iter(lambda: check.read(1 << 24), b""))
    assert total >= 1 << 30
    return paths


@pytest.mark.parametrize("kind,message", [("small_header", "oversized payload"),
                                          ("huge_header", "above the limit")])
def test_gzip_bomb_is_refused_with_little_memory(gzip_bomb, kind, message):
    import os
    import subprocess
    import sys

    path = gzip_bomb[kind]
    assert path.stat().st_size < 2 << 20
    code = (
        "import resource, sys\n"
        "from convnet.data import read_idx\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    read_idx(sys.argv[1], max_bytes=512 << 20)\n"
        "    print('LOADED')\n"
        "except ValueError as exc:\n"
        "    print('REFUSED', exc)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print('GROWTH_KB', after - before)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, PYTHONPATH=root))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("REFUSED") and message in lines[0], out.stdout
    growth_mb = int(lines[1].split()[1]) / 1024
    # the small header's 47 MB array is the most it may hold; the bomb's GiB never appears
    assert growth_mb < 100, f"peak RSS grew by {growth_mb:.0f} MB"


def test_devices_and_fifos_are_refused(tmp_path):
    import os

    with pytest.raises(ValueError, match="not a regular file"):
        read_idx("/dev/zero")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        read_idx(fifo)
