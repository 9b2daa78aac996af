"""All-or-nothing state loading (modules, optimizers, fit's resume) and the small edge
cases: constructor arguments, lr=nan, empty batches in conv and batch norm."""

import numpy as np
import pytest

import convnet as cn
from convnet import nn
from convnet import train as T


def _model():
    cn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


def _snapshot(m):
    return {k: np.array(v, copy=True) for k, v in m.state_dict().items()}


def _assert_same(m, snap):
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), snap[k], err_msg=k)


@pytest.mark.parametrize("fault", ["late_bad_dtype", "late_bad_shape", "strings", "object"])
def test_module_load_is_all_or_nothing(fault):
    m = _model()
    before = _snapshot(m)
    state = {k: np.asarray(v) + 1 for k, v in m.state_dict().items()}
    last = list(state)[-1]  # the fault is on the last key: every earlier one converted fine
    state[last] = {"late_bad_dtype": np.array(["a", "b", "c"]),
                   "late_bad_shape": np.zeros(7, np.float32),
                   "strings": "not an array",
                   "object": np.array([object(), object(), object()])}[fault]
    with pytest.raises((ValueError, TypeError), match=last):
        m.load_state_dict(state)
    _assert_same(m, before)


def test_module_load_copies_into_existing_storage_and_takes_any_array_kind():
    m = _model()
    storage = {k: t._data for k, t in m._state_targets().items()}
    new = {k: np.asarray(v, dtype=np.float64) * 0 + 0.5 for k, v in m.state_dict().items()}
    new["1.num_batches_tracked"] = cn.tensor(np.array(7))  # a convnet tensor
    new["0.weight"] = cn.tensor(new["0.weight"])
    m.load_state_dict(new)
    for k, t in m._state_targets().items():
        assert t._data is storage[k], k  # optimizers holding the storage see the new values
    assert m[0].weight.dtype == np.float32 and float(m[0].weight.data[0, 0, 0, 0]) == 0.5
    assert int(m[1].num_batches_tracked.data) == 7


def test_module_load_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    m = _model()
    state = {k: torch.full(np.asarray(v).shape, 0.25, dtype=torch.bfloat16)
             if np.asarray(v).dtype == np.float32 else torch.tensor(3)
             for k, v in m.state_dict().items()}
    m.load_state_dict(state)
    assert float(m[3].bias.data[0]) == 0.25 and int(m[1].num_batches_tracked.data) == 3


def _opt_with_state():
    m = _model()
    opt = cn.optim.Adam(m.parameters(), lr=0.01)
    x = cn.randn(4, 1, 4, 4)
    cn.functional.cross_entropy(m(x), cn.tensor(np.array([0, 1, 2, 0]))).backward()
    opt.step()
    return m, opt


@pytest.mark.parametrize("fault", ["no_groups", "lr_nan", "bad_shape", "other_optimizer",
                                   "unknown_index", "group_size"])
def test_optimizer_load_is_all_or_nothing(fault):
    m, opt = _opt_with_state()
    sd = opt.state_dict()
    before_state = {k: {n: np.array(v, copy=True) for n, v in s.items()}
                    for k, s in opt.state.items()}
    before_lr = opt.param_groups[0]["lr"]
    bad = {"state": {k: dict(v) for k, v in sd["state"].items()},
           "param_groups": [dict(g) for g in sd["param_groups"]]}
    bad["param_groups"][0]["lr"] = 0.5  # a change that must not land when a later check fails
    if fault == "no_groups":
        bad = {"state": bad["state"]}
    elif fault == "lr_nan":
        bad["param_groups"][0]["lr"] = float("nan")
    elif fault == "bad_shape":
        last = max(bad["state"])
        bad["state"][last]["exp_avg"] = np.zeros(99)
    elif fault == "other_optimizer":
        bad["param_groups"][0].pop("betas")
    elif fault == "unknown_index":
        bad["state"][99] = {"step": 1}
    else:
        bad["param_groups"][0]["params"] = bad["param_groups"][0]["params"][:-1]
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    assert opt.param_groups[0]["lr"] == before_lr
    for k, s in opt.state.items():
        for n, v in s.items():
            np.testing.assert_array_equal(v, before_state[k][n])


def test_optimizer_lr_nan_is_refused():
    p = nn.Parameter(np.zeros(2, np.float32))
    for cls in (cn.optim.SGD, cn.optim.Adam):
        with pytest.raises(ValueError, match="lr"):
            cls([p], lr=float("nan"))


def test_fit_resume_checks_the_whole_checkpoint_before_touching_anything(tmp_path):
    m, opt = _opt_with_state()
    path = tmp_path / "ck.safetensors"
    trainer = T.Trainer(m, opt, None, [], None, None, False, print, None)
    trainer.save_checkpoint(path, 1)
    state = cn.load(path)
    state["optimizer"]["param_groups"][0].pop("betas")  # damaged optimizer record
    cn.save(state, path)
    fresh, fresh_opt = _model(), None
    fresh_opt = cn.optim.Adam(fresh.parameters(), lr=0.01)
    before = _snapshot(fresh)
    with pytest.raises(ValueError, match="lacks"):
        T.fit(fresh, [], epochs=2, optimizer=fresh_opt, resume=path, progress=False,
              log=lambda s: None)
    _assert_same(fresh, before)  # the model was not overwritten before the optimizer failed
    assert fresh_opt.state == {}


