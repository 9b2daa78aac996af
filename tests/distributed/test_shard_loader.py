"""shard_loader: each rank's part of every global batch (no MPI needed)."""

import numpy as np

from convnet.data import DataLoader
from convnet.distributed import shard_loader


class Numbers:
    def __init__(self, n):
        self.x = np.arange(n, dtype=np.float32)[:, None]

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], np.int64(i)


def test_ranks_split_every_batch_of_the_single_process_order():
    loader = DataLoader(Numbers(21), batch_size=8, shuffle=True, seed=3, prefetch=0)
    whole = [y._data.tolist() for _, y in loader]
    shards = [shard_loader(DataLoader(Numbers(21), batch_size=8, shuffle=True, seed=3,
                                      prefetch=0), r, 2) for r in range(2)]
    parts = [[y._data.tolist() for _, y in s] for s in shards]
    assert len(parts[0]) == len(parts[1]) == len(whole) == 3
    for k, batch in enumerate(whole):
        assert parts[0][k] == batch[0::2]
        # the last batch (5 samples) is padded for rank 1 with the batch's first sample
        expect = batch[1::2] if len(batch) % 2 == 0 else batch[1::2] + [batch[0]]
        assert parts[1][k] == expect


def test_set_epoch_on_the_shard_picks_the_epoch():
    base = DataLoader(Numbers(16), batch_size=4, shuffle=True, seed=1, prefetch=0)
    s = shard_loader(base, 0, 2)
    e0 = [y._data.tolist() for _, y in s]
    e1 = [y._data.tolist() for _, y in s]
    s.set_epoch(0)
    assert [y._data.tolist() for _, y in s] == e0 != e1
    assert base.epoch == 0  # the original loader is untouched
