"""The GAN example end to end on a few images: sample grids per epoch with the right pixel
size, the quality report, the command line."""

import json

import numpy as np
import pytest

import convnet as cn
from convnet.examples import _quality, gan


@pytest.fixture(scope="module")
def judge_path(tmp_path_factory):
    """An untrained quality classifier saved where --classifier points, so the tests
    do not train one (the scores' meaning is tested in test_gan_quality.py)."""
    cn.manual_seed(0)
    path = tmp_path_factory.mktemp("judge") / "judge.safetensors"
    cn.save({"model": _quality.FashionClassifier().state_dict(),
             "test_accuracy": 0.0}, path)
    return path


def _png_shape(path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.image

    return matplotlib.image.imread(path).shape[:2]


def test_image_grid_layout():
    images = np.full((5, 1, 28, 28), -1.0, np.float32)
    images[3] = 1.0
    grid = gan.image_grid(images, nrow=3, pad=2)
    assert grid.shape == (2 * 30 + 2, 3 * 30 + 2)
    assert grid[2:30, 2:30].max() == 0.0             # image 0: black
    assert grid[32:60, 2:30].min() == 1.0            # image 3: second row, first column, white
    assert grid[0].min() == 1.0 and grid[:, 31].min() == 1.0   # white padding
    assert grid[32:60, 62:90].min() == 1.0           # the empty sixth cell stays white
    with pytest.raises(ValueError, match="images"):
        gan.image_grid(np.zeros((0, 28, 28)))


def test_save_grid_writes_one_pixel_per_image_pixel(tmp_path):
    path = gan.save_grid(np.zeros((10, 1, 28, 28)), tmp_path / "sub" / "g.png", nrow=4)
    assert _png_shape(path) == (3 * 30 + 2, 4 * 30 + 2)


@pytest.mark.parametrize("model", ["gan", "dcgan"])
def test_run_writes_sample_grids_and_reports_quality(model, judge_path, tmp_path):
    out = gan.run(model, epochs=2, batch_size=32, out=str(tmp_path), limit=64,
                  eval_samples=40, classifier=judge_path, progress=False,
                  log=lambda *_: None)
    for epoch in (1, 2):
        path = tmp_path / f"samples_epoch_{epoch:03d}.png"
        assert _png_shape(path) == (8 * 30 + 2, 8 * 30 + 2)   # 64 samples, 8 per row
    assert _png_shape(out["samples_final"]) == (4 * 30 + 2, 10 * 30 + 2)   # 40, 10 a row
    assert out["history"]["samples"] == [str(tmp_path / f"samples_epoch_{e:03d}.png")
                                         for e in (1, 2)]
    assert len(out["history"]["d_loss"]) == 2 and np.isfinite(out["history"]["g_loss"]).all()
    for key in ("quality", "untrained", "real_held_out"):
        scores = out[key]
        assert scores["n"] == 40 and sum(scores["class_histogram"]) == 40
        assert 0.1 <= scores["confidence"] <= 1.0
        assert np.isfinite(scores["frechet"]) and scores["frechet"] > 0.0
    # Held-out real images sit far closer to the real test images, in the judge's features,
    # than an untrained generator's noise does (0.0125 against 0.087 for gan and 0.118
    # for dcgan with these seeds), and two epochs on 64 images do not reach the real ones.
    floor, ceiling = out["real_held_out"]["frechet"], out["untrained"]["frechet"]
    assert floor < ceiling / 3, (floor, ceiling)
    assert out["quality"]["frechet"] > 2 * floor, (out["quality"]["frechet"], floor)
    assert out["classifier"]["cached"] is True


def test_command_line_writes_the_report(judge_path, tmp_path):
    report = tmp_path / "r.json"
    gan.main(["--model", "gan", "--epochs", "1", "--limit", "32", "--batch-size", "16",
              "--eval-samples", "20", "--classifier", str(judge_path), "--out",
              str(tmp_path / "o"), "--report", str(report), "--threads", "1"])
    saved = json.loads(report.read_text())
    assert saved["model"] == "gan" and saved["epochs"] == 1 and saved["n_train"] == 32
    assert (tmp_path / "o" / "samples_epoch_001.png").exists()
    with pytest.raises(SystemExit):
        gan.main(["--model", "gan", "--epochs", "-1"])
