"""`convnet train --precision/--amp`: mixed precision end to end on a few hundred images,
the report's precision and peak memory, and the conflicting flags refused up front."""

import json

import pytest

from convnet import cli


def _train(tmp_path, *extra):
    report = tmp_path / "r.json"
    args = ["train", "lenet", "--epochs", "1", "--limit", "300", "--batch-size", "64",
            "--no-progress", "--report", str(report), *extra]
    assert cli.main(args) == 0
    return json.loads(report.read_text())


@pytest.mark.parametrize("flags, precision", [((), "fp32"), (("--precision", "bf16"), "bf16"),
                                              (("--amp",), "bf16"),
                                              (("--precision", "fp16"), "fp16")])
def test_report_has_precision_and_peak_memory(tmp_path, capsys, flags, precision):
    data = _train(tmp_path, *flags)
    assert data["precision"] == precision
    # at least the model's float32 weights and one batch of images were live
    assert data["peak_memory_mb"] > (61706 * 4 + 64 * 784 * 4) / 2**20
    assert 0.0 <= data["test_accuracy"] <= 1.0
    assert f"precision {precision}" in capsys.readouterr().out


@pytest.mark.parametrize("flags", [("--amp", "--precision", "fp32"),
                                   ("--amp", "--precision", "fp16")])
def test_conflicting_precision_flags_are_one_line_errors(capsys, flags):
    assert cli.main(["train", "lenet", "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert "--amp" in err and "conflicts" in err and "\n" not in err


def test_amp_with_the_same_precision_is_accepted(tmp_path):
    assert _train(tmp_path, "--amp", "--precision", "bf16")["precision"] == "bf16"


def test_unknown_precision_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "lenet", "--precision", "fp8"])
    assert exc.value.code == 2
    assert "--precision" in capsys.readouterr().err


def test_fp16_checkpoint_keeps_the_loss_scale(tmp_path):
    import convnet as cn

    ck = tmp_path / "ck.safetensors"
    _train(tmp_path, "--precision", "fp16", "--checkpoint", str(ck))
    state = cn.load(str(ck))
    assert state["scaler"]["scale"] > 0 and state["run"]["training"]["precision"] == "fp16"
