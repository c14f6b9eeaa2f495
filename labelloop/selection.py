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


STRATEGIES = {"least-confidence": least_confidence, "margin": margin, "entropy": entropy}


def select_for_humans(
    scores: np.ndarray,
    count: int,
    *,
    random_fraction: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Positions (into `scores`) of the items to route to humans, at most `count` of them."""
    n = len(scores)
    count = max(0, min(int(count), n))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n_random = int(round(count * random_fraction))
    n_uncertain = count - n_random
    # Most uncertain first; ties broken at random so equal scores do not favour manifest order.
    jitter = rng.random(n) * 1e-9
    chosen = np.argsort(-(scores + jitter), kind="stable")[:n_uncertain]
    if n_random:
        rest = np.setdiff1d(np.arange(n), chosen, assume_unique=False)
        chosen = np.concatenate([chosen, rng.choice(rest, size=min(n_random, rest.size), replace=False)])
    return np.sort(chosen)
