"""bench/frozen_features.py's measure: the share a perfect calibrator could auto-label at the target."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from frozen_features import auto_share  # noqa: E402


def probs_for(top: list[float], right: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities with the given top probability; truth class 0 where right."""
    p = np.array([[t, 1 - t] for t in top])
    return p, np.array([0 if r else 1 for r in right])


def test_the_most_confident_items_are_taken_until_the_accuracy_would_drop_below_the_target():
    # 19 right then one wrong: 95 % at 20 items; a 21st wrong item would drop it to 90.5 %
    probs, truth = probs_for([0.99 - i * 0.01 for i in range(21)], [True] * 19 + [False, False])
    assert auto_share(probs, truth, 0.95) == 20 / 21


def test_an_early_error_costs_only_as_much_as_the_target_demands():
    # the most confident item is wrong: no prefix is 95 % right until 20 items hold 19 right
    probs, truth = probs_for([0.99 - i * 0.01 for i in range(30)], [False] + [True] * 29)
    assert auto_share(probs, truth, 0.95) == 1.0  # 29 of 30 right: 96.7 %
    assert auto_share(probs, truth, 0.99) == 0.0


def test_nothing_right_means_nothing_auto_labelable():
    probs, truth = probs_for([0.9, 0.8], [False, False])
    assert auto_share(probs, truth) == 0.0
