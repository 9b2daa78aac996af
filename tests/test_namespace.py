"""The torch-like top level: functions, dtypes, device, cuda, module aliases; against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import convnet as cn


def _np(t):
    return t.detach().numpy() if hasattr(t, "detach") else np.asarray(t)


X = np.random.default_rng(0).uniform(0.2, 2.0, (3, 4))

FUNCS = [
    ("exp", lambda m, x: m.exp(x)), ("log", lambda m, x: m.log(x)),
    ("sqrt", lambda m, x: m.sqrt(x)), ("abs", lambda m, x: m.abs(x - 1)),
    ("sum", lambda m, x: m.sum(x)), ("sum_dim", lambda m, x: m.sum(x, 1)),
    ("sum_axis", lambda m, x: m.sum(x, axis=0)), ("mean", lambda m, x: m.mean(x, 0, True)),
    ("max", lambda m, x: m.max(x)), ("min", lambda m, x: m.min(x)),
    ("max_dim", lambda m, x: m.max(x, 1).values), ("min_dim", lambda m, x: m.min(x, 0)[0]),
    ("maximum", lambda m, x: m.maximum(x, x * 0 + 1)),
    ("clamp", lambda m, x: m.clamp(x, 0.5, 1.5)), ("flatten", lambda m, x: m.flatten(x)),
    ("matmul", lambda m, x: m.matmul(x, x.T)),
    ("bmm", lambda m, x: m.bmm(x.reshape(3, 2, 2), x.reshape(3, 2, 2))),
    ("einsum", lambda m, x: m.einsum("ij,kj->ik", x, x * 2)),
    ("einsum_sum", lambda m, x: m.einsum("ij->j", x)),
    ("einsum_batch", lambda m, x: m.einsum("bij,bjk->bik", x.reshape(3, 2, 2),
                                           x.reshape(3, 2, 2))),
    ("topk", lambda m, x: m.topk(x, 2, dim=1).values),
    ("sort", lambda m, x: m.sort(x, dim=0, descending=True).values),
    ("cumsum", lambda m, x: m.cumsum(x, dim=1)), ("softmax", lambda m, x: m.softmax(x, 1)),
    ("sigmoid", lambda m, x: m.sigmoid(x)), ("tanh", lambda m, x: m.tanh(x)),
    ("var", lambda m, x: m.var(x, 1, correction=0)), ("std", lambda m, x: m.std(x, 0)),
]


@pytest.mark.parametrize("name,fn", FUNCS, ids=[f[0] for f in FUNCS])
def test_functions_values_and_grads_match_torch(name, fn):
    torch = pytest.importorskip("torch")
    x = cn.tensor(X, requires_grad=True)
    xt = torch.tensor(X, requires_grad=True)
    y, yt = fn(cn, x), fn(torch, xt)
    assert isinstance(y, cn.Tensor) and y.shape == tuple(yt.shape)
    np.testing.assert_allclose(_np(y), _np(yt), rtol=1e-10, atol=1e-12)
    w = np.random.default_rng(1).standard_normal(tuple(yt.shape))
    (y * cn.tensor(w)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(_np(x.grad), _np(xt.grad), rtol=1e-10, atol=1e-12)


def test_argmax_and_integer_results_match_torch():
    torch = pytest.importorskip("torch")
    x, xt = cn.tensor(X), torch.tensor(X)
    for f in (lambda m, t: m.argmax(t), lambda m, t: m.argmax(t, 1),
              lambda m, t: m.argmax(t, dim=0, keepdim=True), lambda m, t: t.argmin(1),
              lambda m, t: m.max(t, 1).indices, lambda m, t: m.sort(t, 0)[1],
              lambda m, t: m.topk(t, 3).indices, lambda m, t: m.argsort(t, 1, True)):
        ours, theirs = f(cn, x), f(torch, xt)
        assert ours.dtype == cn.int64 and theirs.dtype == torch.int64
        np.testing.assert_array_equal(_np(ours), _np(theirs))


def test_max_min_sort_topk_return_named_tuples():
    torch = pytest.importorskip("torch")
    x = cn.tensor([[1.0, 5.0], [7.0, 2.0]])
    for name, call in [("max", lambda t: t.max(1)), ("min", lambda t: t.min(dim=0)),
                       ("sort", lambda t: t.sort()), ("topk", lambda t: t.topk(1))]:
        r = call(x)
        rt = call(torch.tensor([[1.0, 5.0], [7.0, 2.0]]))
        assert isinstance(r, tuple) and type(r).__name__ == type(rt).__name__ == name
        values, indices = r
        assert values is r.values and indices is r.indices
        assert r.values.tolist() == rt.values.tolist()
        assert r.indices.tolist() == rt.indices.tolist()
    _, pred = x.max(1)  # the classic accuracy idiom, at batch size 2
    assert pred.tolist() == [1, 0]
    assert cn.max(x, 1)[1].tolist() == [1, 0]


def test_creation_functions_match_torch():
    torch = pytest.importorskip("torch")
    t = cn.ones(2, 3, dtype=cn.float64)
    tt = torch.ones(2, 3, dtype=torch.float64)
    for f in (lambda m, a: m.zeros_like(a), lambda m, a: m.ones_like(a),
              lambda m, a: m.full_like(a, 7), lambda m, a: m.eye(3),
              lambda m, a: m.eye(2, 4), lambda m, a: m.linspace(0, 1, 5),
              lambda m, a: m.empty(2, 5).zero_(), lambda m, a: m.full((2,), 3),
              lambda m, a: m.zeros_like(a, dtype=m.int32)):
        ours, theirs = f(cn, t), f(torch, tt)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(_np(ours), _np(theirs))
    for f in (cn.randn_like, cn.rand_like):
        r = f(t)
        assert r.shape == (2, 3) and r.dtype == cn.float64
    assert float(cn.rand_like(cn.zeros(1000)).min()) >= 0.0


def test_random_integers():
    cn.manual_seed(0)
    r = cn.randint(0, 5, (1000,))
    assert r.dtype == cn.int64 and set(np.unique(r.numpy())) == {0, 1, 2, 3, 4}
    assert cn.randint(3, (4, 2)).shape == (4, 2) and int(cn.randint(3, (50,)).max()) <= 2
    p = cn.randperm(10)
    assert p.dtype == cn.int64 and sorted(p.tolist()) == list(range(10))
    cn.manual_seed(5)
    a = cn.randperm(8).tolist()
    cn.manual_seed(5)
    assert cn.randperm(8).tolist() == a


def test_from_numpy_and_as_tensor_share_memory():
    a = np.arange(4.0)
    t = cn.from_numpy(a)
    a[0] = 9
    assert t[0].item() == 9 and t.dtype == cn.float64
    u = cn.as_tensor(a)
    u[1] = 7
    assert a[1] == 7
    assert cn.as_tensor([1, 2]).dtype == cn.int64
    assert cn.as_tensor(a, dtype=cn.float32).dtype == cn.float32
    with pytest.raises(TypeError):
        cn.from_numpy([1.0, 2.0])


def test_dtypes_are_torch_names():
    torch = pytest.importorskip("torch")
    pairs = {"float32": "float32", "float64": "float64", "float16": "float16",
             "bfloat16": "bfloat16", "int64": "int64", "int32": "int32", "long": "int64",
             "double": "float64", "float": "float32", "bool": "bool", "half": "float16",
             "int": "int32"}
    for name, expected in pairs.items():
        assert str(getattr(cn, name)) == expected == str(getattr(torch, name))[6:]
    x = cn.tensor([1.5, -2.25])
    assert x.dtype == cn.float32 and x.to(cn.float64).dtype == cn.float64
    b = x.to(cn.bfloat16)
    assert b.dtype == cn.bfloat16 and b.float().tolist() == [1.5, -2.25]
    assert x.to(cn.long).tolist() == [1, -2] and x.to(cn.bool).dtype == cn.bool
    assert cn.zeros(2, dtype=cn.long).dtype == cn.int64


def test_device_and_cuda():
    d = cn.device("cuda:0")
    assert d.type == "cuda" and d.index == 0 and d == "cuda" and repr(d).startswith("device(")
    assert cn.device("cpu") == "cpu" and cn.tensor([1.0]).device == cn.device("cpu")
    assert cn.tensor([1.0]).device.type == "cpu" and not cn.tensor([1.0]).is_cuda
    with pytest.raises(ValueError, match="device"):
        cn.device("tpu")
    assert isinstance(cn.cuda.is_available(), bool)
    assert cn.cuda.device_count() >= 0
    dev = cn.device("cuda" if cn.cuda.is_available() else "cpu")
    assert cn.ones(2).to(dev).device == dev


def test_grad_modes():
    x = cn.ones(2, requires_grad=True)
    with cn.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad
    cn.set_grad_enabled(False)
    try:
        assert not cn.is_grad_enabled()
    finally:
        cn.set_grad_enabled(True)
    with cn.no_grad():
        assert not (x * 2).requires_grad
    assert cn.is_tensor(x) and not cn.is_tensor(np.ones(2))


def test_module_aliases():
    import convnet.nn.functional as F

    assert F is cn.functional and cn.nn.functional is cn.functional
    assert cn.models.__name__ == "convnet.models" and cn.data.__name__ == "convnet.data"
    assert cn.utils.__name__ == "convnet.utils"


def test_bfloat16_round_trip_matches_torch():
    torch = pytest.importorskip("torch")
    v = np.random.default_rng(0).standard_normal(50).astype(np.float32)
    ours = cn.tensor(v).to(cn.bfloat16).float().numpy()
    theirs = torch.tensor(v).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(ours, theirs)
