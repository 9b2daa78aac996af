"""The fit loop, callbacks, checkpoints and resume, on a small synthetic problem."""

import numpy as np
import pytest

import convnet as cn
from convnet import train as T


def blobs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]])
    x = (centers[y] + rng.standard_normal((n, 2)) * 0.6).astype(np.float32)
    return [(cn.tensor(x[i:i + 50]), cn.tensor(y[i:i + 50])) for i in range(0, n, 50)]


def model():
    cn.manual_seed(0)
    return cn.nn.Sequential(cn.nn.Linear(2, 16), cn.nn.ReLU(), cn.nn.Linear(16, 3))


def test_fit_learns_and_records_history():
    train, val = blobs(), blobs(seed=1)
    m = model()
    history = T.fit(m, train, val, epochs=8, optimizer=cn.optim.Adam(m.parameters(), lr=0.05),
                    progress=False, log=lambda s: None)
    assert len(history["loss"]) == 8 and len(history["val_accuracy"]) == 8
    assert history["loss"][-1] < history["loss"][0] / 3
    assert history["val_accuracy"][-1] > 0.9
    loss, acc = T.evaluate(m, val)
    assert acc == pytest.approx(history["val_accuracy"][-1])
    assert m.training  # evaluate puts the mode back


def test_early_stopping_stops_and_restores_best_weights():
    train, val = blobs(), blobs(seed=1)
    m = model()
    seen = []

    class Spy(T.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            seen.append(m.state_dict())

    # lr 0 after the first epoch: val_loss stops improving, so patience 2 ends at epoch 4
    opt = cn.optim.SGD(m.parameters(), lr=0.5)
    stopper = T.EarlyStopping(patience=2, restore_best_weights=True)

    class Freeze(T.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            opt.param_groups[0]["lr"] = 0.0

    history = T.fit(m, train, val, epochs=20, optimizer=opt, callbacks=[Freeze(), stopper, Spy()],
                    progress=False, log=lambda s: None)
    assert len(history["loss"]) == 3
    assert stopper.best_epoch == 0
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, seen[0][k])


@pytest.mark.parametrize("schedule", [None, "cosine", "step"])
def test_checkpoint_resume_equals_uninterrupted_run(tmp_path, schedule):
    def make_scheduler(opt):
        if schedule == "cosine":
            return cn.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
        if schedule == "step":
            return cn.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return None

    train, val = blobs(), blobs(seed=1)
    m1 = model()
    opt1 = cn.optim.Adam(m1.parameters(), lr=0.01)
    full = T.fit(m1, train, val, epochs=4, optimizer=opt1, scheduler=make_scheduler(opt1),
                 progress=False, log=lambda s: None)

    path = tmp_path / "ck.safetensors"
    m2 = model()
    opt2 = cn.optim.Adam(m2.parameters(), lr=0.01)
    # the checkpoint callback comes first here: the schedule must still step before it
    T.fit(m2, train, val, epochs=2, optimizer=opt2, scheduler=make_scheduler(opt2),
          callbacks=[T.ModelCheckpoint(path)], progress=False, log=lambda s: None)
    m3 = model()  # a fresh process would start from scratch like this
    opt3 = cn.optim.Adam(m3.parameters(), lr=0.01)
    resumed = T.fit(m3, train, val, epochs=4, optimizer=opt3, scheduler=make_scheduler(opt3),
                    resume=path, progress=False, log=lambda s: None)
    assert resumed["lr"] == full["lr"]
    if schedule:
        assert len(set(full["lr"])) == 4  # the schedule really changed the rate every epoch
    assert resumed["loss"][:2] == full["loss"][:2]
    np.testing.assert_allclose(resumed["loss"], full["loss"], rtol=1e-6)
    for k, v in m1.state_dict().items():
        np.testing.assert_allclose(m3.state_dict()[k], v, rtol=1e-6, atol=1e-7)


def test_schedule_and_best_only_checkpoint(tmp_path):
    train, val = blobs(), blobs(seed=1)
    m = model()
    opt = cn.optim.SGD(m.parameters(), lr=0.1)
    sched = cn.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    path = tmp_path / "best.safetensors"
    history = T.fit(m, train, val, epochs=3, optimizer=opt, scheduler=sched,
                    callbacks=[T.ModelCheckpoint(path, save_best_only=True)], progress=False,
                    log=lambda s: None)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert cn.load(path)["epoch"] >= 1


def test_non_finite_loss_is_a_clear_error():
    m = model()

    def bad_loss(out, y):
        return cn.functional.cross_entropy(out, y) * float("nan")

    with pytest.raises(FloatingPointError, match="loss became nan"):
        T.fit(m, blobs(), epochs=1, loss=bad_loss, progress=False, log=lambda s: None)


def test_resume_refuses_a_non_checkpoint(tmp_path):
    path = tmp_path / "weights.safetensors"
    cn.save(model().state_dict(), path)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        T.fit(model(), blobs(), epochs=1, resume=path, progress=False, log=lambda s: None)


def test_progress_bar_shows_the_epoch_and_its_running_metrics(capsys):
    pytest.importorskip("tqdm")
    m = model()
    history = T.fit(m, blobs(), epochs=1, progress=True, log=lambda s: None)
    shown = capsys.readouterr().err
    # the closed bar: all 8 batches, and the loss/accuracy over them that fit returns
    assert "epoch 1/1" in shown and "8/8" in shown
    assert f"loss={history['loss'][0]:.4f}" in shown
    assert f"acc={history['accuracy'][0]:.4f}" in shown
    quiet = model()
    T.fit(quiet, blobs(), epochs=1, progress=False, log=lambda s: None)
    assert capsys.readouterr().err == ""
    # the bar only reports: the same training without it ends at the same weights
    for a, b in zip(m.parameters(), quiet.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_plot_history(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    T.plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, 0.8], "val_loss": [1.1, 0.6],
                    "val_accuracy": [0.4, 0.7]}, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
