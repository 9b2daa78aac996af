"""fit's progress bar must not change which batches an epoch reads (tqdm.auto calls iter()
twice on its argument; a DataLoader starts an epoch at each iter())."""

import numpy as np

import convnet as cn
from convnet import nn
from convnet.data import DataLoader
from convnet.train import fit


class Data:
    def __init__(self):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((48, 5)).astype(np.float32)
        self.y = rng.integers(0, 3, 48)

    def __len__(self):
        return 48

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _train(progress: bool):
    cn.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    loader = DataLoader(Data(), batch_size=16, shuffle=True, seed=1, prefetch=0)
    fit(model, loader, epochs=2, progress=progress, log=lambda m: None,
        optimizer=cn.optim.SGD(model.parameters(), lr=0.1))
    return [p._data.copy() for p in model.parameters()], loader.epoch


def test_progress_bar_reads_the_same_epochs():
    quiet, quiet_epoch = _train(False)
    shown, shown_epoch = _train(True)
    assert quiet_epoch == shown_epoch == 2
    for a, b in zip(quiet, shown, strict=True):
        np.testing.assert_array_equal(a, b)
