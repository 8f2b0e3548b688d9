"""Map and curve scores: Gini, entropy, ABPC on hand-computed values."""

import numpy as np
import pytest

from deepinterpret.evaluators import abpc, entropy, gini, sparsity


def test_gini_extremes_and_a_hand_value():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    one_hot = np.zeros(100)
    one_hot[3] = -5.0
    assert gini(one_hot) == pytest.approx(0.99)  # (n - 1) / n
    # [1, 2, 3, 4]: sum_i (2i - n - 1) v_i / (n sum v) = (-3 - 2 + 3 + 12) / (4 * 10) = 0.25
    assert gini(np.array([4.0, 1.0, 3.0, 2.0])) == pytest.approx(0.25)


def test_entropy_uniform_and_concentrated():
    assert entropy(np.ones((4, 4))) == pytest.approx(np.log(16))
    assert entropy(np.eye(1, 9).ravel()) == pytest.approx(0.0)
    assert entropy(np.array([1.0, 3.0])) == pytest.approx(-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)))
    assert sparsity(np.array([1.0, 3.0]))["gini"] == pytest.approx(0.25)


def test_abpc_is_the_mean_gap_and_checks_shapes():
    assert abpc([0.9, 0.5, 0.1], [0.9, 0.8, 0.7]) == pytest.approx((0 + 0.3 + 0.6) / 3)
    with pytest.raises(ValueError):
        abpc([0.1, 0.2], [0.1])
