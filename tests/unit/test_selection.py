import numpy as np
import pytest

from labelloop.selection import entropy, k_center_greedy, least_confidence, margin, select_for_humans


def test_uncertainty_scores_rank_the_unsure_item_first():
    probs = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [0.7, 0.3, 0.0]])
    for score in (least_confidence, margin, entropy):
        assert int(np.argmax(score(probs))) == 1


def test_select_takes_most_uncertain_plus_random_share():
    scores = np.arange(1000, dtype=float)  # item i has uncertainty i
    uncertain, random = select_for_humans(scores, 100, n_random=10, seed=0)
    assert len(uncertain) == 90 and len(random) == 10
    assert not set(uncertain.tolist()) & set(random.tolist())
    assert set(uncertain.tolist()) == set(range(910, 1000))  # the 90 most uncertain


def test_class_balance_guard_keeps_a_rare_class_in_the_batch():
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    predicted = np.zeros(1000, dtype=int)
    predicted[:20] = 1  # a rare class whose items are all fairly certain
    scores[:20] *= 0.1
    plain, _ = select_for_humans(scores, 100, seed=0)
    guarded, _ = select_for_humans(scores, 100, predicted=predicted, seed=0)
    assert (predicted[plain] == 1).sum() == 0
    assert (predicted[guarded] == 1).sum() == 20  # all of them: its share is 100 // (2 * 2) = 25
    assert len(guarded) == 100


@pytest.mark.parametrize("count", [0, -3])
def test_select_nothing(count):
    uncertain, random = select_for_humans(np.ones(5), count)
    assert uncertain.size == 0 and random.size == 0


def test_select_never_more_than_available():
    uncertain, random = select_for_humans(np.ones(3), 10, n_random=1)
    assert sorted(uncertain.tolist() + random.tolist()) == [0, 1, 2]


def test_k_center_covers_clusters_instead_of_repeating_one():
    rng = np.random.default_rng(0)
    centers = np.eye(4)
    features = np.vstack([c + rng.normal(0, 0.01, (50, 4)) for c in centers])
    picks = k_center_greedy(features, 4)
    assert sorted(set((picks // 50).tolist())) == [0, 1, 2, 3]  # one from each cluster


def test_diversity_spreads_the_uncertain_slots():
    rng = np.random.default_rng(1)
    # The 30 most uncertain items are near-duplicates of one point; 170 others are spread out.
    features = np.vstack([np.full((30, 3), 1 / 3) + rng.normal(0, 1e-3, (30, 3)), rng.dirichlet([1, 1, 1], 170)])
    scores = np.r_[np.full(30, 0.9), np.full(170, 0.5)] + rng.random(200) * 1e-3
    plain, _ = select_for_humans(scores, 10, seed=0)
    diverse, _ = select_for_humans(scores, 10, features=features, seed=0)
    assert (plain < 30).all()
    assert (diverse >= 30).sum() >= 8  # the cover leaves the duplicate clump after one or two picks


def test_shadow_routing_sends_validation_items_where_routing_sent_the_pool():
    from labelloop.selection import select_for_humans, shadow_route

    rng = np.random.default_rng(0)
    pool, val = rng.random(5000), rng.random(2000)  # uncertainty scores of pool and validation items
    pool_pred, val_pred = rng.integers(0, 3, 5000), rng.integers(0, 3, 2000)
    uncertain, random_pick = select_for_humans(pool, 500, n_random=50, predicted=pool_pred, seed=1)
    routed = shadow_route(pool, pool_pred, uncertain, len(random_pick), val, val_pred, seed=2)
    # The same share leaves both sets, and from the same (uncertain) end.
    assert abs(routed.mean() - 550 / 5000) < 0.02
    cut = pool[uncertain].min()
    assert routed[val > cut + 0.01].all()
    assert (val[routed] <= cut).sum() == pytest.approx(2000 * 50 / 4550, abs=25)  # the random share only
    # Diversity: no prefix, the deep end's odds.
    uncertain, random_pick = select_for_humans(pool, 500, n_random=0, features=rng.random((5000, 3)), seed=1)
    routed = shadow_route(pool, pool_pred, uncertain, 0, val, val_pred, diversity=True, seed=2)
    assert abs(routed.mean() - 0.1) < 0.02
