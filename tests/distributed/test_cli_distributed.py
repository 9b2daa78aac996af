"""`mpiexec -n 2 convnet train lenet --distributed`: one output, one report, resumable."""

import json

from ._launch import run_ranks


def test_train_lenet_on_two_ranks_then_resume(tmp_path):
    ck, report = tmp_path / "ck.safetensors", tmp_path / "report.json"
    common = ("train", "lenet", "--distributed", "--limit", "600", "--batch-size", "64",
              "--no-progress", "--checkpoint", ck)
    proc = run_ranks("cli.py", *common, "--epochs", "1", "--report", report, timeout=400)
    # rank 1 prints nothing: every line once
    assert proc.stdout.count("test accuracy") == 1
    assert proc.stdout.count("epoch 1/1") == 1
    data = json.loads(report.read_text())
    assert data["epochs"] == 1 and 0.0 <= data["test_accuracy"] <= 1.0
    assert ck.exists()
    proc = run_ranks("cli.py", *common, "--epochs", "2", "--resume", timeout=400)
    assert proc.stdout.count("resumed from") == 1
    assert "after epoch 1" in proc.stdout
    assert proc.stdout.count("epoch 2/2") == 1
    assert "epoch 1/2" not in proc.stdout
