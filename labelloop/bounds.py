"""Lower confidence bounds on the mean quality of labels, for qualities in [0, 1].

Accuracy is a pass/fail rate and has an exact bound (Clopper–Pearson, in `calibration`). A box
or mask label's quality is an IoU: any number in [0, 1], and the target is a *mean*. For that,
the Hoeffding–Bentkus bound (Bates, Angelopoulos, Lei, Malik and Jordan, "Distribution-free,
risk-controlling prediction sets", 2021; the bound Learn-then-Test uses on detection) is valid
for any distribution on [0, 1]: it takes the smaller of Hoeffding's tail and Bentkus' (a
Binomial tail times e, since among [0, 1] variables with a given mean the Bernoulli ones have
the heaviest lower tail). It needs only the count and the sum, so it drops into the same
fixed-sequence threshold test as the exact bound, from the highest threshold down.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom

_BISECTIONS = 50  # halves [0, 1] to below 1e-15


def _kl_bernoulli(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL divergence between Bernoulli(p) and Bernoulli(q), for p <= q < 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(p / q), 0.0)
        b = np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - q)), 0.0)
    return a + b


def hoeffding_bentkus_p(mean_loss: np.ndarray, n: np.ndarray, allowed_loss: np.ndarray) -> np.ndarray:
    """p-value of "the true mean loss exceeds allowed_loss", given n losses in [0, 1] averaging mean_loss."""
    r = np.minimum(mean_loss, allowed_loss)
    hoeffding = np.exp(-n * _kl_bernoulli(r, allowed_loss))
    bentkus = math.e * binom.cdf(np.ceil(n * mean_loss - 1e-9), n, allowed_loss)
    return np.minimum(hoeffding, bentkus)


def hoeffding_bentkus_lower(total_quality: np.ndarray | float, n: np.ndarray | int, confidence: float) -> np.ndarray:
    """Lower confidence bound on the mean of n qualities in [0, 1] that sum to total_quality.

    The bound is 1 − U, U the largest mean loss the test cannot reject at 1 − confidence; the
    p-value falls as the hypothesised loss rises above the observed one, so U is found by
    bisection (vectorised over many (sum, n) pairs: one per candidate threshold).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    total = np.asarray(total_quality, dtype=float)
    count = np.asarray(n, dtype=float)
    total, count = np.broadcast_arrays(total, count)
    if np.any(count < 0) or np.any(total < -1e-9) or np.any(total > count + 1e-9):
        raise ValueError("each sum of qualities must lie between 0 and its count")
    safe = np.maximum(count, 1.0)
    loss = np.clip(1.0 - total / safe, 0.0, 1.0)
    delta = 1.0 - confidence
    lo, hi = loss.copy(), np.ones_like(loss)  # p(lo) > delta at the observed loss; the bound lies above it
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2.0
        rejected = hoeffding_bentkus_p(loss, safe, mid) <= delta
        hi = np.where(rejected, mid, hi)
        lo = np.where(rejected, lo, mid)
    return np.where(count > 0, 1.0 - hi, 0.0)
