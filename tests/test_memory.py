"""convnet.memory: live tensor bytes counted once per buffer, released when freed, the
peak since the last reset, and the peak of a training step."""

import gc

import numpy as np
import pytest

import convnet as cn
import convnet.functional as F
from convnet import memory


def _now():
    gc.collect()
    return memory.memory_allocated()


def test_allocation_view_and_release_are_counted_once():
    before = _now()
    x = cn.zeros(1000)
    assert _now() - before == 4000
    views = [x.reshape(10, 100), x[::2], x.detach(), x.data]
    assert _now() - before == 4000  # views share the buffer
    h = cn.zeros(1000, dtype=cn.bfloat16)
    assert _now() - before == 6000  # two bytes an element
    del x, views
    assert _now() - before == 2000
    del h
    assert _now() == before


def test_peak_and_reset():
    base = _now()
    memory.reset_peak_memory_stats()
    assert memory.max_memory_allocated() == base
    big = cn.ones(50_000)
    del big
    assert _now() == base
    assert memory.max_memory_allocated() == base + 200_000
    memory.reset_peak_memory_stats()
    assert memory.max_memory_allocated() == base
    stats = memory.memory_stats()
    assert stats["allocated_bytes.all.current"] == base


def test_graph_keeps_saved_values_alive_until_backward():
    x = cn.randn(256, 64, requires_grad=True)
    w = cn.randn(64, 64, requires_grad=True)
    base = _now()
    loss = (F.relu(x @ w) * 2.0).sum()
    during = _now() - base
    # relu keeps its output (as PyTorch), the product is freed: one activation is held,
    # plus a few scalars
    one = 256 * 64 * 4
    assert one <= during < one + 64
    loss.backward()
    del loss
    after = _now() - base
    # what is left: the two gradients
    assert after == x.numel() * 4 + w.numel() * 4


def test_bad_device():
    with pytest.raises(ValueError, match="device"):
        memory.memory_allocated("tpu")


def _step_peak(model, x, y, mode):
    gc.collect()
    base = memory.memory_allocated()
    memory.reset_peak_memory_stats()
    if mode == "autocast":
        with cn.autocast("cpu"):
            loss = F.cross_entropy(model(x), y)
    else:
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    peak = memory.max_memory_allocated() - base
    model.zero_grad()
    del loss
    return peak


def test_bfloat16_training_step_needs_less_memory():
    cn.manual_seed(0)
    model = cn.models.get_model("lenet", num_classes=10, in_channels=1)
    x = cn.randn(64, 1, 28, 28)
    y = cn.tensor(np.arange(64) % 10)
    fp32 = _step_peak(model, x, y, "fp32")
    amp = _step_peak(model, x, y, "autocast")
    model.bfloat16()
    pure = _step_peak(model, x.bfloat16(), y, "fp32")
    assert fp32 > 0
    # pure bfloat16 halves every array of the step; autocast keeps float32 weights and
    # their gradients but the activations are bfloat16
    assert pure <= 0.55 * fp32
    assert amp < 0.8 * fp32
