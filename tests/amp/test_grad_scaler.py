"""GradScaler against torch.amp.GradScaler on the CPU: the same scale history on a run
with forced inf/NaN gradients, skipped steps, unscale before clipping, errors, resume."""

import warnings

import numpy as np
import pytest

import convnet as cn
from convnet.amp import GradScaler

# steps whose gradients are made non-finite (inf, NaN): the scale backs off there
BAD = {1: np.inf, 2: np.nan, 7: -np.inf}


def _models(torch, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    ours = cn.nn.Linear(5, 3)
    ours.weight.data = cn.tensor(w)
    ours.bias.data = cn.tensor(b)
    ref = torch.nn.Linear(5, 3)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w))
        ref.bias.copy_(torch.from_numpy(b))
    return ours, ref


def _batch(step):
    rng = np.random.default_rng(100 + step)
    return rng.standard_normal((4, 5)).astype(np.float32)


def _run(lib, model, scaler, opt, steps, start=0, clip=None):
    """Train ``steps`` steps; returns (scale after each update, step() return values)."""
    history, returned = [], []
    for step in range(start, start + steps):
        opt.zero_grad()
        x = lib.tensor(_batch(step))
        loss = (model(x) ** 2).mean()
        scaler.scale(loss).backward()
        if step in BAD:
            model.weight.grad[0, 0] = BAD[step]
        if clip is not None:
            scaler.unscale_(opt)
            lib.nn.utils.clip_grad_norm_(model.parameters(), clip)
        returned.append(scaler.step(opt))
        scaler.update()
        history.append(scaler.get_scale())
    return history, returned


