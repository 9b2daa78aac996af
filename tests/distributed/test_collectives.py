"""Collectives on real MPI ranks (mpiexec -n 2), checked against the values computed by
hand; and the process-group API outside mpiexec."""

import numpy as np
import pytest

from ._launch import results, run_ranks


@pytest.fixture(scope="module")
def ranks():
    return results(run_ranks("collectives.py"))


def test_every_rank_reports(ranks):
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world"] == 2 and r["initialized"] for r in ranks)
    assert all(r["after_destroy"] is False for r in ranks)


def test_all_reduce_ops(ranks):
    base = np.arange(5.0)
    for r in ranks:
        assert r["sum"] == (base * 1 + base * 2).tolist()
        assert r["in_place"] is True
        assert r["AVG"] == [1.5, -1.5, 1.0]
        assert r["MAX"] == [2.0, -1.0, 2.0]
        assert r["MIN"] == [1.0, -2.0, 0.0]
        assert r["PRODUCT"] == [2.0, 2.0, 0.0]
        assert r["float16"] == ["float16", [0.75, 0.75, 0.75]]
        # a strided view is reduced and written back through its own strides
        assert r["strided"] == (np.arange(12.0).reshape(3, 4)[:, ::2] * 3).tolist()


def test_broadcast_gather_scatter(ranks):
    for r in ranks:
        assert r["broadcast"] == [[1.0, 1.0], [1.0, 1.0]]
        assert r["all_gather"] == [[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]]
        i = r["rank"]
        assert r["reduce_scatter"] == [200.0 * i + 1.0] * 2
        assert r["async"] == ["Work", True]
        assert r["objects"] == [{"rank": 0}, {"rank": 1}]
        assert r["broadcast_objects"] == [0, "x"]


def test_unseeded_loader_is_sharded_consistently(ranks):
    a, b = ranks[0]["unseeded_shards"]
    assert sorted(a + b) == list(range(20))  # the ranks split one permutation


def test_bad_arguments_are_named(ranks):
    errs = ranks[0]["errors"]
    assert errs["op"][0] == "ValueError" and "op" in errs["op"][1]
    assert errs["avg_int"][0] == "TypeError" and "int64" in errs["avg_int"][1]
    assert errs["src"][0] == "ValueError" and "src" in errs["src"][1]
    assert errs["list"][0] == "ValueError" and "tensor_list" in errs["list"][1]
    assert errs["type"][0] == "TypeError" and "list" in errs["type"][1]


def test_uninitialized_group_raises_like_pytorch():
    import convnet.distributed as dist

    assert dist.is_initialized() is False
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.get_rank()
    with pytest.raises(ValueError, match="backend"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="timeout"):
        dist.init_process_group("mpi", timeout=-1)
