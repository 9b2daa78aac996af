"""PyTorch zip checkpoints: read with a restricted unpickler (never executing the file),
written with format="torch" for torch.load(weights_only=True)."""

import io
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict

import ml_dtypes
import numpy as np
import pytest

import convnet as cn


def _torch_bytes(obj, **kw) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def test_reads_tensors_views_dtypes_and_nested_containers(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    base = torch.arange(10, dtype=torch.float32)
    obj = {"t": torch.randn(3, 4).t(), "view": base[2:7:2], "bf16": torch.randn(5).bfloat16(),
           "f16": torch.randn(2, 2).half(), "i64": torch.arange(3), "flag": torch.tensor(True),
           "scalar": torch.tensor(2.5, dtype=torch.float64), "empty": torch.zeros(0, 3),
           "nested": [(1, "a", None), {"k": [torch.ones(2, dtype=torch.int8)]}],
           "epoch": 7, "lr": 1e-3}
    path = tmp_path / "x.pt"
    torch.save(obj, path)
    back = cn.load(path)
    for key in ("t", "view", "f16", "i64", "flag", "scalar", "empty"):
        np.testing.assert_array_equal(back[key], obj[key].numpy(), err_msg=key)
        assert back[key].shape == tuple(obj[key].shape) and back[key].flags.writeable
    assert back["bf16"].dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(back["bf16"].astype(np.float32), obj["bf16"].float().numpy())
    assert back["nested"][0] == (1, "a", None)
    np.testing.assert_array_equal(back["nested"][1]["k"][0], [1, 1])
    assert back["epoch"] == 7 and back["lr"] == 1e-3


def test_torch_state_dict_loads_into_a_convnet_model():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3),
                             torch.nn.Flatten(), torch.nn.Linear(12, 2))
    tm.train()
    tm(torch.randn(4, 1, 4, 4))  # running statistics and num_batches_tracked move
    tm.eval()
    cm = cn.nn.Sequential(cn.nn.Conv2d(1, 3, 3), cn.nn.BatchNorm2d(3), cn.nn.Flatten(),
                          cn.nn.Linear(12, 2))
    state = cn.load(io.BytesIO(_torch_bytes(tm.state_dict())), map_location="cpu")
    assert isinstance(state, OrderedDict) and list(state) == list(tm.state_dict())
    cm.load_state_dict(state)
    cm.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(cm(cn.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)


def test_parameters_saved_directly_load_as_arrays():
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.ones(2, 3))
    back = cn.load(io.BytesIO(_torch_bytes({"p": p})))
    np.testing.assert_array_equal(back["p"], np.ones((2, 3), np.float32))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_torch_checkpoint_is_refused_without_running(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    raw = _torch_bytes({"w": torch.ones(2), "evil": _Evil(marker)})
    with pytest.raises(ValueError, match=r"refused to load (posix|os)\.system"):
        cn.load(io.BytesIO(raw))
    assert not marker.exists()
    # torch itself refuses it the same way with weights_only=True
    with pytest.raises(pickle.UnpicklingError):
        torch.load(io.BytesIO(raw), weights_only=True)
    assert not marker.exists()


def test_hand_made_zip_with_eval_is_refused(tmp_path):
    marker = tmp_path / "pwned2"
    payload = (b"\x80\x02cbuiltins\nexec\n(X" + len(f"open('{marker}','w')").to_bytes(4, "little")
               + f"open('{marker}','w')".encode() + b"tR.")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
    with pytest.raises(ValueError, match="refused to load builtins.exec"):
        cn.load(io.BytesIO(buf.getvalue()))
    assert not marker.exists()


def test_storage_geometry_and_compression_are_checked():
    pytest.importorskip("torch")
    import torch

    raw = _torch_bytes({"w": torch.arange(6.0)})
    src = zipfile.ZipFile(io.BytesIO(raw))

    def rebuild(change):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for info in src.infolist():
                data = src.read(info)
                if info.filename.endswith("data/0"):
                    if change == "short":
                        data = data[:-4]
                    zf.writestr(info.filename, data, zipfile.ZIP_DEFLATED
                                if change == "deflate" else zipfile.ZIP_STORED)
                else:
                    zf.writestr(info.filename, data)
        return buf.getvalue()

    with pytest.raises(ValueError, match="holds 20 bytes"):
        cn.load(io.BytesIO(rebuild("short")))
    with pytest.raises(ValueError, match="compressed"):
        cn.load(io.BytesIO(rebuild("deflate")))


def test_legacy_pickle_format_is_refused():
    torch = pytest.importorskip("torch")
    raw = _torch_bytes({"w": torch.ones(2)}, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="pickle"):
        cn.load(io.BytesIO(raw))


def test_load_never_imports_torch(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "w.pth"
    torch.save({"w": torch.ones(3)}, path)
    code = ("import sys, convnet as cn; d = cn.load(sys.argv[1]); "
            "assert d['w'].tolist() == [1.0, 1.0, 1.0]; assert 'torch' not in sys.modules; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_format_torch_is_read_by_torch_load(tmp_path):
    torch = pytest.importorskip("torch")
    m = cn.nn.Sequential(cn.nn.Linear(3, 2), cn.nn.BatchNorm1d(2))
    obj = {"model": m.state_dict(), "epoch": 3, "hist": [0.5, -1.25], "big": 2**40,
           "bf16": np.array([1.5, -2.0], ml_dtypes.bfloat16), "h": np.ones(2, np.float16),
           "t": (1, "x", None, True), "zero_d": np.array(4)}
    path = tmp_path / "m.pt"
    cn.save(obj, path, format="torch")
    back = torch.load(path, weights_only=True)
    assert back["epoch"] == 3 and back["hist"] == [0.5, -1.25] and back["big"] == 2**40
    assert back["t"] == (1, "x", None, True) and back["zero_d"].shape == ()
    assert back["bf16"].dtype == torch.bfloat16 and back["h"].dtype == torch.float16
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(back["model"][k].numpy(), np.asarray(v), err_msg=k)
    tm = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    tm.load_state_dict(back["model"])
    mine = cn.load(path)  # and convnet reads its own torch files
    np.testing.assert_array_equal(mine["bf16"].astype(np.float32), [1.5, -2.0])
    assert mine["zero_d"].shape == ()


def test_format_is_checked(tmp_path):
    with pytest.raises(ValueError, match="format"):
        cn.save({"w": np.ones(2)}, tmp_path / "x", format="pickle")
    with pytest.raises(TypeError, match="storage for dtype uint32"):
        cn.save({"w": np.ones(2, np.uint32)}, tmp_path / "x.pt", format="torch")


def test_save_takes_torch_tensors_and_parameters():
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    cn.save({"p": torch.nn.Parameter(torch.full((2,), 0.5)),
             "h": torch.tensor([1.5, -2.0], dtype=torch.bfloat16)}, buf)
    back = cn.load(io.BytesIO(buf.getvalue()))
    np.testing.assert_array_equal(back["p"], [0.5, 0.5])
    assert back["h"].dtype == ml_dtypes.bfloat16
    assert back["h"].astype(np.float32).tolist() == [1.5, -2.0]
