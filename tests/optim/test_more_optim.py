"""Adadelta, Rprop, LBFGS, the added schedules and per-group options against torch.optim:
the same gradients give the same parameter trajectories and learning-rate sequences."""

import numpy as np
import pytest

import convnet as cn
from tests.optim.test_optim import run_both

CASES = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2))),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_trajectories_match_torch(name, kwargs):
    pytest.importorskip("torch")
    ours, theirs, opt, opt_t = run_both(name, kwargs, steps=12)
    for p, pt in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), pt.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert sorted(opt.state[id(ours[0])]) == sorted(opt_t.state[theirs[0]])


def test_rprop_sign_flip_skips_the_step():
    p = cn.nn.Parameter(np.zeros(1))
    opt = cn.optim.Rprop([p], lr=0.1)
    # steps 0.1 then 0.12; the flip halves the size to 0.06 and skips; then 0.06 again
    for g, expected in [(1.0, -0.1), (1.0, -0.22), (-1.0, -0.22), (-1.0, -0.16)]:
        p.grad = cn.tensor(np.array([g]))
        opt.step()
        assert p.numpy()[0] == pytest.approx(expected)


def test_per_parameter_group_options_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    w = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    ours = [cn.nn.Parameter(a.copy()) for a in w]
    theirs = [torch.nn.Parameter(torch.tensor(a.copy())) for a in w]
    for name, groups in [
        ("SGD", lambda ps: ([{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.01,
                                                     "momentum": 0.5}], dict(lr=0.1))),
        ("Adam", lambda ps: ([{"params": ps[:1], "weight_decay": 0.2},
                              {"params": ps[1:], "betas": (0.5, 0.9)}], dict(lr=0.01))),
        ("Adadelta", lambda ps: ([{"params": ps[:1]}, {"params": ps[1:], "rho": 0.5}], {})),
        ("Rprop", lambda ps: ([{"params": ps[:1], "lr": 0.2}, {"params": ps[1:]}], {})),
    ]:
        g_ours, kw = groups(ours)
        g_theirs, _ = groups(theirs)
        opt = getattr(cn.optim, name)(g_ours, **kw)
        opt_t = getattr(torch.optim, name)(g_theirs, **kw)
        for _ in range(5):
            for p, pt in zip(ours, theirs):
                grad = rng.standard_normal(p.shape)
                p.grad, pt.grad = cn.tensor(grad), torch.tensor(grad)
            opt.step()
            opt_t.step()
        for p, pt in zip(ours, theirs):
            np.testing.assert_allclose(p.numpy(), pt.detach().numpy(), rtol=1e-9, atol=1e-12,
                                       err_msg=name)
        for g, gt in zip(opt.param_groups, opt_t.param_groups):
            for key in kw.keys() | {"lr"}:
                assert g[key] == gt[key]


def rosenbrock_problem(lib, x0):
    """A least-squares fit plus the Rosenbrock valley: curved enough for L-BFGS to need
    its history and (with strong Wolfe) its line search."""
    x = lib.nn.Parameter(lib.tensor(x0.copy()))
    a = lib.tensor(np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.2]]))
    b = lib.tensor(np.array([1.0, -2.0, 0.5]))

    def loss_fn():
        r = a @ x - b
        return (r * r).sum() + 10 * (x[1] - x[0] * x[0]) ** 2 + (1 - x[0]) ** 2

    return x, loss_fn


@pytest.mark.parametrize("kw", [dict(lr=0.1, max_iter=5),
                                dict(lr=1, max_iter=7, history_size=3,
                                     line_search_fn="strong_wolfe"),
                                dict(lr=0.5, max_iter=20, max_eval=9)])
def test_lbfgs_trajectory_matches_torch(kw):
    torch = pytest.importorskip("torch")
    x0 = np.array([-1.2, 1.0])
    x, loss_fn = rosenbrock_problem(cn, x0)
    xt, loss_fn_t = rosenbrock_problem(torch, x0)
    opt = cn.optim.LBFGS([x], **kw)
    opt_t = torch.optim.LBFGS([xt], **kw)
    calls = [0, 0]

    def closure():
        calls[0] += 1
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    def closure_t():
        calls[1] += 1
        opt_t.zero_grad()
        loss = loss_fn_t()
        loss.backward()
        return loss

    start = loss_fn().item()
    for step in range(4):
        lo = opt.step(closure)
        lt = opt_t.step(closure_t)
        assert lo.item() == pytest.approx(lt.item(), rel=1e-9), f"step {step}"
        np.testing.assert_allclose(x.numpy(), xt.detach().numpy(), rtol=1e-8, atol=1e-12,
                                   err_msg=f"step {step}")
    assert calls[0] == calls[1]  # the same number of evaluations
    state, state_t = opt.state[id(x)], opt_t.state[xt]
    assert state["n_iter"] == state_t["n_iter"] and state["func_evals"] == state_t["func_evals"]
    assert loss_fn().item() < 0.9 * start  # it made progress


