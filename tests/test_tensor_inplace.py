"""In-place ops, differentiable item assignment and version counters, against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import convnet as cn


def _pair(torch, array, requires_grad=True):
    a = np.asarray(array, np.float64)
    return (cn.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _close(ours, theirs, atol=1e-12):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-10, atol=atol)


# --------------------------------------------------------------------------- __setitem__


def _setitem_case(lib, a, v, key):
    b = a * 2  # a non-leaf to write into
    b[key] = v * 3
    return (b * b * lib.arange(b.numel(), dtype=b.dtype).reshape(b.shape)).sum()


KEYS = [
    ("int", lambda m: 1, (5,)),
    ("slice", lambda m: (slice(None), slice(2, None)), (3, 3)),
    ("step", lambda m: (slice(None), slice(0, None, 2)), (1, 3)),
    ("mask", lambda m: m.tensor(np.array([[True, False, True, False, True]] * 3)), ()),
    ("fancy", lambda m: m.tensor(np.array([0, 2])), (5,)),
    ("fancy2", lambda m: (m.tensor(np.array([0, 2])), m.tensor(np.array([1, 4]))), (2,)),
    ("ellipsis", lambda m: (Ellipsis, 0), (3,)),
]


@pytest.mark.parametrize("name,key,vshape", KEYS, ids=[k[0] for k in KEYS])
def test_setitem_gradients_match_torch(name, key, vshape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((3, 5))
    v_np = rng.standard_normal(vshape)
    a, at = _pair(torch, a_np)
    v, vt = _pair(torch, v_np)
    loss = _setitem_case(cn, a, v, key(cn))
    loss_t = _setitem_case(torch, at, vt, key(torch))
    loss.backward()
    loss_t.backward()
    _close(loss.item(), loss_t.item())
    _close(a.grad, at.grad)
    _close(v.grad, vt.grad)


def test_setitem_fills_an_empty_buffer_like_an_rnn_loop():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w_np, x_np = rng.standard_normal((4, 4)), rng.standard_normal((3, 4))

    def run(lib, w, x):
        out = lib.zeros(3, 4, dtype=w.dtype)
        h = lib.zeros(4, dtype=w.dtype)
        for t in range(3):
            h = (x[t] + h @ w).tanh()
            out[t] = h
        return (out * out).sum()

    w, wt = _pair(torch, w_np)
    x, xt = _pair(torch, x_np)
    loss, loss_t = run(cn, w, x), run(torch, wt, xt)
    loss.backward()
    loss_t.backward()
    _close(loss.item(), loss_t.item())
    _close(w.grad, wt.grad)
    _close(x.grad, xt.grad)


def test_setitem_writes_the_storage():
    x = cn.zeros(2, 3)
    view = x.numpy()
    x[0, 1] = 5.0
    x[1] = cn.tensor([1.0, 2.0, 3.0])
    assert view.tolist() == [[0.0, 5.0, 0.0], [1.0, 2.0, 3.0]]
    assert x._version == 2


# --------------------------------------------------------------------------- versions


def test_modified_saved_tensor_raises_like_torch():
    torch = pytest.importorskip("torch")
    for lib in (torch, cn):
        a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = a * 2
        c = (b * b).sum()
        b[0] = 100.0
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            c.backward()


def test_inplace_through_a_view_bumps_the_shared_version():
    torch = pytest.importorskip("torch")
    for lib in (torch, cn):
        a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = a.exp()  # exp saves its result
        view = b[1:]
        view.mul_(2)
        assert b._version == view._version == 1
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            b.sum().backward()


def test_unsaved_tensor_may_change():
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (torch, cn):
        a = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        h = a * 2
        y = h + 1  # add keeps no input value
        h.add_(5)
        y.sum().backward()
        grads.append(np.asarray(a.grad.tolist()))
    np.testing.assert_array_equal(grads[0], grads[1])


def test_version_counter_shared_by_detach_not_by_data():
    torch = pytest.importorskip("torch")
    for lib in (torch, cn):
        x = lib.ones(3)
        d = x.detach()
        d.add_(1)
        assert x._version == 1
        x.data.add_(1)
        assert x._version == 1
        assert x.tolist() == [3.0, 3.0, 3.0]


# --------------------------------------------------------------------------- arithmetic

INPLACE = [
    ("iadd", lambda t, o: t.__iadd__(o)), ("isub", lambda t, o: t.__isub__(o)),
    ("imul", lambda t, o: t.__imul__(o)), ("idiv", lambda t, o: t.__itruediv__(o)),
    ("add_alpha", lambda t, o: t.add_(o, alpha=0.5)), ("sub_", lambda t, o: t.sub_(o)),
    ("mul_", lambda t, o: t.mul_(o)), ("div_", lambda t, o: t.div_(o)),
    ("clamp_", lambda t, o: t.clamp_(-0.3, 0.4)), ("zero_", lambda t, o: t.zero_()),
    ("fill_", lambda t, o: t.fill_(2.5)), ("copy_", lambda t, o: t.copy_(o)),
    ("relu_", lambda t, o: t.relu_()),
]


@pytest.mark.parametrize("name,op", INPLACE, ids=[i[0] for i in INPLACE])
def test_recorded_inplace_matches_torch(name, op):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a_np, o_np = rng.standard_normal((2, 3)), rng.uniform(0.5, 2, (3,))
    results = []
    for lib in (cn, torch):
        a = lib.tensor(a_np, requires_grad=True)
        o = lib.tensor(o_np, requires_grad=True)
        h = a.tanh()
        h2 = h * 1.0
        out = op(h2, o)
        assert out is h2
        loss = (h2 * h2 * lib.tensor(np.arange(6.0).reshape(2, 3))).sum()
        loss.backward()
        results.append((loss.item(), a.grad, o.grad, h2._version))
    (l1, ga, go, v1), (l2, gat, got, v2) = results
    _close(l1, l2)
    _close(ga, gat)
    if got is None:
        assert go is None
    else:
        _close(go, got)
    assert v1 == v2 == 1


def test_inplace_on_leaf_requiring_grad_is_refused_like_torch():
    torch = pytest.importorskip("torch")
    for lib in (torch, cn):
        w = lib.ones(3, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            w += 1
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            w[0] = 2.0
        with pytest.raises(RuntimeError, match="view of a leaf Variable"):
            w[1:].mul_(2)


def test_sgd_by_hand_under_no_grad_updates_weights_in_place():
    w = cn.nn.Parameter(cn.tensor([1.0, 2.0]))
    view = w.numpy()
    (w * w).sum().backward()
    with cn.no_grad():
        w -= 0.1 * w.grad
        w.grad.zero_()
    np.testing.assert_allclose(view, [0.8, 1.6], rtol=1e-6)
    assert w.is_leaf and w.requires_grad and w.grad.tolist() == [0.0, 0.0]


def test_random_fills_and_requires_grad_():
    cn.manual_seed(0)
    x = cn.zeros(2000)
    assert x.normal_(1.0, 2.0) is x
    assert abs(float(x.mean()) - 1.0) < 0.2 and abs(float(x.std()) - 2.0) < 0.2
    x.uniform_(-1.0, 3.0)
    assert float(x.min()) >= -1.0 and float(x.max()) < 3.0 and float(x.mean()) > 0.8
    assert x.requires_grad_() is x and x.requires_grad


def test_inplace_errors_match_torch():
    torch = pytest.importorskip("torch")
    for lib in (torch, cn):
        with pytest.raises(RuntimeError):
            lib.ones(3).add_(lib.ones(2, 3))  # would broadcast self
        with pytest.raises(RuntimeError):
            lib.ones(3, dtype=lib.int64).add_(1.5)  # float result into a long tensor
        with pytest.raises(RuntimeError):
            lib.zeros(1).expand(3).add_(1)  # several elements on one memory location


# --------------------------------------------------------------------------- inplace=


@pytest.mark.parametrize("layer", ["ReLU", "LeakyReLU", "ELU", "SELU", "Dropout"])
def test_inplace_layers_match_torch(layer):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((4, 5))
    outs = []
    for lib in (cn, torch):
        x = lib.tensor(x_np, requires_grad=True)
        m = getattr(lib.nn, layer)(inplace=True) if layer != "LeakyReLU" else \
            lib.nn.LeakyReLU(0.2, inplace=True)
        if layer == "Dropout":
            m.eval()
        h = x * 3.0
        y = m(h)
        assert y is h  # the same tensor, changed in place
        (y * y).sum().backward()
        outs.append((y.detach(), x.grad))
    _close(outs[0][0], outs[1][0], atol=1e-12)
    _close(outs[0][1], outs[1][1], atol=1e-12)


def test_functional_inplace_flags():
    x = cn.tensor([-1.0, 2.0])
    assert cn.functional.relu(x, inplace=True) is x and x.tolist() == [0.0, 2.0]
    y = cn.tensor([-1.0, 2.0])
    assert cn.functional.leaky_relu(y, 0.5, inplace=True) is y and y.tolist() == [-0.5, 2.0]
    z = cn.ones(1000)
    cn.manual_seed(0)
    out = cn.functional.dropout(z, 0.5, training=True, inplace=True)
    assert out is z and set(np.unique(z.numpy())) == {0.0, 2.0}


# --------------------------------------------------------------------------- graph


def test_users_of_the_old_value_keep_their_gradient_path():
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (cn, torch):
        x = lib.tensor([0.5, -1.0, 2.0], dtype=lib.float64, requires_grad=True)
        h = x * 2
        y = h * 3  # uses h before the write (Mul keeps x's value, not h's)
        h.add_(x * x)  # h's new producer: add(old h, x*x)
        z = h * h
        (y.sum() + z.sum()).backward()
        grads.append(np.asarray(x.grad.tolist()))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


def test_retain_grad_and_second_backward():
    torch = pytest.importorskip("torch")
    for lib in (cn, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        h = x * 3
        h.retain_grad()
        loss = (h * h).sum()
        loss.backward(retain_graph=True)
        assert h.grad.tolist() == [6.0, 12.0]
        loss.backward()
        assert x.grad.tolist() == [36.0, 72.0]
        with pytest.raises(RuntimeError, match="second time"):
            loss.backward()


def test_write_through_view_of_non_leaf_matches_torch():
    torch = pytest.importorskip("torch")
    grads = []
    for lib in (cn, torch):
        x = lib.tensor(np.arange(6.0).reshape(2, 3) / 5, requires_grad=True)
        w = lib.tensor([1.0, -2.0, 0.5], dtype=lib.float64, requires_grad=True)
        b = x * 2.0  # keeps no value of its output
        row = b[1]
        row.mul_(w)  # b's second row scaled in place through the view
        t = b.t()
        t[0] += 1.0  # and a column, through a transposed view
        loss = (b * b).sum() + row.sum()
        loss.backward()
        grads.append((loss.item(), np.asarray(x.grad.tolist()), np.asarray(w.grad.tolist())))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-12)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12)
    np.testing.assert_allclose(grads[0][2], grads[1][2], rtol=1e-12)


def test_scalar_results_take_inplace_updates():
    total = cn.tensor([1.0, 2.0]).sum()
    total += 1
    total *= 2
    assert total.item() == 8.0 and total._version == 2


def test_a_view_made_before_a_write_reads_the_new_base_like_torch():
    torch = pytest.importorskip("torch")
    res = []
    for lib in (cn, torch):
        x = lib.tensor(np.arange(6.0).reshape(2, 3) / 5, requires_grad=True)
        w = lib.tensor([1.0, -2.0, 0.5], dtype=lib.float64, requires_grad=True)
        b = x * 2.0
        col = b[:, 0]  # a view made before the write
        b[1].mul_(w)  # b[1, 0] *= w[0], through another view
        y = col * 3  # the older view, read after the write
        col.add_(w[:2])  # and written through
        loss = (y * y).sum() + (b * b).sum()
        loss.backward()
        res.append((loss.item(), np.asarray(x.grad.tolist()), np.asarray(w.grad.tolist())))
    for ours, theirs in zip(res[0], res[1]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_resnet_block_idioms_with_inplace_relu_and_residual_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x_np = rng.standard_normal((2, 3, 5, 5))
    w_np = rng.standard_normal((3, 3, 3, 3)) * 0.3
    results = []
    for lib in (cn, torch):
        conv = lib.nn.Conv2d(3, 3, 3, padding=1, bias=False).double()
        bn = lib.nn.BatchNorm2d(3).double()
        relu = lib.nn.ReLU(inplace=True)
        with lib.no_grad():
            conv.weight.copy_(lib.tensor(w_np))
        x = lib.tensor(x_np, requires_grad=True)
        out = relu(bn(conv(x)))
        out = bn(conv(out))
        out += x  # the residual, in place (as torchvision's BasicBlock)
        out = relu(out)
        (out * out).sum().backward()
        results.append((out.detach().numpy().copy(), x.grad.numpy().copy(),
                        conv.weight.grad.numpy().copy(), bn.running_mean.numpy().copy()))
    for ours, theirs in zip(results[0], results[1]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-11)


def test_a_saved_view_written_through_its_base_raises_like_torch():
    torch = pytest.importorskip("torch")
    for lib in (torch, cn):
        t = lib.ones(4, 5, requires_grad=True)
        out = t * 1.0
        out[0] = out[3] ** 2  # pow keeps the view out[3]; the write bumps their counter
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()
