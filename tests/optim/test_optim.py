"""Optimizers and schedules: the same steps in convnet and PyTorch give the same parameters."""

import numpy as np
import pytest

import convnet as cn
from tests.helpers import torch_or_skip

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.5, dampening=0.2)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.99), amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1)),
]


def run_both(name, kwargs, steps=8, seed=0):
    torch = torch_or_skip()
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal((5, 4)), rng.standard_normal(3)]
    ours = [cn.nn.Parameter(w.copy()) for w in w0]
    theirs = [torch.nn.Parameter(torch.tensor(w.copy())) for w in w0]
    opt = getattr(cn.optim, name)(ours, **kwargs)
    opt_t = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(steps):
        for p, pt in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad = cn.tensor(g)
            pt.grad = torch.tensor(g)
        opt.step()
        opt_t.step()
    return ours, theirs, opt, opt_t


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_update_matches_torch(name, kwargs):
    ours, theirs, _, _ = run_both(name, kwargs)
    # PyTorch keeps NAdam's running momentum product in a float32 scalar tensor
    rtol = 1e-7 if name == "NAdam" else 1e-9
    for p, pt in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), pt.detach().numpy(), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("name,kwargs", CASES[2:3] + CASES[6:9] + CASES[11:],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_state_dict_round_trip_resumes_identically(name, kwargs, tmp_path):
    ours, _, opt, _ = run_both(name, kwargs, steps=3)
    path = tmp_path / "opt.safetensors"
    cn.save({"opt": opt.state_dict(), "params": [p.numpy() for p in ours]}, path)
    loaded = cn.load(path)
    clone = [cn.nn.Parameter(a) for a in loaded["params"]]
    opt2 = getattr(cn.optim, name)(clone, **kwargs)
    opt2.load_state_dict(loaded["opt"])
    g = [np.full(p.shape, 0.3) for p in ours]
    for p, q, gi in zip(ours, clone, g):
        p.grad, q.grad = cn.tensor(gi), cn.tensor(gi)
    opt.step()
    opt2.step()
    for p, q in zip(ours, clone):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_float32_params_stay_float32():
    p = cn.nn.Parameter(np.ones(3, np.float32))
    opt = cn.optim.Adam([p], lr=0.1)
    p.grad = cn.tensor(np.ones(3, np.float32))
    opt.step()
    assert p.dtype == np.float32


def test_zero_grad_and_param_groups():
    a, b = cn.nn.Parameter(np.ones(2)), cn.nn.Parameter(np.ones(2))
    opt = cn.optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = cn.tensor(np.ones(2)), cn.tensor(np.ones(2))
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9)
    np.testing.assert_allclose(b.numpy(), 0.0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    with pytest.raises(ValueError, match="empty parameter list"):
        cn.optim.Adam([])
    with pytest.raises(ValueError, match="lr"):
        cn.optim.SGD([a], lr=-1)


SCHEDULES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedules_match_torch(torch, name, kwargs):
    p = cn.nn.Parameter(np.ones(1))
    pt = torch.nn.Parameter(torch.ones(1))
    opt, opt_t = cn.optim.SGD([p], lr=0.1), torch.optim.SGD([pt], lr=0.1)
    s = getattr(cn.optim.lr_scheduler, name)(opt, **kwargs)
    st = getattr(torch.optim.lr_scheduler, name)(opt_t, **kwargs)
    for _ in range(10):
        opt_t.step()
        s.step()
        st.step()
        assert s.get_last_lr()[0] == pytest.approx(st.get_last_lr()[0], rel=1e-12)


def test_reduce_on_plateau_matches_torch(torch):
    p, pt = cn.nn.Parameter(np.ones(1)), torch.nn.Parameter(torch.ones(1))
    opt, opt_t = cn.optim.SGD([p], lr=1.0), torch.optim.SGD([pt], lr=1.0)
    kw = dict(factor=0.5, patience=2, cooldown=1, min_lr=0.05)
    s = cn.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    st = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_t, **kw)
    losses = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85,
              0.85, 0.85, 0.85]
    for loss in losses:
        s.step(loss)
        st.step(loss)
        assert opt.param_groups[0]["lr"] == pytest.approx(opt_t.param_groups[0]["lr"])
    assert opt.param_groups[0]["lr"] < 1.0


def test_clip_grad_norm_and_value_match_torch(torch):
    rng = np.random.default_rng(0)
    gs = [rng.standard_normal((3, 4)) * 5, rng.standard_normal(7) * 5]
    ours = [cn.nn.Parameter(np.zeros_like(g)) for g in gs]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in gs]
    for p, pt, g in zip(ours, theirs, gs):
        p.grad, pt.grad = cn.tensor(g), torch.tensor(g)
    n = cn.nn.utils.clip_grad_norm_(ours, 1.0)
    nt = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert n == pytest.approx(float(nt))
    for p, pt in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), pt.grad.numpy(), rtol=1e-6)
    cn.nn.utils.clip_grad_value_(ours, 0.1)
    torch.nn.utils.clip_grad_value_(theirs, 0.1)
    for p, pt in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), pt.grad.numpy())
    assert max(float(np.abs(p.grad.numpy()).max()) for p in ours) <= 0.1


def test_l1_l2_penalties_have_the_right_gradients():
    w = cn.nn.Parameter(np.array([-2.0, 0.5, 3.0]))
    (cn.nn.utils.l1_penalty([w], 0.1) + cn.nn.utils.l2_penalty([w], 0.01)).backward()
    np.testing.assert_allclose(w.grad.numpy(), 0.1 * np.sign(w.numpy()) + 0.02 * w.numpy())
