"""Pipeline model parallelism on 2 real ranks against one process training the whole
model on the whole batch; the split by parameter count (no MPI needed)."""

import pytest

from ._launch import results, run_ranks


@pytest.mark.parametrize("schedule,chunks,split", [("gpipe", 4, "balanced"),
                                                   ("1f1b", 4, "5"), ("gpipe", 5, "9"),
                                                   ("1f1b", 3, "balanced")])
def test_two_stages_train_like_one_process(schedule, chunks, split):
    ranks = results(run_ranks("pipeline.py", schedule, chunks, 3, split))
    assert len(ranks) == 2
    expect = [0, 6 if split == "balanced" else int(split), 14]
    for r in ranks:
        assert r["bounds"] == expect
        assert max(r["errors"]) < 1e-6, r  # float32 rounding
        assert max(r["loss_errors"]) < 1e-6, r
        assert r["forward_error"] < 1e-6, r
    assert abs(ranks[0]["param_share"] + ranks[1]["param_share"] - 1) < 1e-12


def test_balanced_split_points():
    from convnet import nn
    from convnet.distributed.pipeline import balanced_split_points

    layers = [nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.Linear(10, 10),
              nn.Linear(10, 10)]  # 110 parameters each but the ReLU
    model = nn.Sequential(*layers)
    assert balanced_split_points(model, 2) == [3]  # 220 | 220
    assert balanced_split_points(model, 4) == [1, 3, 4]
    assert balanced_split_points(model, 5) == [1, 2, 3, 4]
    assert balanced_split_points(model, 1) == []
    with pytest.raises(ValueError, match="stages"):
        balanced_split_points(model, 6)
