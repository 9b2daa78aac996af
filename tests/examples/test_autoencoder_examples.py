"""The autoencoder examples run from the command line on a few embedded-sample images,
print their metric, write their report and PNGs of the documented pixel size."""

import json

import numpy as np
import pytest

from convnet.examples import autoencoder, pretrain, vae
from convnet.examples.autoencoder import CELL_PX, TITLE_PX

plt_image = pytest.importorskip("matplotlib.image", reason="the pictures need matplotlib")

QUICK = ["--epochs", "1", "--limit", "300", "--batch-size", "50", "--no-progress"]
# Enough training for every kind to beat the mean-image predictor clearly (each reaches
# 0.046-0.056 against its 0.088; one epoch on 300 images does worse than the mean image).
TRAINED = ["--epochs", "4", "--limit", "600", "--batch-size", "50", "--lr", "3e-3",
           "--no-progress"]


def mean_image_mse(limit):
    """Test MSE of predicting every test image by the mean training image (the data and
    split the example uses with --limit and the default seed)."""
    (xtr, _), (xte, _), _ = autoencoder.load_data(None, limit, 0)
    mean = (xtr / 255.0).mean(axis=0)
    return float(np.mean((xte / 255.0 - mean) ** 2))


def size(path):
    """(height, width) of a PNG read back with matplotlib."""
    img = plt_image.imread(str(path))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img.shape[:2]


@pytest.mark.parametrize("kind,rows", [("dense", 2), ("tied", 2), ("conv", 2),
                                       ("denoising", 3)])
def test_autoencoder_example(kind, rows, tmp_path, capsys):
    out, report = tmp_path / f"{kind}.png", tmp_path / f"{kind}.json"
    assert autoencoder.main(["--kind", kind, "--out", str(out), "--report", str(report),
                             *TRAINED]) == 0
    assert size(out) == (rows * (CELL_PX + TITLE_PX), 10 * CELL_PX)
    result = json.loads(report.read_text())
    assert result["kind"] == kind and result["train_images"] == 600
    baseline = mean_image_mse(600)
    assert 0.08 < baseline < 0.1  # the sample data are what the thresholds assume
    assert 0 < result["test_mse"] < 0.75 * baseline, (result["test_mse"], baseline)
    assert len(result["history"]["epoch_seconds"]) == 4
    printed = capsys.readouterr().out
    assert f"test reconstruction MSE {result['test_mse']:.5f}" in printed
    if kind == "denoising":
        assert result["test_mse_noisy_input"] > 0


def test_denoising_with_dropout_noise(tmp_path):
    out = tmp_path / "drop.png"
    assert autoencoder.main(["--kind", "denoising", "--noise", "dropout", "--base", "dense",
                             "--out", str(out), *QUICK]) == 0
    img = plt_image.imread(str(out))
    assert img.shape[:2] == (3 * (CELL_PX + TITLE_PX), 10 * CELL_PX)
    assert np.ptp(img[..., :3]) > 0.5  # actual pictures, not a blank canvas


def test_vae_example(tmp_path, capsys):
    samples, latent, report = (tmp_path / "s.png", tmp_path / "z.png", tmp_path / "v.json")
    assert vae.main(["--samples", str(samples), "--latent-plot", str(latent), "--report",
                     str(report), *QUICK]) == 0
    assert size(samples) == (8 * (CELL_PX + TITLE_PX), 8 * CELL_PX)
    assert size(latent) == (vae.LATENT_PLOT_PX, vae.LATENT_PLOT_PX)
    result = json.loads(report.read_text())
    assert result["test_elbo"] < 0 and result["test_kl"] >= 0
    assert result["test_negative_elbo"] == pytest.approx(-result["test_elbo"])
    assert result["test_reconstruction"] + result["test_kl"] == pytest.approx(
        result["test_negative_elbo"], rel=1e-5)
    assert "test ELBO" in capsys.readouterr().out


def test_vae_latent_plot_projects_wider_codings(tmp_path):
    path = tmp_path / "z.png"
    vae.save_latent_plot(path, np.random.default_rng(0).standard_normal((50, 5)),
                         np.arange(50) % 10)
    assert size(path) == (vae.LATENT_PLOT_PX, vae.LATENT_PLOT_PX)


@pytest.mark.parametrize("kind", ["denoising", "plain"])
def test_pretrain_example(kind, tmp_path, capsys):
    plot, report = tmp_path / "p.png", tmp_path / "p.json"
    assert pretrain.main(["--ae-epochs", "1", "--epochs", "2", "--labelled", "40", "--limit",
                          "300", "--codings", "16", "--no-progress", "--plot", str(plot),
                          "--report", str(report), "--pretrain", kind]) == 0
    assert size(plot) == (400, 600)
    result = json.loads(report.read_text())
    assert result["pretrain"] == kind
    for name in pretrain.VARIANTS:
        assert 0 <= result[name]["test_accuracy"] <= 1
        assert len(result[name]["test_accuracy_per_epoch"]) == 2
    frozen, tuned = result["pretrained_frozen"], result["pretrained"]
    assert frozen["trainable_parameters"] == 16 * 10 + 10  # only the head
    assert tuned["trainable_parameters"] == result["scratch"]["trainable_parameters"]
    printed = capsys.readouterr().out
    assert "scratch" in printed and "pretrained" in printed


def test_labelled_subset_covers_every_class():
    labels = np.repeat(np.arange(10), 100)
    pick = pretrain.labelled_subset(labels, 12, seed=3)
    assert len(set(pick.tolist())) == 12 and set(labels[pick]) == set(range(10))
