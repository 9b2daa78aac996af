import numpy as np

import convnet as cn
from convnet.examples import transfer
from convnet.models import lenet5


def test_reuse_copies_and_freezes_the_lower_convolutions():
    cn.manual_seed(0)
    source, target = lenet5(num_classes=5), lenet5(num_classes=5)
    transfer.reuse(source, target, 2)
    convs_s = transfer.conv_layers(source)
    convs_t = transfer.conv_layers(target)
    for (_, a), (_, b) in zip(convs_s[:2], convs_t[:2]):
        np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
        assert not b.weight.requires_grad and not b.bias.requires_grad
    assert convs_t[2][1].weight.requires_grad
    assert not np.array_equal(convs_s[2][1].weight.numpy(), convs_t[2][1].weight.numpy())


def test_transfer_example_runs_end_to_end():
    out = transfer.run(small=60, epochs_a=1, epochs_b=1, batch=32, progress=False,
                       log=lambda s: None)
    assert 0.0 <= out["task_a_accuracy"] <= 1.0
    for name in ("transfer", "scratch"):
        assert len(out[name]["test_accuracy_per_epoch"]) == 1
    assert out["transfer"]["trainable_parameters"] < out["scratch"]["trainable_parameters"]
