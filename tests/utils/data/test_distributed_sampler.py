"""DistributedSampler against PyTorch's (no MPI needed: rank and num_replicas given)."""

import numpy as np
import pytest

from convnet.utils.data.distributed import DistributedSampler


@pytest.mark.parametrize("n,replicas", [(10, 3), (12, 4), (7, 2), (5, 8), (1, 2), (9, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_unshuffled_indices_are_pytorchs(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler

    data = list(range(n))
    for rank in range(replicas):
        ours = DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)
    assert torch is not None


@pytest.mark.parametrize("n,replicas", [(10, 3), (13, 4), (64, 2)])
def test_shuffled_shards_partition_a_permutation(n, replicas):
    shards = [DistributedSampler(range(n), replicas, r, seed=5) for r in range(replicas)]
    lists = [list(s) for s in shards]
    assert len({len(x) for x in lists}) == 1  # every rank the same number of samples
    flat = sorted(sum(lists, []))
    assert set(flat) == set(range(n))  # every sample somewhere
    assert len(flat) == -(-n // replicas) * replicas  # padded by repeats, no more
    # the same seed and epoch give the same order on every rank (rank-independent)
    perm = np.random.default_rng(5).permutation(n).tolist()
    padded = (perm * 2)[:len(flat)]
    for r, x in enumerate(lists):
        assert x == padded[r::replicas]


def test_set_epoch_changes_the_order_reproducibly():
    s = DistributedSampler(range(50), 2, 0, seed=1)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert e0 != e1
    assert list(DistributedSampler(range(50), 2, 0, seed=1)) == e0
    s.set_epoch(0)
    assert list(s) == e0


def test_drop_last_drops_the_uneven_tail():
    shards = [list(DistributedSampler(range(10), 3, r, shuffle=False, drop_last=True))
              for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="Invalid rank 2"):
        DistributedSampler(range(4), 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(range(4), 0, 0)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(4))
