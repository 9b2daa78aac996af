"""DistributedDataParallel on real ranks: 2 ranks x batch 64 against 1 process x batch 128
step after step, and the overlap, no_sync and unused-parameter behaviours."""

import pytest

from ._launch import results, run_ranks


@pytest.mark.parametrize("model", ["mlp", "lenet", "resnet"])
def test_two_ranks_match_one_process_on_the_whole_batch(model):
    ranks = results(run_ranks("ddp_equivalence.py", model, 3))
    assert len(ranks) == 2
    for r in ranks:
        # rank 1 started from other parameters: the broadcast at construction replaced them
        assert r["ranks_identical"] is True
        assert r["buckets"] > 2  # bucket_cap_mb=0.002 splits the gradients
        assert len(r["errors"]) == 3
        # float32 rounding (the single process sums 128 samples, the ranks 64 each)
        assert max(r["errors"]) < 1e-6, r
        assert r["grad_error"] < 1e-6, r
        assert r["buffer_error"] < 1e-6, r


@pytest.fixture(scope="module")
def features():
    return results(run_ranks("ddp_features.py"))


def test_buckets_start_during_backward(features):
    for r in features:
        assert r["bucket_sizes"] == [3, 1, 1, 1]  # reverse order, first bucket small
        # when the first layer's weight gradient (the last one) arrives, every earlier
        # bucket has started its all-reduce and the last one has not
        assert r["started_before_last"] == [True, True, True, False]


def test_no_sync_accumulates_locally_then_reduces_the_sum(features):
    for r in features:
        assert r["no_sync_kept_local"] == 0.0
        assert r["no_sync_then_sync_error"] < 1e-6
        assert r["no_sync_differs_from_local"] > 1e-2  # the ranks' data differ


def test_unused_parameters(features):
    r0, r1 = features
    # b is used on rank 1 only: both ranks get rank 1's gradient averaged over 2
    assert r1["unused_b_expected_on_rank1"] == [[4.0] * 3] * 2
    assert r0["unused_b_grad"] == r1["unused_b_grad"] == [[4.0] * 3] * 2
    assert r0["unused_b_same_on_ranks"] and r1["unused_b_same_on_ranks"]
    assert r0["unused_second_step"] == [[4.0] * 3] * 2
    # c is used nowhere: its .grad is left alone (None), as in PyTorch
    assert r0["unused_c_grad_is_none"] and r1["unused_c_grad_is_none"]
    assert "find_unused_parameters=True" in r0["unused_error"]
    assert r0["unused_error"].endswith("rank 0: [2, 3, 4, 5]")
    assert r1["unused_error"].endswith("rank 1: [4, 5]")


def test_ddp_needs_a_process_group():
    from convnet import nn

    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2))


def test_fit_on_two_ranks_matches_one_process():
    r0, r1 = results(run_ranks("fit.py"))
    for r in (r0, r1):
        assert r["param_error"] < 1e-6
        assert r["history_error"] < 1e-6  # loss and accuracy summed over the ranks
    assert r0["history"] == r1["history"]
    assert r0["logged"] == 2 and r1["logged"] == 0  # only rank 0 logs its epochs
