"""Checkpoints under damage and hostile input: checksums, bit flips, devices and FIFOs,
old files, file objects, 16-bit dtypes, deep records, temporaries."""

import io
import json
import os
import subprocess
import sys
import threading

import ml_dtypes
import numpy as np
import pytest

import convnet as cn
from convnet import _io
from convnet.serialization import MAX_DEPTH


def _small_checkpoint(path):
    rng = np.random.default_rng(0)
    obj = {"model": {"fc.weight": rng.standard_normal((4, 5)).astype(np.float32),
                     "fc.bias": rng.standard_normal(4).astype(np.float32),
                     "bn.num_batches_tracked": np.array(3)},
           "optimizer": {"state": {0: {"step": 2, "exp_avg": np.ones(5, np.float64)}},
                         "param_groups": [{"lr": 0.1, "params": [0]}]},
           "epoch": 2}
    cn.save(obj, path)
    return obj


def _header_end(raw: bytes) -> int:
    return 8 + int.from_bytes(raw[:8], "little")


def test_checksum_mismatch_names_the_tensor_and_verify_false_reads(tmp_path):
    path = tmp_path / "ck.safetensors"
    obj = _small_checkpoint(path)
    raw = bytearray(path.read_bytes())
    raw[_header_end(raw) + 4] ^= 0x10  # inside the first tensor, fc.weight
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"checksum mismatch in tensor 't0' \(\['model'\]"
                                         r"\['fc.weight'\]\)"):
        cn.load(path)
    back = cn.load(path, verify=False)
    assert not np.array_equal(back["model"]["fc.weight"], obj["model"]["fc.weight"])
    np.testing.assert_array_equal(back["model"]["fc.bias"], obj["model"]["fc.bias"])


def test_every_sampled_bit_flip_in_the_data_region_is_detected(tmp_path):
    path = tmp_path / "ck.safetensors"
    _small_checkpoint(path)
    raw = path.read_bytes()
    start = _header_end(raw)
    rng = np.random.default_rng(1)
    n_bits = (len(raw) - start) * 8
    positions = rng.choice(n_bits, size=min(200, n_bits), replace=False)
    for bit in positions:
        bad = bytearray(raw)
        bad[start + bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ValueError, match="checksum mismatch in tensor"):
            cn.load(io.BytesIO(bytes(bad)))


def test_every_bit_flip_in_the_header_is_a_value_error(tmp_path):
    path = tmp_path / "ck.safetensors"
    _small_checkpoint(path)
    raw = path.read_bytes()
    end = _header_end(raw)
    failures = []
    for bit in range(end * 8):  # the 8-byte length and the whole JSON header
        bad = bytearray(raw)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            cn.load(io.BytesIO(bytes(bad)))
            failures.append((bit, "loaded"))
        except ValueError:
            pass
        except Exception as exc:  # noqa: BLE001 - any other class is the failure we count
            failures.append((bit, repr(exc)))
    assert failures == []


def test_files_without_checksums_still_load(tmp_path):
    # format 1 (before checksums): safetensors with only the structure record
    from safetensors.numpy import save_file

    structure = {"__dict__": [["w", {"__array__": "t0"}], ["epoch", 3]]}
    save_file({"t0": np.arange(4, dtype=np.float32)}, str(tmp_path / "old.safetensors"),
              metadata={"convnet.structure": json.dumps(structure)})
    back = cn.load(tmp_path / "old.safetensors")
    assert back["epoch"] == 3
    np.testing.assert_array_equal(back["w"], np.arange(4, dtype=np.float32))


