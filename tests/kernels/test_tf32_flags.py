"""The TF32 switches (convnet/kernels/precision.py) against PyTorch's: names, defaults, how
set_float32_matmul_precision and backends.cuda.matmul.allow_tf32 move each other, and
the refusals. They run without a GPU (PyTorch CPU has the same flags); which kernels the
flags select is tested in test_cuda_tc.py and, on the emulator, test_cuda_tc_emulated.py."""

import warnings

import pytest

import convnet as cn
from convnet.kernels import precision


@pytest.fixture(autouse=True)
def restore():
    saved = dict(precision._state)
    yield
    precision._state.update(saved)


def test_defaults():
    assert cn.backends.cuda.matmul.allow_tf32 is False
    assert cn.get_float32_matmul_precision() == "highest"
    # PyTorch's cudnn.allow_tf32 defaults to True; convnet keeps float32 convolutions in
    # float32 unless asked (documented in precision.py and the README)
    assert cn.backends.cudnn.allow_tf32 is False
    assert callable(cn.backends) and "native" in cn.backends()  # still the function


def sequence(mod, flags):
    """The same steps on convnet or torch; what each step reads back."""
    seen = []
    for step in flags:
        if step in ("highest", "high", "medium"):
            mod.set_float32_matmul_precision(step)
        else:
            mod.backends.cuda.matmul.allow_tf32 = step
        try:
            now = mod.get_float32_matmul_precision()
        except RuntimeError:  # torch 2.13 refuses to answer after its two APIs were mixed
            now = None
        seen.append((mod.backends.cuda.matmul.allow_tf32, now))
    return seen


@pytest.mark.parametrize("steps", [
    ["high", False, True],
    ["medium", "highest", True, False],
    [True, "medium", False],
])
def test_precision_and_allow_tf32_move_each_other_as_in_pytorch(steps):
    torch = pytest.importorskip("torch")
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about mixing its two APIs
            theirs = sequence(torch, steps)
    finally:
        torch.set_float32_matmul_precision(saved[1])
        torch.backends.cuda.matmul.allow_tf32 = saved[0]
    ours = sequence(cn, steps)
    assert [o[0] for o in ours] == [t[0] for t in theirs]
    compared = [(o[1], t[1]) for o, t in zip(ours, theirs) if t[1] is not None]
    assert compared and all(o == t for o, t in compared), (ours, theirs)


def test_unknown_precision_warns_and_changes_nothing():
    cn.set_float32_matmul_precision("high")
    with pytest.warns(UserWarning, match="'highest', 'high', or 'medium'"):
        cn.set_float32_matmul_precision("fast")
    assert cn.get_float32_matmul_precision() == "high"
    with pytest.raises(TypeError, match="precision must be a str, got int"):
        cn.set_float32_matmul_precision(3)


def test_flags_select_the_kernels():
    cn.backends.cudnn.allow_tf32 = True
    assert precision.conv_tf32() and not precision.matmul_tf32()
    cn.set_float32_matmul_precision("medium")
    assert precision.matmul_tf32()
    with pytest.raises(TypeError, match="allow_tf32: expected a bool, got str"):
        cn.backends.cudnn.allow_tf32 = "yes"
