"""default_collate / default_convert against torch.utils.data's, on the same samples."""

from collections import OrderedDict, namedtuple

import numpy as np
import pytest

import convnet as cn
from convnet.utils.data import default_collate, default_convert

Point = namedtuple("Point", ["x", "y"])


def same(ours, theirs, torch):
    """Structure, types, dtypes and values agree (convnet Tensor <-> torch.Tensor)."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, cn.Tensor), f"{type(ours)} is not a Tensor"
        assert ours.shape == tuple(theirs.shape)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for k in theirs:
            same(ours[k], theirs[k], torch)
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same(a, b, torch)
    else:
        assert type(ours) is type(theirs) and ours == theirs


def samples(lib):
    """The same batches written with convnet tensors or torch tensors."""
    rng = np.random.default_rng(0)
    arrs = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(3)]
    t = [lib.tensor(a) for a in arrs]
    return {
        "tensors": t,
        "arrays": arrs,
        "float64 arrays": [a.astype(np.float64) for a in arrs],
        "ints": [1, 2, 3],
        "floats": [0.5, 1.5, -2.0],
        "bools": [True, False, True],
        "numpy scalars": [np.float32(1.5), np.float32(2.5)],
        "numpy ints": [np.int32(4), np.int32(5)],
        "strings": ["a", "bc", "d"],
        "tuples of three": [(t[i], i, f"s{i}") for i in range(3)],
        "lists": [[arrs[i], float(i)] for i in range(3)],
        "dicts": [{"image": t[i], "label": i, "meta": {"id": i * 1.0, "name": "x"}}
                  for i in range(3)],
        "ordered dicts": [OrderedDict(b=i, a=arrs[i]) for i in range(3)],
        "named tuples": [Point(t[i], i) for i in range(3)],
        "nested": [((t[i], [i, i + 1]), {"k": (arrs[i], 2.0)}) for i in range(3)],
    }


@pytest.mark.parametrize("kind", list(samples(cn)))
def test_default_collate_matches_torch(kind):
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    ours = default_collate(samples(cn)[kind])
    theirs = torch_collate(samples(torch)[kind])
    same(ours, theirs, torch)


@pytest.mark.parametrize("kind", ["arrays", "ints", "dicts", "named tuples", "nested",
                                  "tuples of three", "numpy scalars"])
def test_default_convert_matches_torch(kind):
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_convert as torch_convert

    for ours_item, theirs_item in zip(samples(cn)[kind], samples(torch)[kind]):
        same(default_convert(ours_item), torch_convert(theirs_item), torch)


def test_collate_errors_match_torch():
    pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate

    ragged = [[1, 2], [3]]
    with pytest.raises(RuntimeError, match="equal size"):
        torch_collate(ragged)
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate(ragged)
    objects = [object(), object()]
    with pytest.raises(TypeError):
        torch_collate(objects)
    with pytest.raises(TypeError, match="default_collate"):
        default_collate(objects)
    text = [np.array(["a", "b"]), np.array(["c", "d"])]
    with pytest.raises(TypeError):
        torch_collate(text)
    with pytest.raises(TypeError, match="default_collate"):
        default_collate(text)


def test_collate_keeps_the_graph_of_tensors_that_require_grad():
    a = cn.tensor([1.0, 2.0], requires_grad=True)
    b = cn.tensor([3.0, 4.0], requires_grad=True)
    out = default_collate([a * 2, b * 3])
    out.sum().backward()
    assert a.grad.numpy().tolist() == [2.0, 2.0] and b.grad.numpy().tolist() == [3.0, 3.0]
