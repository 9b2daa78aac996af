"""`convnet train` refuses bad options before any work: one line on stderr, exit code 2."""

import os
import subprocess
import sys

import numpy as np
import pytest

import convnet as cn
from convnet import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, timeout=180):
    env = dict(os.environ, PYTHONPATH=ROOT, CONVNET_NUM_THREADS="1", OMP_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "convnet.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)


def assert_refused(out, *words):
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert "model lenet" not in out.stdout and "epoch" not in out.stdout  # nothing started


BAD_NUMBERS = [
    (["--epochs", "-1"], "--epochs"), (["--lr", "-1"], "--lr"), (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"), (["--seed", "-1"], "--seed"),
    (["--early-stopping", "-1"], "--early-stopping"), (["--threads", "0"], "--threads"),
    (["--momentum", "-1"], "--momentum"), (["--momentum", "1.5"], "--momentum"),
    (["--clip-grad-norm", "-1"], "--clip-grad-norm"),
    (["--clip-grad-norm", "nan"], "--clip-grad-norm"), (["--batch-size", "0"], "--batch-size"),
    (["--weight-decay", "-0.1"], "--weight-decay"), (["--val-fraction", "1"], "--val-fraction"),
    (["--limit", "0"], "--limit"), (["--epochs", "abc"], "--epochs"),
    (["--optimizer", "lbfgs"], "--optimizer"), (["--nesterov", "--optimizer", "adam"],
                                                "--nesterov"),
]


@pytest.mark.parametrize("args,name", BAD_NUMBERS, ids=[" ".join(a) for a, _ in BAD_NUMBERS])
def test_bad_numbers_are_one_line_errors(args, name):
    assert_refused(run_cli("train", "lenet", *args), name)


def test_output_paths_are_checked_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for option in ("--report", "--plot", "--checkpoint"):
        out = run_cli("train", "lenet", option, str(blocker / "sub" / "out.png"))
        assert_refused(out, option, "is not a folder")
    assert_refused(run_cli("train", "lenet", "--report", str(tmp_path)), "is a folder")
    assert_refused(run_cli("train", "lenet", "--plot", str(tmp_path / "c.qqq")), "image type")
    assert_refused(run_cli("train", "lenet", "--data", str(tmp_path / "none")), "--data")
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_missing_output_folders_are_created(tmp_path, capsys):
    report = tmp_path / "new" / "deeper" / "r.json"
    ck = tmp_path / "ck" / "c.safetensors"
    assert cli.main(["train", "lenet", "--epochs", "1", "--limit", "64", "--batch-size", "64",
                     "--val-fraction", "0", "--no-progress", "--report", str(report),
                     "--checkpoint", str(ck)]) == 0
    assert report.exists() and ck.exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(where):
    args = ["train", "lenet", "--epochs", "-1"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    out = run_cli(*args)
    assert out.returncode == 1 and "Traceback" in out.stderr and "UsageError" in out.stderr


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    ck = tmp_path_factory.mktemp("ck") / "lenet.safetensors"
    assert cli.main(["train", "lenet", "--epochs", "1", "--limit", "64", "--batch-size", "64",
                     "--val-fraction", "0", "--no-progress", "--checkpoint", str(ck)]) == 0
    return ck


BASE = ["--limit", "64", "--batch-size", "64", "--val-fraction", "0", "--no-progress",
        "--epochs", "2", "--resume"]


@pytest.mark.parametrize("change,words", [
    (["--activation", "relu"], ["model_options.activation", "'tanh'", "'relu'"]),
    (["--pooling", "max"], ["model_options.pooling"]),
    (["--lr", "0.01"], ["training.lr", "0.001", "0.01"]),
    (["--optimizer", "sgd"], ["training.optimizer", "'adam'", "'sgd'"]),
    (["--batch-size", "32"], ["training.batch_size"]),
])
def test_resume_of_another_run_is_refused(checkpoint, change, words):
    args = BASE + change + ["--checkpoint", str(checkpoint)]
    assert_refused(run_cli("train", "lenet", *args), "--resume", "another run", *words)


def test_resume_of_another_model_is_refused(checkpoint):
    out = run_cli("train", "resnet20", *BASE, "--checkpoint", str(checkpoint))
    assert_refused(out, "model: checkpoint 'lenet', this run 'resnet20'")


def test_resume_of_a_checkpoint_without_run_record_checks_the_state(checkpoint, tmp_path):
    state = cn.load(checkpoint)
    del state["run"]
    state["model"]["extra.weight"] = np.zeros(2, np.float32)
    old = tmp_path / "old.safetensors"
    cn.save(state, old)
    out = run_cli("train", "lenet", *BASE, "--checkpoint", str(old))
    assert_refused(out, "does not fit this model", "extra.weight")


@pytest.mark.parametrize("damage", ["flip", "garbage", "not_training"])
def test_resume_of_a_bad_file_is_refused(checkpoint, tmp_path, damage):
    bad = tmp_path / "bad.safetensors"
    raw = bytearray(checkpoint.read_bytes())
    if damage == "flip":
        raw[-5] ^= 0x40
        bad.write_bytes(bytes(raw))
    elif damage == "garbage":
        bad.write_bytes(os.urandom(300))
    else:
        cn.save({"w": np.zeros(2)}, bad)
    before = bad.read_bytes()
    out = run_cli("train", "lenet", *BASE, "--checkpoint", str(bad))
    assert_refused(out, "--resume")
    assert bad.read_bytes() == before


def test_resume_with_more_epochs_continues(checkpoint, tmp_path, capsys):
    ck = tmp_path / "c.safetensors"
    ck.write_bytes(checkpoint.read_bytes())
    assert cli.main(["train", "lenet", *BASE, "--checkpoint", str(ck)]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert cn.load(ck)["epoch"] == 2