def test_lbfgs_errors():
    p, q = cn.nn.Parameter(np.zeros(2)), cn.nn.Parameter(np.zeros(1))
    with pytest.raises(ValueError, match="line_search_fn"):
        cn.optim.LBFGS([p], line_search_fn="armijo")
    with pytest.raises(ValueError, match="parameter groups"):
        cn.optim.LBFGS([{"params": [p]}, {"params": [q]}])


def lr_sequence(lib, make, steps, groups=1, opt_name="SGD", opt_kw=None):
    params = [lib.nn.Parameter(lib.tensor(np.ones(1))) for _ in range(groups)]
    opt = getattr(lib.optim, opt_name)([{"params": [p]} for p in params], lr=0.1,
                                       **(opt_kw or {}))
    sched = make(lib.optim.lr_scheduler, opt)
    seq = [[g["lr"] for g in opt.param_groups]]
    moms = []
    for _ in range(steps):
        opt.step()
        sched.step()
        seq.append([g["lr"] for g in opt.param_groups])
        g = opt.param_groups[0]
        moms.append(g["betas"][0] if "betas" in g else g.get("momentum"))
    return seq, moms


SCHEDULES = {
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 0.9**e + 0.01 * e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1),
                                                      lambda e: 0.5 ** (e // 2)]),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[6, 2, 9], gamma=0.3),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=6),
    "LinearLR-default": lambda m, o: m.LinearLR(o),
    "WarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=0.001),
    "WarmRestarts-mult": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=14),
    "OneCycleLR-linear-3phase": lambda m, o: m.OneCycleLR(
        o, max_lr=[0.5, 2.0], epochs=2, steps_per_epoch=7, anneal_strategy="linear",
        three_phase=True, pct_start=0.25, div_factor=10, final_div_factor=100),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=3), m.ExponentialLR(o, gamma=0.8),
            m.StepLR(o, step_size=2, gamma=0.5)], milestones=[4, 9]),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_match_torch(name):
    torch = pytest.importorskip("torch")
    groups = 2
    ours, our_m = lr_sequence(cn, SCHEDULES[name], 14, groups)
    theirs, their_m = lr_sequence(torch, SCHEDULES[name], 14, groups)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert our_m == pytest.approx(their_m)


def test_one_cycle_cycles_adam_beta1_and_refuses_extra_steps():
    torch = pytest.importorskip("torch")

    def make(m, o):
        return m.OneCycleLR(o, max_lr=0.3, total_steps=9, base_momentum=0.8)

    ours, our_m = lr_sequence(cn, make, 9, opt_name="Adam")
    theirs, their_m = lr_sequence(torch, make, 9, opt_name="Adam")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert our_m == pytest.approx(their_m) and min(our_m) < 0.9
    p = cn.nn.Parameter(np.ones(1))
    s = cn.optim.lr_scheduler.OneCycleLR(cn.optim.SGD([p], lr=0.1), 1.0, total_steps=2)
    s.step()
    s.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        s.step()


def test_warm_restarts_fractional_epochs_match_torch():
    torch = pytest.importorskip("torch")
    vals = []
    for lib in (cn, torch):
        p = lib.nn.Parameter(lib.tensor(np.ones(1)))
        opt = lib.optim.SGD([p], lr=0.5)
        s = lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=3)
        seq = []
        for e in np.arange(0, 9, 0.35):
            s.step(float(e))
            seq.append(opt.param_groups[0]["lr"])
        vals.append(seq)
    np.testing.assert_allclose(vals[0], vals[1], rtol=1e-12)


def test_scheduler_state_dict_round_trip():
    def make(o):
        m = cn.optim.lr_scheduler
        return m.SequentialLR(o, [m.LinearLR(o, 0.5, total_iters=2),
                                  m.MultiStepLR(o, [3], 0.1)], milestones=[2])

    p = cn.nn.Parameter(np.ones(1))
    opt = cn.optim.SGD([p], lr=1.0)
    s = make(opt)
    for _ in range(3):
        s.step()
    state = s.state_dict()
    p2 = cn.nn.Parameter(np.ones(1))
    opt2 = cn.optim.SGD([p2], lr=1.0)
    s2 = make(opt2)
    s2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(4):
        s.step()
        s2.step()
        assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
    lam = cn.optim.lr_scheduler.LambdaLR(cn.optim.SGD([p], lr=1.0), lambda e: 1.0)
    assert lam.state_dict()["lr_lambdas"] == [None]
