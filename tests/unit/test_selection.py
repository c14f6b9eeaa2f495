import numpy as np
import pytest

from labelloop.selection import entropy, least_confidence, margin, select_for_humans


def test_uncertainty_scores_rank_the_unsure_item_first():
    probs = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [0.7, 0.3, 0.0]])
    for score in (least_confidence, margin, entropy):
        assert int(np.argmax(score(probs))) == 1


def test_select_takes_most_uncertain_plus_random_share():
    scores = np.arange(1000, dtype=float)  # item i has uncertainty i
    picked = select_for_humans(scores, 100, random_fraction=0.1, seed=0)
    assert len(picked) == 100 and len(set(picked.tolist())) == 100
    assert set(range(910, 1000)) <= set(picked.tolist())  # the 90 most uncertain


@pytest.mark.parametrize("count", [0, -3])
def test_select_nothing(count):
    assert select_for_humans(np.ones(5), count).size == 0


def test_select_never_more_than_available():
    assert sorted(select_for_humans(np.ones(3), 10).tolist()) == [0, 1, 2]
