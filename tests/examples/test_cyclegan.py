"""CycleGAN: a training step lowers the cycle-consistency loss, the translation image has
the right size, the example runs end to end on a few images."""

import json

import numpy as np
import pytest

import convnet as cn
from convnet.examples import _quality, cyclegan


@pytest.fixture(scope="module")
def judge_path(tmp_path_factory):
    cn.manual_seed(0)
    path = tmp_path_factory.mktemp("judge") / "judge.safetensors"
    cn.save({"model": _quality.FashionClassifier().state_dict(),
             "test_accuracy": 0.0}, path)
    return path


def _domains(n=4):
    from convnet.data import load_embedded_sample

    x, y = load_embedded_sample()["train"]
    return x[y == 7][:n], x[y == 9][:n]


def test_steps_lower_the_cycle_loss_and_train_all_four_networks():
    cn.manual_seed(0)
    model = cyclegan.CycleGAN(width=4, n_blocks=1, disc_width=4, lr=2e-3)
    a_img, b_img = _domains()
    a, b = (cn.tensor(_quality.to_unit_range(v)) for v in (a_img, b_img))
    before = {i: [np.array(p.data) for p in m.parameters()] for i, m in enumerate(model.modules())}
    first = model.step(a, b)
    for _ in range(25):
        last = model.step(a, b)
    assert set(first) == {"g_adv", "cycle", "d"}
    assert last["cycle"] < 0.6 * first["cycle"]
    for i, m in enumerate(model.modules()):
        assert any(not np.array_equal(p.data, p0) for p, p0 in zip(m.parameters(), before[i]))
    # translate agrees with calling the generators in eval mode
    ga, fga, fb, gfb = model.translate(a_img, b_img)
    model.train(False)
    with cn.no_grad():
        np.testing.assert_allclose(ga, model.g_ab(a).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gfb, model.g_ab(model.g_ba(b)).numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_run_writes_translations_and_reports(judge_path, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    out = cyclegan.run(epochs=1, batch_size=8, limit=16, out=str(tmp_path), width=4,
                       n_blocks=1, eval_images=30, classifier=judge_path, progress=False,
                       log=lambda *_: None)
    # six rows (A, G(A), F(G(A)), B, F(B), G(F(B))) of ten 28x28 images, 2-pixel padding
    assert matplotlib.image.imread(out["translations"]).shape[:2] == (6 * 30 + 2, 10 * 30 + 2)
    assert (tmp_path / "translations_epoch_001.png").exists()
    assert out["n_train"] == [16, 16] and out["names"] == ["Sneaker", "Ankle boot"]
    for key in ("final", "untrained"):
        r = out[key]
        assert 0 <= r["g_ab_as_b"] <= 1 and 0 <= r["g_ba_as_a"] <= 1
        assert 0 < r["cycle_l1_a"] < 2 and 0 < r["cycle_l1_b"] < 2
    json.dumps(out)   # the report is plain JSON


def test_command_line_checks_domains():
    with pytest.raises(SystemExit):
        cyclegan.main(["--domains", "7", "7"])
    with pytest.raises(SystemExit):
        cyclegan.main(["--domains", "7", "10"])
