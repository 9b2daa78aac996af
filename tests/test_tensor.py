"""Tensor operators and autograd against PyTorch."""

import gc
import weakref

import numpy as np
import pytest

import convnet as cn
from tests.helpers import check_op

BINARY = [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a.abs() ** b),
]


@pytest.mark.parametrize("name,op", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)),
                                    ((1,), (2, 3))])
def test_broadcasting_binary_ops(name, op, shapes, dtype, rng):
    a = rng.uniform(0.5, 2, shapes[0])
    b = rng.uniform(0.5, 2, shapes[1])
    check_op(op, op, [a, b], dtype, rng=rng)


def test_scalar_operands_keep_dtype(rng):
    x = cn.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    y = 2 * x + 1 - x / 4 + 3 ** x * 0 + x**2
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 - 0.25 + 2 * x.numpy(), rtol=1e-6)


UNARY = [
    ("exp", lambda t: t.exp()), ("log", lambda t: t.abs().log()),
    ("sqrt", lambda t: t.abs().sqrt()),
    ("abs", lambda t: t.abs()), ("neg", lambda t: -t), ("clip", lambda t: t.clip(-0.5, 0.7)),
    ("sum", lambda t: t.sum()), ("sum_dim", lambda t: t.sum(1)), ("mean", lambda t: t.mean()),
    ("mean_keep", lambda t: t.mean((0, 2), keepdim=True)), ("var", lambda t: t.var(1)),
    ("max", lambda t: t.amax(2)), ("max_dim", lambda t: t.max(2).values),
    ("min_dim", lambda t: t.min(1).values),
    ("reshape", lambda t: t.reshape(6, 4)), ("flatten", lambda t: t.flatten(1)),
    ("transpose", lambda t: t.transpose(0, 2)), ("permute", lambda t: t.permute(2, 0, 1)),
    ("index", lambda t: t[1, :, ::2]), ("fancy", lambda t: t[[0, 1, 0]]),
    ("unsqueeze", lambda t: t.unsqueeze(1).squeeze(1)),
]


@pytest.mark.parametrize("name,op", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops(name, op, dtype, rng):
    x = rng.uniform(0.2, 2, (2, 3, 4)) * rng.choice([-1, 1], (2, 3, 4))
    check_op(op, op, [x], dtype, rng=rng)


def test_matmul_shapes(dtype, rng):
    for sa, sb in [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)),
                   ((2, 1, 3, 4), (5, 4, 2))]:
        check_op(lambda a, b: a @ b, lambda a, b: a @ b, [rng.standard_normal(sa),
                                                          rng.standard_normal(sb)], dtype,
                 rng=rng)


def test_cat_stack_where(torch, dtype, rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    check_op(lambda x, y: cn.cat([x, y], 0), lambda x, y: torch.cat([x, y], 0), [a, b], dtype,
             rng=rng)
    c = rng.standard_normal((2, 3))
    check_op(lambda x, y: cn.stack([x, y], 1), lambda x, y: torch.stack([x, y], 1), [a, c],
             dtype, rng=rng)
    cond = a > 0
    check_op(lambda x, y: cn.where(cn.tensor(cond), x, y),
             lambda x, y: torch.where(torch.tensor(cond), x, y), [a, c], dtype, rng=rng)


def test_gradients_accumulate_and_zero():
    x = cn.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 2])


def test_shared_subexpression_gets_both_paths():
    x = cn.tensor([2.0], requires_grad=True)
    y = x * x
    z = y * y + y  # dz/dx = (2y + 1) * 2x = 9 * 4
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [36.0])


def test_graph_freed_after_backward_and_retain_graph():
    x = cn.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_graph_memory_does_not_grow():
    w = cn.randn(50, 50, requires_grad=True)
    refs = []
    for _ in range(5):
        h = (cn.randn(8, 50) @ w).tanh()
        loss = h.sum()
        loss.backward()
        refs.append(weakref.ref(h))
        del h, loss
    gc.collect()
    assert all(r() is None for r in refs), "intermediate tensors survived their step"


def test_no_grad_and_detach():
    x = cn.tensor([1.0], requires_grad=True)
    with cn.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    z = (x * 2).detach()
    assert not z.requires_grad

    @cn.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert cn.is_grad_enabled()


def test_backward_errors():
    x = cn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="gradient shape"):
        (x * 2).backward(cn.tensor([1.0]))
    with pytest.raises(RuntimeError, match="does not require grad"):
        cn.tensor([1.0]).sum().backward()
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):  # as PyTorch
        cn.tensor([1, 2], requires_grad=True)
    with pytest.raises(ValueError, match="device"):
        cn.tensor([1.0], device="tpu")


def test_constructors_and_conversion():
    assert cn.tensor([1.0, 2.0]).dtype == np.float32
    assert cn.tensor(np.arange(3.0)).dtype == np.float64
    assert cn.zeros(2, 3).shape == (2, 3) and cn.ones((4,)).numpy().sum() == 4
    assert cn.arange(5).tolist() == [0, 1, 2, 3, 4]
    t = cn.tensor([[1.5]])
    assert t.item() == 1.5 and t.device == "cpu" and t.to("cpu") is t
    assert t.double().dtype == np.float64
    cn.manual_seed(3)
    a = cn.randn(3).numpy()
    cn.manual_seed(3)
    np.testing.assert_array_equal(a, cn.randn(3).numpy())
    assert "requires_grad=True" in repr(cn.tensor([1.0], requires_grad=True))


def test_cuda_without_gpu_is_a_clear_error():
    if cn.backends()["cuda"]["available"]:
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="cuda"):
        cn.tensor([1.0]).to("cuda")
