"""SyncBatchNorm on real ranks against BatchNorm on the whole batch (float64), and
convert_sync_batchnorm (no MPI needed)."""

import numpy as np
import pytest

from ._launch import results, run_ranks


@pytest.mark.parametrize("shape", ["6x3x5x4", "10x7", "4x1x3x3"])
def test_statistics_and_gradients_are_the_whole_batch(shape):
    for r in results(run_ranks("sync_batchnorm.py", shape)):
        for key in ("y", "dx", "dw", "db", "running_mean", "running_var"):
            assert r[key] < 2e-6, (key, r)
        # the same layer on one rank's half alone is far off: the test has teeth
        assert r["local_bn_y"] > 1e-3 or r["local_bn_dx"] > 1e-3


def test_convert_sync_batchnorm_shares_parameters_and_buffers():
    from convnet import nn
    from convnet.models import resnet20

    model = resnet20(width=4)
    model.layer1[0].bn1.running_mean._data[...] = 3.0
    model.eval()
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    params = {n: p for n, p in model.named_parameters()}
    keys = list(model.state_dict())
    out = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert out is model
    converted = {n: m for n, m in model.named_modules() if isinstance(m, nn.SyncBatchNorm)}
    assert set(converted) == set(bns) and len(bns) == 21
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for n, p in model.named_parameters():
        assert p is params[n]
    assert list(model.state_dict()) == keys
    assert model.layer1[0].bn1.running_mean._data.tolist() == [3.0] * 4
    assert all(not m.training for m in converted.values())
    single = nn.BatchNorm1d(5)
    assert isinstance(nn.SyncBatchNorm.convert_sync_batchnorm(single), nn.SyncBatchNorm)


def test_without_a_process_group_it_is_batch_norm():
    torch = pytest.importorskip("torch")
    import convnet as cn
    from convnet import nn

    x = np.random.default_rng(0).standard_normal((4, 3, 2, 5)).astype(np.float32)
    ours, theirs = nn.SyncBatchNorm(3), torch.nn.SyncBatchNorm(3)
    xt = cn.tensor(x, requires_grad=True)
    y = ours(xt)
    y.sum().backward()
    # torch's SyncBatchNorm without a process group is plain batch norm (on the CPU it
    # refuses to run, so compare with BatchNorm2d)
    ref = torch.nn.BatchNorm2d(3)
    xr = torch.tensor(x, requires_grad=True)
    yr = ref(xr)
    yr.sum().backward()
    assert theirs.num_features == 3
    np.testing.assert_allclose(y._data, yr.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.running_var._data, ref.running_var.numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="SyncBatchNorm"):
        ours(cn.tensor(np.ones((2, 4), np.float32)))
