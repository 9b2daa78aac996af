"""The comparison helper fails what it must: a large element off by more than the norm
tolerance, and a small element off by little against the norm but much against itself."""

import numpy as np
import pytest

from tests.helpers import assert_close

EXPECTED = np.array([10.0, 0.1, -5.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rounding_alone_passes(dtype):
    assert_close(EXPECTED.astype(dtype), EXPECTED, dtype)


def test_norm_check_catches_a_large_element_off():
    wrong = EXPECTED.astype(np.float32)
    wrong[0] *= 1 + 3e-5  # 3e-5 of the norm
    with pytest.raises(AssertionError, match="relative error"):
        assert_close(wrong, EXPECTED, np.float32)


@pytest.mark.parametrize("dtype,rel", [(np.float32, 1e-3), (np.float64, 5e-9)])
def test_element_check_catches_a_small_element_off(dtype, rel):
    wrong = EXPECTED.astype(dtype)
    wrong[1] *= 1 + rel  # 1e-5 or 5e-11 of the norm: within the norm check
    with pytest.raises(AssertionError, match=r"element\(s\) beyond atol \+ rtol"):
        assert_close(wrong, EXPECTED, dtype)
    wrong[1] = EXPECTED[1] * (1 + rel / 100)  # ten times below the element tolerance
    assert_close(wrong, EXPECTED, dtype)


def test_an_element_that_should_be_zero():
    wrong = EXPECTED.astype(np.float32)
    wrong[3] = 1e-4  # 1e-5 of the norm: passes the norm check alone
    with pytest.raises(AssertionError, match="worst at"):
        assert_close(wrong, EXPECTED, np.float32)
