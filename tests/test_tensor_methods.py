"""Tensor methods PyTorch code uses, conversions, .data/state_dict storage sharing, in-place
optimizers and zero-copy interop; against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import convnet as cn


def _np(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


X = np.random.default_rng(0).standard_normal((3, 4))
IDX = np.array([[0, 2, 1, 3], [1, 1, 0, 0], [3, 2, 2, 1]])

METHODS = [
    ("view_as", lambda m, x: x.view_as(x.T.contiguous())),
    ("reshape_as", lambda m, x: x.reshape_as(m.zeros(2, 6, dtype=x.dtype))),
    ("expand", lambda m, x: x[:1].expand(5, -1)),
    ("expand_as", lambda m, x: x[:, :1].expand_as(x)),
    ("expand_new_dim", lambda m, x: x.expand(2, 3, 4)),
    ("repeat", lambda m, x: x.repeat(2, 3)), ("repeat_lead", lambda m, x: x.repeat(2, 1, 2)),
    ("split", lambda m, x: m.cat([p * (i + 1) for i, p in enumerate(x.split(3, 1))], 1)),
    ("split_sizes", lambda m, x: x.split([1, 2], 0)[1]),
    ("chunk", lambda m, x: x.chunk(2, 1)[1]), ("narrow", lambda m, x: x.narrow(1, 1, 2)),
    ("t", lambda m, x: x.t()), ("contiguous", lambda m, x: x.T.contiguous()),
    ("masked_fill", lambda m, x: x.masked_fill(x > 0.3, -1.0)),
    ("gather", lambda m, x: x.gather(1, m.tensor(IDX))),
    ("gather0", lambda m, x: x.gather(0, m.tensor(IDX[:2, :3] % 3))),
    ("index_select", lambda m, x: x.index_select(1, m.tensor(np.array([3, 0, 3])))),
    ("topk", lambda m, x: x.topk(2, dim=0, largest=False).values),
    ("sort", lambda m, x: x.sort(1)[0]), ("cumsum", lambda m, x: x.cumsum(0)),
    ("scatter", lambda m, x: x.scatter(1, m.tensor(IDX[:, :2]), x[:, 2:] * 5)),
    ("var_unbiased", lambda m, x: x.var(1, unbiased=False)),
    ("std_correction", lambda m, x: x.std(dim=0, correction=0)),
    ("std_keep", lambda m, x: x.std(1, keepdim=True)),
    ("sum_axis", lambda m, x: x.sum(axis=1)), ("mean_axis", lambda m, x: x.mean(axis=0)),
    ("max_axis", lambda m, x: x.max(axis=1).values), ("unbind", lambda m, x: x.unbind(1)[2]),
    ("new_zeros", lambda m, x: x + x.new_zeros(3, 4) + x.new_ones((3, 4))),
    ("type", lambda m, x: x.type(m.float32).double()),
]


@pytest.mark.parametrize("name,fn", METHODS, ids=[m[0] for m in METHODS])
def test_methods_values_and_grads_match_torch(name, fn):
    torch = pytest.importorskip("torch")
    x = cn.tensor(X, requires_grad=True)
    xt = torch.tensor(X, requires_grad=True)
    y, yt = fn(cn, x), fn(torch, xt)
    assert y.shape == tuple(yt.shape) and str(y.dtype) == str(yt.dtype)[6:]
    np.testing.assert_allclose(_np(y), _np(yt), rtol=1e-6 if name == "type" else 1e-12)
    w = np.random.default_rng(1).standard_normal(tuple(yt.shape))
    (y * cn.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(_np(x.grad), _np(xt.grad), rtol=1e-6, atol=1e-12)


def test_scatter_inplace_and_comparisons_match_torch():
    torch = pytest.importorskip("torch")
    for lib in (cn, torch):
        z = lib.zeros(3, 5)
        out = z.scatter_(1, lib.tensor([[0, 4], [1, 1], [2, 3]]), lib.ones(3, 2) * 2)
        assert out is z
        if lib is cn:
            ours = z.tolist()
        else:
            assert ours == z.tolist()
    a, b = cn.tensor([1.0, 2.0, 3.0]), cn.tensor([3.0, 2.0, 1.0])
    at, bt = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])
    for op in ("eq", "ne", "lt", "gt", "le", "ge"):
        r, rt = getattr(a, op)(b), getattr(at, op)(bt)
        assert r.dtype == cn.bool and r.tolist() == rt.tolist()
        assert getattr(a, op)(2.0).tolist() == getattr(at, op)(2.0).tolist()
    assert (a > 1).all().item() is False and (a > 0).all().item() is True
    assert (a > 2).any().item() is True and (a > 0).any(0).tolist() == (at > 0).any(0).tolist()


def test_conversions_and_shape_queries():
    torch = pytest.importorskip("torch")
    x, xt = cn.tensor(X), torch.tensor(X)
    assert x.ndim == xt.ndim == x.dim() and x.numel() == xt.numel() == 12
    assert x.size(1) == 4 and x.size() == (3, 4) and x.size(-1) == 4
    assert x.tolist() == xt.tolist() and x.is_cuda is False
    for conv in ("float", "double", "long", "int", "bool", "half"):
        ours, theirs = getattr(x, conv)(), getattr(xt, conv)()
        assert str(ours.dtype) == str(theirs.dtype)[6:]
        np.testing.assert_array_equal(_np(ours).astype(np.float64),
                                      theirs.numpy().astype(np.float64))
    assert x.type() == xt.type() == "torch.DoubleTensor"
    assert x.float().type() == "torch.FloatTensor" and x.long().type() == "torch.LongTensor"
    assert x.type("torch.FloatTensor").dtype == cn.float32
    i = cn.tensor([2])
    assert int(i) == 2 and float(cn.tensor(2.5)) == 2.5 and bool(cn.tensor([1.0]))
    assert [10, 20, 30][i] == 30 and [10, 20, 30][cn.tensor(1)] == 20
    with pytest.raises(TypeError):
        [1, 2][cn.tensor(1.0)]
    with pytest.raises(RuntimeError):
        bool(cn.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError):
        x.t().t().view(2, 6).t().t()[0].item()
    with pytest.raises(RuntimeError):
        cn.ones(2, 2, 2).t()


def test_data_is_a_tensor_sharing_storage():
    torch = pytest.importorskip("torch")
    for lib in (cn, torch):
        p = lib.nn.Parameter(lib.ones(3))
        d = p.data
        assert isinstance(d, lib.Tensor) and not d.requires_grad
        d.mul_(4)  # changes p, outside the graph
        assert p.tolist() == [4.0, 4.0, 4.0] and p.requires_grad and p.is_leaf
        p.data = lib.zeros(2)
        assert p.shape == (2,) and p.requires_grad


def test_state_dict_values_are_detached_tensors_sharing_storage():
    torch = pytest.importorskip("torch")
    for lib in (cn, torch):
        lib.manual_seed(0)
        m = lib.nn.Linear(3, 2)
        sd = m.state_dict()
        w = sd["weight"]
        assert isinstance(w, lib.Tensor) and not w.requires_grad
        with lib.no_grad():
            m.weight.add_(1.0)
        np.testing.assert_array_equal(_np(w), _np(m.weight))
        m.load_state_dict({"weight": lib.zeros(2, 3), "bias": lib.zeros(2)})
        assert float(w.abs().sum()) == 0.0  # load_state_dict copies into the storage


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "NAdam",
                                  "RAdam", "Adamax"])
def test_every_optimizer_updates_in_place(name):
    if not hasattr(cn.optim, name):
        pytest.skip(f"convnet.optim has no {name}")
    torch = pytest.importorskip("torch")
    kwargs = {"lr": 0.1}
    if name == "SGD":
        kwargs["momentum"] = 0.9
    results = []
    for lib in (cn, torch):
        w = lib.nn.Parameter(lib.tensor([1.0, -2.0, 3.0]))
        view = w.detach().numpy()
        opt = getattr(lib.optim, name)([w], **kwargs)
        for _ in range(3):
            opt.zero_grad()
            (w * w * lib.tensor([1.0, 2.0, 3.0])).sum().backward()
            opt.step()
        np.testing.assert_array_equal(view, _np(w))  # the early view saw every step
        assert w._version >= 3
        results.append(view.copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


def test_dlpack_and_array_interop_without_copies():
    torch = pytest.importorskip("torch")
    t = torch.arange(6.0).reshape(2, 3)
    x = cn.from_dlpack(t)
    t[0, 0] = 42.0
    assert x[0, 0].item() == 42.0 and x.shape == (2, 3)
    back = torch.from_dlpack(x)
    x[1, 2] = -1.0
    assert back[1, 2].item() == -1.0
    a = np.arange(4.0)
    y = cn.from_dlpack(a)
    a[3] = 9.0
    assert y[3].item() == 9.0
    z = np.from_dlpack(y)
    assert np.shares_memory(z, a)
    assert np.asarray(y) is y.numpy() and np.asarray(y, np.float32).dtype == np.float32
    assert x.__dlpack_device__() == t.__dlpack_device__()


def test_torch_tensors_accepted_as_arrays():
    torch = pytest.importorskip("torch")
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = cn.tensor(t)
    t[0, 0] = 0.0
    assert x[0, 0].item() == 1.0  # tensor() copies
    s = cn.as_tensor(t)
    t[0, 1] = 7.0
    assert s[0, 1].item() == 7.0  # as_tensor shares
    y = cn.tensor([1.0, 1.0]) + torch.tensor([2.0, 3.0])
    assert isinstance(y, cn.Tensor) and y.tolist() == [3.0, 4.0]
    m = cn.nn.Linear(2, 1)
    m.load_state_dict({"weight": torch.ones(1, 2), "bias": torch.zeros(1)})
    assert m(cn.tensor([[1.0, 2.0]])).item() == 3.0


def test_dtype_arguments_are_honoured():
    torch = pytest.importorskip("torch")
    for lib in (cn, torch):
        x = lib.tensor([1.0, 2.0])
        assert str(x.cumsum(0, dtype=lib.float64).dtype).endswith("float64")
        assert str(lib.as_tensor(x, dtype=lib.float64).dtype).endswith("float64")
        assert str(x.new_tensor([1, 2], dtype=lib.int64).dtype).endswith("int64")
        assert str(x.new_zeros(2, dtype=lib.int32).dtype).endswith("int32")
        assert str(x.sum(dtype=lib.float64).dtype).endswith("float64")
        assert str((x > 1).sum().dtype).endswith("int64")


def test_norm_format_and_axis_aliases_match_torch():
    torch = pytest.importorskip("torch")
    x, xt = cn.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    for args in ((), (1,), (float("inf"),), (2, 1), (1, 0, True), (3, 1)):
        y, yt = x.norm(*args), xt.norm(*args)
        np.testing.assert_allclose(_np(y), _np(yt), rtol=1e-12)
    x.norm().backward()
    xt.norm().backward()
    np.testing.assert_allclose(_np(x.grad), _np(xt.grad), rtol=1e-12)
    loss, loss_t = cn.tensor(1.23456), torch.tensor(1.23456)
    assert f"{loss:.3f}" == f"{loss_t:.3f}" == "1.235"
    a, b = cn.ones(2, 3), cn.zeros(2, 3)
    assert cn.cat([a, b], axis=1).shape == tuple(torch.cat([torch.ones(2, 3)] * 2, axis=1).shape)
    assert cn.stack([a, b], axis=2).shape == (2, 3, 2)


def test_np_array_copies_and_np_asarray_shares():
    x = cn.ones(3)
    copied, shared = np.array(x), np.asarray(x)
    x.add_(1)
    assert copied.tolist() == [1.0, 1.0, 1.0] and shared.tolist() == [2.0, 2.0, 2.0]
    assert np.array(x, dtype=np.float64).dtype == np.float64


def test_to_argument_forms():
    x = cn.ones(2)
    assert x.to("cpu") is x and x.to(None, None) is x and x.to(cn.device("cpu")) is x
    assert x.to("cpu", cn.float64).dtype == cn.float64
    assert x.to(None, cn.int64).dtype == cn.int64
    assert x.to(dtype=cn.float16).dtype == cn.float16
    assert x.to(cn.zeros(1, dtype=cn.float64)).dtype == cn.float64
    assert x.to("cpu", copy=True) is not x
    with pytest.raises(ValueError, match="device"):
        x.to("tpu")


def test_scatter_with_a_larger_src_reads_only_the_indexed_part():
    torch = pytest.importorskip("torch")
    src = np.arange(12.0).reshape(3, 4) + 100
    ours = cn.tensor(X).scatter(0, cn.tensor([[2, 0]]), cn.tensor(src, requires_grad=True))
    theirs = torch.tensor(X).scatter(0, torch.tensor([[2, 0]]), torch.tensor(src))
    np.testing.assert_array_equal(_np(ours), _np(theirs))
    s = cn.tensor(src, requires_grad=True)
    cn.tensor(X).scatter(0, cn.tensor([[2, 0]]), s).sum().backward()
    expected = np.zeros((3, 4))
    expected[0, :2] = 1.0  # PyTorch's own backward refuses this case; the used part gets 1
    np.testing.assert_array_equal(_np(s.grad), expected)
