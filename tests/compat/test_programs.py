"""Programs written as PyTorch users write them (pytorch/examples, the tutorials, d2l),
run unchanged with ``torch`` bound to convnet; and one step of each against real PyTorch
with the same weights and data: the loss and every parameter's gradient agree.

Each program module has ``build(torch, F)`` returning its pieces: ``model()``, ``batch()``
(the inputs, built with that library's constructors from the same NumPy arrays),
``loss(model, batch)`` and ``main()`` (the program's own training loop, a few steps).
Programs with dropout or sampling compare in eval mode (``compare_in_eval``): random
draws differ between the libraries by design.
"""

import importlib
import math

import numpy as np
import pytest

import convnet
from convnet.nn import functional as cF

PROGRAMS = ["mnist_cnn", "vae", "dcgan", "time_series", "word_lm", "seq2seq_attention",
            "batchnorm_scratch", "cifar_blitz"]


def program(name, lib, F):
    mod = importlib.import_module(f"tests.compat.programs.{name}")
    return mod.build(lib, F)


def to_numpy(t):
    return t.detach().cpu().numpy() if hasattr(t, "cpu") else t.detach().numpy()


def assert_close(ours, theirs, what, rtol=2e-4, floor=1e-6):
    """Max error relative to the reference's largest magnitude (at least ``floor``: a
    gradient that is 0 up to rounding, as a bias before batch norm, is compared on the
    scale of the model's gradients)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    scale = max(np.abs(theirs).max(initial=0.0), floor)
    err = np.abs(ours - theirs).max(initial=0.0) / scale
    assert err <= rtol, f"{what}: relative error {err:.2e}"


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_runs_unchanged_under_convnet(name):
    prog = program(name, convnet, cF)
    result = prog.main()
    history = result[0] if isinstance(result, tuple) else result
    assert len(history) > 0 and all(math.isfinite(v) for v in history)


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_is_valid_pytorch(name):
    """The same program runs under real PyTorch: it is PyTorch code, not convnet's."""
    torch = pytest.importorskip("torch")
    result = program(name, torch, torch.nn.functional).main()
    history = result[0] if isinstance(result, tuple) else result
    assert len(history) > 0 and all(math.isfinite(v) for v in history)


@pytest.mark.parametrize("name", PROGRAMS)
def test_one_step_matches_pytorch(name):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    ours, theirs = program(name, convnet, cF), program(name, torch, tF)
    torch.manual_seed(0)
    models_t = theirs.model()
    models_o = ours.model()
    pairs = list(zip(models_o, models_t)) if isinstance(models_t, tuple) else \
        [(models_o, models_t)]
    for mo, mt in pairs:
        mo.load_state_dict(mt.state_dict())
        if getattr(theirs, "compare_in_eval", False):
            mo.eval()
            mt.eval()
    lo = ours.loss(models_o, ours.batch())
    lt = theirs.loss(models_t, theirs.batch())
    assert_close(lo.item(), lt.item(), "loss")
    lo.backward()
    lt.backward()
    for k, (mo, mt) in enumerate(pairs):
        grads_o = dict(mo.named_parameters())
        floor = 0.05 * max(float(pt.grad.abs().max()) for pt in mt.parameters()
                           if pt.grad is not None)
        for pname, pt in mt.named_parameters():
            assert pname in grads_o, f"model {k}: convnet has no parameter {pname}"
            if pt.grad is None:
                assert grads_o[pname].grad is None, f"model {k} {pname}: unexpected grad"
                continue
            assert grads_o[pname].grad is not None, f"model {k} {pname}: no gradient"
            assert_close(grads_o[pname].grad.numpy(), to_numpy(pt.grad),
                         f"model {k} grad of {pname}", floor=floor)


@pytest.mark.parametrize("name", ["FloatTensor", "DoubleTensor", "LongTensor", "IntTensor",
                                  "BoolTensor"])
def test_legacy_typed_constructors(name):
    torch = pytest.importorskip("torch")
    for args in (([1, 0, 2],), ([[1.0, 2.0]],), (2, 3)):
        ours, theirs = getattr(convnet, name)(*args), getattr(torch, name)(*args)
        assert ours.shape == tuple(theirs.shape)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        if args != (2, 3):  # torch leaves sized ones uninitialised; ours are zeros
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_generator_object_for_random_split():
    parts = convnet.utils.data.random_split(range(10), [7, 3],
                                            generator=convnet.Generator().manual_seed(42))
    again = convnet.utils.data.random_split(range(10), [7, 3],
                                            generator=convnet.Generator().manual_seed(42))
    assert [len(p) for p in parts] == [7, 3]
    assert [list(p) for p in parts] == [list(p) for p in again]
    assert sorted(list(parts[0]) + list(parts[1])) == list(range(10))
    g = convnet.Generator()
    assert g.manual_seed(7) is g and g.initial_seed() == 7
    with pytest.raises(TypeError):
        g.manual_seed(1.5)
