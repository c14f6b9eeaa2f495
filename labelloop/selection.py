"""Which unlabeled items go to humans next.

Each strategy scores uncertainty from predicted class probabilities (higher = more uncertain);
`select_for_humans` takes the most uncertain, plus a random share so the human labels keep
covering the whole pool, not only the decision boundary.
"""

from __future__ import annotations

import numpy as np


def least_confidence(probs: np.ndarray) -> np.ndarray:
    return 1.0 - probs.max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def random_order(probs: np.ndarray) -> np.ndarray:
    """No preference: the public sample's policy (scores are tied, ties broken at random)."""
    return np.zeros(len(probs))


STRATEGIES = {"least-confidence": least_confidence, "margin": margin, "entropy": entropy, "random": random_order}


def k_center_greedy(features: np.ndarray, count: int) -> np.ndarray:
    """Positions of `count` rows that cover `features` best: each pick is the row farthest from
    every row picked so far (the first: the row farthest from the mean)."""
    n = len(features)
    count = max(0, min(int(count), n))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    x = np.asarray(features, dtype=np.float64)
    nearest = ((x - x.mean(axis=0)) ** 2).sum(axis=1)
    picks = []
    for _ in range(count):
        k = int(np.argmax(nearest))
        picks.append(k)
        nearest = np.minimum(nearest, ((x - x[k]) ** 2).sum(axis=1))
        nearest[k] = -1.0
    return np.asarray(picks, dtype=np.int64)


# Diversity looks this many times the batch deep into the uncertainty ranking.
DIVERSITY_POOL = 10


def select_for_humans(
    scores: np.ndarray,
    count: int,
    *,
    n_random: int = 0,
    predicted: np.ndarray | None = None,
    features: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(uncertain, random) positions into `scores` of the items to route to humans.

    `n_random` of the `count` are drawn uniformly (they keep the human labels covering the whole
    pool, and serve as validation draws); the rest are the most uncertain. With `predicted`
    (each item's predicted class), a class-balance guard first gives every predicted class a
    share of the uncertain slots, so a rare class is not starved by a common, confusing one.
    With `features` (diversity), the uncertain slots go to a k-center cover of the most
    uncertain items (the top DIVERSITY_POOL x slots), so a batch is not spent on near-duplicates.
    """
    n = len(scores)
    count = max(0, min(int(count), n))
    n_random = max(0, min(int(n_random), count))
    rng = np.random.default_rng(seed)
    empty = np.zeros(0, dtype=np.int64)
    if count == 0:
        return empty, empty
    random_pick = np.sort(rng.choice(n, size=n_random, replace=False)) if n_random else empty
    available = np.ones(n, dtype=bool)
    available[random_pick] = False
    n_uncertain = count - n_random
    # Most uncertain first; ties broken at random so equal scores do not favour manifest order.
    order = np.argsort(-(scores + rng.random(n) * 1e-9), kind="stable")
    order = order[available[order]]
    if features is not None and n_uncertain > 0:
        deep = order[: DIVERSITY_POOL * n_uncertain]
        order = deep[k_center_greedy(features[deep], n_uncertain)]
    chosen: list[int] = []
    if predicted is not None and n_uncertain > 0:
        classes = np.unique(predicted)
        per_class = n_uncertain // (2 * len(classes))
        for c in classes:
            chosen += order[predicted[order] == c][:per_class].tolist()
    taken = set(chosen)
    for position in order:
        if len(chosen) >= n_uncertain:
            break
        if position not in taken:
            chosen.append(int(position))
    return np.sort(np.asarray(chosen, dtype=np.int64)), random_pick


def shadow_route(
    pool_scores: np.ndarray,
    pool_predicted: np.ndarray,
    uncertain: np.ndarray,
    n_random: int,
    scores: np.ndarray,
    predicted: np.ndarray,
    *,
    diversity: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """Which held-out items would have gone to humans, had they been in the pool (a mask).

    Validation must stay a uniform sample of the items no human has labeled, and routing takes
    the uncertain ones out of that pool; so each below-threshold validation item is routed "in
    its shadow" by the rule the pool's items just met. Within a predicted class the uncertain
    picks are a prefix of the uncertainty ranking (with or without the class-balance guard), so
    an item at or above its class's lowest picked score would have been picked. Diversity picks
    are no prefix: there an item in the ranking's deep end is routed with the pool's odds. The
    random share routes each remaining item with the pool's odds.
    """
    rng = np.random.default_rng(seed)
    routed = np.zeros(len(scores), dtype=bool)
    if len(uncertain):
        if diversity:
            deep_cut = np.sort(pool_scores)[::-1][min(len(pool_scores), DIVERSITY_POOL * len(uncertain)) - 1]
            odds = len(uncertain) / max(1, int((pool_scores >= deep_cut).sum()))
            routed |= (scores >= deep_cut) & (rng.random(len(scores)) < odds)
        else:
            for c in np.unique(pool_predicted[uncertain]):
                cut = pool_scores[uncertain][pool_predicted[uncertain] == c].min()
                routed |= (predicted == c) & (scores >= cut)
    left = len(pool_scores) - len(uncertain)
    if n_random and left > 0:
        routed |= ~routed & (rng.random(len(scores)) < n_random / left)
    return routed