def test_fit_resume_refuses_another_run(tmp_path):
    m, opt = _opt_with_state()
    path = tmp_path / "ck.safetensors"
    run = {"model": "tiny", "model_options": {"activation": "tanh"}, "training": {"lr": 0.01}}
    T.Trainer(m, opt, None, [], None, None, False, print, None, run).save_checkpoint(path, 1)
    other = {"model": "tiny", "model_options": {"activation": "relu"},
             "training": {"lr": 0.01}}
    fresh = _model()
    with pytest.raises(ValueError, match="model_options.activation: checkpoint 'tanh', "
                                         "this run 'relu'"):
        T.fit(fresh, [], epochs=2, optimizer=cn.optim.Adam(fresh.parameters(), lr=0.01),
              resume=path, progress=False, log=lambda s: None, run=other)


@pytest.mark.parametrize("args,word", [((0, 4, 3), "in_channels"), ((1, 4, -1), "kernel_size"),
                                       ((1, 0, 3), "out_channels"),
                                       ((1, 4, (3, 0)), "kernel_size"),
                                       ((1, 4, 3, 0), "stride"), ((1, 4, 3, 1, -1), "padding"),
                                       ((1, 4, 2.5), "kernel_size")])
def test_conv_constructor_arguments_are_checked(args, word):
    with pytest.raises(ValueError, match=f"Conv2d: {word}"):
        nn.Conv2d(*args)
    nn.Conv2d(1, 4, 3, padding="same")  # still fine


def test_conv_on_an_empty_batch_matches_torch():
    torch = pytest.importorskip("torch")
    c = nn.Conv2d(2, 3, 3, padding=1)
    x = cn.zeros(0, 2, 5, 5, requires_grad=True)
    y = c(x)
    y.sum().backward()
    tc = torch.nn.Conv2d(2, 3, 3, padding=1)
    tx = torch.zeros(0, 2, 5, 5, requires_grad=True)
    ty = tc(tx)
    ty.sum().backward()
    assert y.shape == tuple(ty.shape) and x.grad.shape == tuple(tx.grad.shape)
    np.testing.assert_array_equal(c.weight.grad.numpy(), tc.weight.grad.numpy())  # zeros
    np.testing.assert_array_equal(c.bias.grad.numpy(), tc.bias.grad.numpy())
    for backend in ("native", "numba"):
        if not cn.backends()[backend]["available"]:
            continue
        dx = cn.kernels.conv2d_backward_data(np.zeros((0, 3, 5, 5), np.float32),
                                             c.weight.numpy(), (0, 2, 5, 5), padding=1,
                                             backend=backend)
        dw = cn.kernels.conv2d_backward_weight(np.zeros((0, 3, 5, 5), np.float32),
                                               np.zeros((0, 2, 5, 5), np.float32),
                                               (3, 2, 3, 3), padding=1, backend=backend)
        assert dx.shape == (0, 2, 5, 5) and not dw.any() and dw.shape == (3, 2, 3, 3)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_on_an_empty_batch_matches_torch(training):
    torch = pytest.importorskip("torch")
    bn, tbn = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    bn.train(training)
    tbn.train(training)
    x = cn.zeros(0, 3, 4, 4, requires_grad=True)
    tx = torch.zeros(0, 3, 4, 4, requires_grad=True)
    y, ty = bn(x), tbn(tx)
    y.sum().backward()
    ty.sum().backward()
    assert y.shape == tuple(ty.shape) == (0, 3, 4, 4)
    for k, v in tbn.state_dict().items():
        np.testing.assert_array_equal(np.asarray(bn.state_dict()[k]), v.numpy(), err_msg=k)
    np.testing.assert_array_equal(bn.weight.grad.numpy(), tbn.weight.grad.numpy())
    np.testing.assert_array_equal(bn.bias.grad.numpy(), tbn.bias.grad.numpy())


def test_batch_norm_one_value_per_channel_in_training_is_refused_as_in_torch():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(cn.zeros(1, 3))
    bn = nn.BatchNorm1d(3)
    bn.eval()
    assert bn(cn.zeros(1, 3)).shape == (1, 3)  # eval mode uses the running statistics


def test_optimizer_loads_a_torch_adam_state_and_continues_like_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    tw = torch.nn.Parameter(torch.tensor(w0))
    topt = torch.optim.Adam([tw], lr=0.01)
    for _ in range(2):
        topt.zero_grad()
        (tw ** 2).sum().backward()
        topt.step()
    p = nn.Parameter(tw.detach().numpy().copy())
    opt = cn.optim.Adam([p], lr=0.5)  # the loaded state brings lr back to 0.01
    opt.load_state_dict(topt.state_dict())  # torch tensors in the state, step a tensor
    assert opt.param_groups[0]["lr"] == 0.01
    topt.zero_grad()
    (tw ** 2).sum().backward()
    topt.step()
    p.grad = cn.tensor(2 * p.numpy())
    opt.step()
    np.testing.assert_allclose(p.numpy(), tw.detach().numpy(), rtol=1e-12, atol=1e-14)
