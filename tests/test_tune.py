import json

import numpy as np
import pytest

from convnet import tune


def test_grid_search_tries_every_combination_and_sorts(capsys):
    seen = []

    def objective(p):
        seen.append(p)
        return -abs(p["a"] - 2) - abs(p["b"] - 0.5)

    results = tune.grid_search(objective, {"a": [1, 2, 3], "b": [0.1, 0.5]}, log=print)
    assert len(seen) == 6 and {(p["a"], p["b"]) for p in seen} == {
        (a, b) for a in (1, 2, 3) for b in (0.1, 0.5)}
    assert results[0]["params"] == {"a": 2, "b": 0.5}
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert "trial 6/6" in capsys.readouterr().out


def test_random_search_is_seeded_and_respects_distributions():
    space = {"lr": tune.LogUniform(1e-4, 1e-1), "bs": [32, 64], "p": tune.Uniform(0, 0.5),
             "n": tune.IntUniform(1, 3)}
    draws = []
    tune.random_search(lambda p: draws.append(p) or 0.0, space, 200, seed=3, log=lambda s: None)
    lrs = np.array([d["lr"] for d in draws])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1
    # log-uniform: about a third of the draws in each decade
    assert 0.2 < np.mean(lrs < 1e-3) < 0.45
    assert {d["bs"] for d in draws} == {32, 64} and {d["n"] for d in draws} == {1, 2, 3}
    again = []
    tune.random_search(lambda p: again.append(p) or 0.0, space, 200, seed=3, log=lambda s: None)
    assert again == draws


def test_diverging_trial_is_recorded_not_fatal(tmp_path):
    def objective(p):
        if p["lr"] > 1:
            raise FloatingPointError("loss became nan")
        return p["lr"]

    results = tune.grid_search(objective, {"lr": [0.1, 10.0, 0.5]}, log=lambda s: None)
    assert results[0]["params"] == {"lr": 0.5} and results[-1]["error"]
    table = tune.format_results(results)
    assert "diverged" in table and table.splitlines()[2].split()[1] == "0.5000"
    best = tune.save_best(results, tmp_path / "best.json")
    assert json.loads((tmp_path / "best.json").read_text())["params"] == {"lr": 0.5}
    assert best["trials"] == 3


def test_bad_spaces():
    with pytest.raises(ValueError, match="non-empty list"):
        tune.grid_search(lambda p: 0, {"lr": []})
    with pytest.raises(ValueError, match="0 < low < high"):
        tune.LogUniform(0, 1)
    with pytest.raises(ValueError, match="n_trials"):
        tune.random_search(lambda p: 0, {"a": [1]}, 0)


def test_mlp_builder_shapes():
    import convnet as cn

    m = tune.mlp(width=32, depth=2, dropout=0.2)
    assert m(cn.zeros(4, 1, 28, 28)).shape == (4, 10)
    assert m.num_parameters() == 784 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10