def test_devices_folders_and_fifos_are_refused_without_reading(tmp_path):
    with pytest.raises(ValueError, match="device, not a regular file"):
        cn.load("/dev/zero")
    with pytest.raises(ValueError, match="folder, not a regular file"):
        cn.load(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = {}

    def run():
        try:
            cn.load(fifo)
        except Exception as exc:  # noqa: BLE001
            result["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(20)  # a blocking open would never return: the join would time out
    assert not t.is_alive(), "load blocked on a FIFO"
    assert isinstance(result["exc"], ValueError) and "FIFO" in str(result["exc"])


@pytest.mark.parametrize("change", ["append", "truncate_data", "header_len"])
def test_size_must_match_the_header(tmp_path, change):
    path = tmp_path / "ck.safetensors"
    _small_checkpoint(path)
    raw = path.read_bytes()
    bad = {"append": raw + b"\0", "truncate_data": raw[:-3],
           "header_len": (10**9).to_bytes(8, "little") + raw[8:]}[change]
    path.write_bytes(bad)
    with pytest.raises(ValueError, match="holds|claims"):
        cn.load(path)


def test_file_objects_and_map_location(tmp_path):
    buf = io.BytesIO()
    cn.save({"w": np.arange(3.0)}, buf)
    buf.seek(0)
    np.testing.assert_array_equal(cn.load(buf, map_location="cpu")["w"], [0, 1, 2])
    with open(tmp_path / "f.safetensors", "wb") as fh:
        cn.save({"w": np.ones(2)}, fh)
    with open(tmp_path / "f.safetensors", "rb") as fh:
        np.testing.assert_array_equal(cn.load(fh)["w"], [1, 1])

    class Stream(io.RawIOBase):  # not seekable, like a pipe or a socket
        def __init__(self, data):
            self._b = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._b.readinto(b)

    np.testing.assert_array_equal(cn.load(Stream(buf.getvalue()))["w"], [0, 1, 2])
    with pytest.raises(ValueError, match="map_location"):
        cn.load(io.BytesIO(buf.getvalue()), map_location="tpu")
    with pytest.raises(TypeError, match="path or a binary file object"):
        cn.load(42)
    with pytest.raises(ValueError, match="weights_only"):
        cn.load(io.BytesIO(buf.getvalue()), weights_only=False)


def test_map_location_accepts_torch_devices():
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    cn.save({"w": np.arange(3.0)}, buf)
    buf.seek(0)
    np.testing.assert_array_equal(cn.load(buf, map_location=torch.device("cpu"))["w"],
                                  [0, 1, 2])


def test_float16_and_bfloat16_round_trip(tmp_path):
    h = np.array([1.5, -2.25, 65504.0], np.float16)
    b = np.array([1.0, -3.5, 1e30], ml_dtypes.bfloat16)
    cn.save({"h": h, "b": b}, tmp_path / "x.safetensors")
    back = cn.load(tmp_path / "x.safetensors")
    assert back["h"].dtype == np.float16 and back["b"].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(back["h"], h)
    np.testing.assert_array_equal(back["b"].astype(np.float32), b.astype(np.float32))


def test_bfloat16_file_reads_in_safetensors_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file, save_file

    b = np.array([1.0, -3.5, 0.15625], ml_dtypes.bfloat16)
    cn.save({"b": b}, tmp_path / "x.safetensors")
    t = load_file(str(tmp_path / "x.safetensors"))["t0"]
    assert t.dtype == torch.bfloat16
    assert t.float().tolist() == [1.0, -3.5, 0.15625]
    # and a BF16 file written by PyTorch's safetensors loads here
    save_file({"w": torch.tensor([0.5, 2.0], dtype=torch.bfloat16),
               "h": torch.tensor([1.0], dtype=torch.float16)}, str(tmp_path / "t.safetensors"))
    back = cn.load(tmp_path / "t.safetensors")
    assert back["w"].dtype == ml_dtypes.bfloat16 and back["h"].dtype == np.float16
    assert back["w"].astype(np.float32).tolist() == [0.5, 2.0]


def test_complex_is_refused_clearly(tmp_path):
    with pytest.raises(TypeError, match="complex"):
        cn.save({"z": np.array([1 + 2j])}, tmp_path / "z.safetensors")
    with pytest.raises(TypeError, match="complex"):
        cn.save({"z": 1 + 2j}, tmp_path / "z.safetensors")
    assert not (tmp_path / "z.safetensors").exists()
    assert os.listdir(tmp_path) == []


def test_deep_structure_record_is_a_value_error(tmp_path):
    from safetensors.numpy import save_file

    deep = '{"__list__":[' * 200_000 + "1" + "]}" * 200_000
    save_file({"t0": np.zeros(1, np.float32)}, str(tmp_path / "deep.safetensors"),
              metadata={"convnet.structure": deep})
    with pytest.raises(ValueError, match="damaged structure record"):
        cn.load(tmp_path / "deep.safetensors")
    nested = [1]
    for _ in range(MAX_DEPTH + 5):
        nested = [nested]
    with pytest.raises(ValueError, match="nested more than"):
        cn.save(nested, tmp_path / "n.safetensors")


def test_stale_temporaries_are_cleaned_by_the_next_save(tmp_path):
    target = tmp_path / "ck.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".ck.safetensors.{dead}.abc{_io.TMP_SUFFIX}"
    stale.write_bytes(b"x" * 100)
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    live = tmp_path / f".ck.safetensors.{os.getppid()}.def{_io.TMP_SUFFIX}"  # a writer alive
    live.write_bytes(b"y")
    os.utime(live, (1_000_000_000, 1_000_000_000))
    other = tmp_path / f".other.{dead}.x{_io.TMP_SUFFIX}"  # another target's
    other.write_bytes(b"z")
    cn.save({"w": np.zeros(2)}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [target.name, live.name, other.name])


def test_temporary_is_beside_the_target_and_removed_on_error(tmp_path, monkeypatch):
    seen = []
    real = _io.os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        raise KeyboardInterrupt

    monkeypatch.setattr(_io.os, "replace", spy)
    with pytest.raises(KeyboardInterrupt):
        cn.save({"w": np.zeros(2)}, tmp_path / "ck.safetensors")
    monkeypatch.setattr(_io.os, "replace", real)
    assert seen[0].startswith(".ck.safetensors.") and seen[0].endswith(_io.TMP_SUFFIX)
    assert os.listdir(tmp_path) == []


def test_large_files_checked_on_the_worker_thread_name_the_damaged_tensor(tmp_path):
    from convnet import serialization

    rng = np.random.default_rng(3)
    obj = {f"w{i}": rng.standard_normal(1 << 20).astype(np.float32) for i in range(3)}
    path = tmp_path / "big.safetensors"
    cn.save(obj, path)
    raw = path.read_bytes()
    start = _header_end(raw)
    assert len(raw) - start >= serialization._THREADED_CRC_BYTES  # the threaded path
    back = cn.load(path)
    for k in obj:
        np.testing.assert_array_equal(back[k], obj[k])
    for tensor, offset in (("t0", 5), ("t1", (4 << 20) + 123_457), ("t2", len(raw) - start - 1)):
        bad = bytearray(raw)
        bad[start + offset] ^= 0x01
        with pytest.raises(ValueError, match=rf"checksum mismatch in tensor '{tensor}'"):
            cn.load(io.BytesIO(bytes(bad)))


def test_sparse_file_declaring_terabytes_is_refused(tmp_path):
    header = json.dumps({"t0": {"dtype": "F32", "shape": [1 << 40],
                                "data_offsets": [0, 4 << 40]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "sparse.safetensors"
    with open(path, "wb") as fh:
        fh.write(len(header).to_bytes(8, "little") + header)
        try:
            fh.truncate(8 + len(header) + (4 << 40))  # 4 TiB, sparse: no disk used
        except OSError:
            pytest.skip("this file system has no sparse files that large")
    with pytest.raises(ValueError, match="does not fit in memory"):
        cn.load(path)
