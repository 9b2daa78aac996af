"""`convnet train` end to end on a few hundred images (whatever data this machine has)."""

import json

import pytest

from convnet import cli


def test_train_lenet_report_plot_checkpoint_resume(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    report, plot, ck = tmp_path / "r.json", tmp_path / "c.png", tmp_path / "ck.safetensors"
    args = ["train", "lenet", "--epochs", "1", "--limit", "600", "--batch-size", "64",
            "--no-progress", "--report", str(report), "--plot", str(plot),
            "--checkpoint", str(ck)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    data = json.loads(report.read_text())
    for key in ("test_accuracy", "epochs", "epoch_seconds", "device", "backend"):
        assert key in data
    assert data["epochs"] == 1 and len(data["epoch_seconds"]) == 1 and data["device"] == "cpu"
    assert plot.read_bytes()[:4] == b"\x89PNG"
    args[args.index("--epochs") + 1] = "2"
    assert cli.main(args + ["--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert json.loads(report.read_text())["epochs"] == 2


def test_train_errors_are_clear(capsys):
    assert cli.main(["train", "nosuchnet"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert cli.main(["train", "lenet", "--resume"]) == 2
    assert "--resume needs --checkpoint" in capsys.readouterr().err
    import convnet as cn

    if not cn.backends()["cuda"]["available"]:
        assert cli.main(["train", "lenet", "--device", "cuda"]) == 2
        assert "--device cuda" in capsys.readouterr().err


def test_train_relu_maxpool_variant_and_augment(capsys):
    assert cli.main(["train", "lenet", "--epochs", "1", "--limit", "300", "--no-progress",
                     "--activation", "relu", "--pooling", "max", "--augment",
                     "--early-stopping", "2", "--schedule", "cosine"]) == 0
