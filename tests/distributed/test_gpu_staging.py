"""The GPU path of the collectives, run with a NumPy stand-in for the device (the real
CuPy/NCCL paths await a machine with GPUs)."""

import numpy as np
import pytest

from convnet.distributed import _gpu


class FakeDevice:
    """A 'device' whose arrays are NumPy arrays; records what the stager asks of it."""

    def __init__(self):
        self.pinned_calls, self.syncs, self.copies = [], 0, []

    def pinned(self, nbytes):
        self.pinned_calls.append(nbytes)
        return np.zeros(nbytes, np.uint8)

    def to_host(self, src, dst):
        self.copies.append("d2h")
        dst[...] = src

    def to_device(self, src, dst):
        self.copies.append("h2d")
        dst[...] = src

    def synchronize(self):
        self.syncs += 1


def test_stager_round_trip_reuses_its_pinned_buffer():
    dev = FakeDevice()
    st = _gpu.PinnedStager(dev)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    host = st.to_host(a)
    assert host.tolist() == a.tolist() and host.dtype == np.float32
    assert dev.syncs == 1  # the stream is synchronised before MPI reads
    host *= 2  # what the all-reduce would do in place
    st.to_device(host, a)
    assert a.tolist() == (np.arange(6).reshape(2, 3) * 2).tolist()
    st.to_host(np.ones((3, 2), np.float32))  # same byte size: the buffer is reused
    assert dev.pinned_calls == [24]
    assert dev.copies == ["d2h", "h2d", "d2h"]


def test_stager_widens_half_precision_and_rounds_back():
    dev = FakeDevice()
    st = _gpu.PinnedStager(dev)
    a = np.array([0.5, 1.5, 2.25], np.float16)
    host = st.to_host(a, np.float32)
    assert host.dtype == np.float32 and host.tolist() == [0.5, 1.5, 2.25]
    host += np.float32(1 / 3)
    st.to_device(host, a)
    assert a.dtype == np.float16
    assert a.tolist() == np.array([0.5, 1.5, 2.25], np.float32).__add__(
        np.float32(1 / 3)).astype(np.float16).tolist()


def test_host_arrays_need_no_stager(monkeypatch):
    assert _gpu.stager_for(np.ones(3)) is None
    monkeypatch.setenv("CONVNET_DIST_GPU", "bogus")
    with pytest.raises(ValueError, match="CONVNET_DIST_GPU"):
        _gpu.mode()
    monkeypatch.setenv("CONVNET_DIST_GPU", "staged")
    assert _gpu.mode() == "staged"


@pytest.mark.gpu
def test_cupy_all_reduce_single_rank():
    cp = pytest.importorskip("cupy")
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cp.cuda.runtime.CUDARuntimeError:
        pytest.skip("no usable CUDA driver")
    st = _gpu.PinnedStager()
    a = cp.arange(10, dtype=cp.float32)
    host = st.to_host(a)
    host *= 3
    st.to_device(host, a)
    assert cp.asnumpy(a).tolist() == (np.arange(10) * 3).tolist()
