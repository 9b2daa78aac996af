"""Tensor.register_post_accumulate_grad_hook (what DistributedDataParallel builds on), and
the backward order that lets it overlap communication."""

import numpy as np
import pytest

import convnet as cn
from convnet import nn


def test_hook_sees_the_accumulated_grad_once_per_backward():
    w = cn.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    calls = []
    handle = w.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad._data.copy()))
    # w is used twice: the hook runs once, after both contributions are summed
    ((w * 3.0).sum() + (w * w).sum()).backward()
    assert len(calls) == 1 and calls[0].tolist() == [5.0, 7.0]
    (w * 2.0).sum().backward()  # accumulates onto the existing .grad
    assert len(calls) == 2 and calls[1].tolist() == [7.0, 9.0]
    handle.remove()
    (w * 2.0).sum().backward()
    assert len(calls) == 2


def test_hook_matches_pytorch_call_pattern():
    torch = pytest.importorskip("torch")
    wt = torch.tensor([1.0, 2.0], requires_grad=True)
    seen_t = []
    wt.register_post_accumulate_grad_hook(lambda t: seen_t.append(t.grad.tolist()))
    ((wt * 3.0).sum() + (wt * wt).sum()).backward()
    w = cn.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad._data.tolist()))
    ((w * 3.0).sum() + (w * w).sum()).backward()
    assert seen == seen_t


def test_hook_errors_like_pytorch():
    w = cn.tensor(np.ones(2, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        cn.tensor(np.ones(2, np.float32)).register_post_accumulate_grad_hook(lambda t: None)


def test_a_layers_gradients_are_final_right_after_its_backward():
    # the last layer's parameters must be ready before the first layer's backward runs,
    # which is what lets DistributedDataParallel start their all-reduce early
    cn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 6), nn.Tanh(),
                          nn.Linear(6, 2))
    order = []
    names = {id(p): n for n, p in model.named_parameters()}
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(lambda t: order.append(names[id(t)]))
    model(cn.tensor(np.ones((3, 4), np.float32))).sum().backward()
    layers = [n.split(".")[0] for n in order]
    assert layers == ["4", "4", "2", "2", "0", "0"]