def test_scale_history_and_weights_match_torch(torch):
    ours, ref = _models(torch)
    kw = dict(init_scale=2.0**10, growth_factor=2.0, backoff_factor=0.5, growth_interval=3)
    s_ours, s_ref = GradScaler("cpu", **kw), torch.amp.GradScaler("cpu", **kw)
    o_ours = cn.optim.SGD(ours.parameters(), lr=0.1)
    o_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    h_ours, ret = _run(cn, ours, s_ours, o_ours, 12)
    h_ref, _ = _run(torch, ref, s_ref, o_ref, 12)
    assert h_ours == h_ref
    # backs off at each bad step, grows after 3 good ones in a row
    assert h_ours == [1024.0, 512.0, 256.0, 256.0, 256.0, 512.0, 512.0, 256.0, 256.0, 256.0,
                      512.0, 512.0]
    # a skipped step returns None (SGD.step returns None too, so check the weights moved
    # only on good steps through the final values)
    assert all(r is None for r in ret)
    np.testing.assert_allclose(ours.weight.numpy(), ref.weight.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(ours.bias.numpy(), ref.bias.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    assert s_ours._get_growth_tracker() == s_ref._get_growth_tracker()


def test_skipped_step_leaves_weights_and_returns_none():
    model = cn.nn.Linear(5, 3)
    before = model.weight.numpy().copy()

    class Opt(cn.optim.SGD):
        def step(self, closure=None):
            super().step()
            return "stepped"

    opt = Opt(model.parameters(), lr=0.1)
    scaler = GradScaler("cpu", init_scale=8.0)
    (scaler.scale(model(cn.ones(2, 5)).sum())).backward()
    model.weight.grad[1, 2] = float("nan")
    assert scaler.step(opt) is None
    np.testing.assert_array_equal(model.weight.numpy(), before)
    scaler.update()
    assert scaler.get_scale() == 4.0
    opt.zero_grad()
    (scaler.scale(model(cn.ones(2, 5)).sum())).backward()
    assert scaler.step(opt) == "stepped"
    assert not np.array_equal(model.weight.numpy(), before)


def test_unscale_then_clip_matches_torch(torch):
    ours, ref = _models(torch, seed=3)
    kw = dict(init_scale=2.0**12, growth_interval=2)
    s_ours, s_ref = GradScaler("cpu", **kw), torch.amp.GradScaler("cpu", **kw)
    o_ours = cn.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9)
    o_ref = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    h_ours, _ = _run(cn, ours, s_ours, o_ours, 9, clip=0.25)
    h_ref, _ = _run(torch, ref, s_ref, o_ref, 9, clip=0.25)
    assert h_ours == h_ref
    np.testing.assert_allclose(ours.weight.numpy(), ref.weight.detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_unscale_divides_the_gradient_by_the_scale():
    w = cn.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = cn.optim.SGD([w], lr=0.0)
    scaler = GradScaler("cpu", init_scale=1024.0)
    scaled = scaler.scale((w * w).sum())
    assert scaled.item() == pytest.approx(14.0 * 1024)
    scaled.backward()
    np.testing.assert_allclose(w.grad.numpy(), np.array([2, -4, 6]) * 1024.0)
    scaler.unscale_(opt)
    np.testing.assert_allclose(w.grad.numpy(), [2.0, -4.0, 6.0])


def test_unscale_twice_and_step_twice_raise_like_torch(torch):
    for lib, make in ((cn, GradScaler), (torch, torch.amp.GradScaler)):
        w = lib.ones(3, requires_grad=True)
        opt = lib.optim.SGD([w], lr=0.1)
        scaler = make("cpu")
        scaler.scale(w.sum()).backward()
        scaler.unscale_(opt)
        with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
            scaler.unscale_(opt)
        scaler.step(opt)
        with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
            scaler.step(opt)
        with pytest.raises(RuntimeError, match="unscale_\\(\\) is being called after step"):
            scaler.unscale_(opt)
        scaler.update()
        scaler.scale(w.sum()).backward()  # a new iteration may unscale again
        scaler.unscale_(opt)


def test_step_before_scale_is_an_assertion_like_torch(torch):
    for lib, make in ((cn, GradScaler), (torch, torch.amp.GradScaler)):
        w = lib.ones(3, requires_grad=True)
        with pytest.raises(AssertionError, match="_scale is None"):
            make("cpu").step(lib.optim.SGD([w], lr=0.1))


def test_float16_gradients_cannot_be_unscaled():
    w = cn.ones(3, dtype=cn.float16, requires_grad=True)
    opt = cn.optim.SGD([w], lr=0.1)
    scaler = GradScaler("cpu", init_scale=1024.0)
    scaler.scale(w.float().sum()).backward()
    assert w.grad.dtype == cn.float16
    with pytest.raises(ValueError, match="FP16 gradients"):
        scaler.unscale_(opt)


def test_state_dict_resumes_the_same_history(torch):
    kw = dict(init_scale=2.0**10, growth_interval=3)
    ours, _ = _models(torch, seed=5)
    full = GradScaler("cpu", **kw)
    h_full, _ = _run(cn, ours, full, cn.optim.SGD(ours.parameters(), lr=0.1), 12)

    ours, _ = _models(torch, seed=5)
    opt = cn.optim.SGD(ours.parameters(), lr=0.1)
    first = GradScaler("cpu", **kw)
    h1, _ = _run(cn, ours, first, opt, 5)
    state = first.state_dict()
    ref = torch.amp.GradScaler("cpu", **kw)
    assert set(state) == set(ref.state_dict())
    resumed = GradScaler("cpu")
    resumed.load_state_dict(state)
    h2, _ = _run(cn, ours, resumed, opt, 7, start=5)
    assert h1 + h2 == h_full
    assert resumed.get_growth_interval() == 3


def test_disabled_scaler_is_a_pass_through():
    w = cn.ones(3, requires_grad=True)
    opt = cn.optim.SGD([w], lr=0.5)
    scaler = GradScaler("cpu", enabled=False)
    loss = w.sum()
    assert scaler.scale(loss) is loss
    loss.backward()
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(w.numpy(), [0.5, 0.5, 0.5])
    assert not scaler.is_enabled() and scaler.get_scale() == 1.0
    assert scaler.state_dict() == {}
    with pytest.raises(RuntimeError, match="state dict is empty"):
        GradScaler("cpu").load_state_dict({})


def test_cuda_scaler_without_cuda_warns_and_disables():
    if cn.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = GradScaler()
    assert not scaler.is_enabled()
    assert any("CUDA is not available" in str(w.message) for w in caught)


def test_scale_of_a_list_and_bad_arguments():
    scaler = GradScaler("cpu", init_scale=4.0)
    a, b = scaler.scale([cn.ones(2), cn.full((1,), 2.0)])
    np.testing.assert_array_equal(a.numpy(), [4.0, 4.0])
    np.testing.assert_array_equal(b.numpy(), [8.0])
    with pytest.raises(ValueError, match="growth_factor"):
        GradScaler("cpu", growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff_factor"):
        GradScaler("cpu", backoff_factor=1.0)
    with pytest.raises(ValueError, match="device"):
        GradScaler("tpu")


def test_update_with_new_scale():
    scaler = GradScaler("cpu")
    w = cn.ones(2, requires_grad=True)
    scaler.scale(w.sum()).backward()
    scaler.update(new_scale=128.0)
    assert scaler.get_scale() == 128.0
    scaler.update(new_scale=cn.tensor(32.0))
    assert scaler.get_scale() == 32.0
