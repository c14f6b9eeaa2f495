"""Lower confidence bounds on the mean quality of labels, for qualities in [0, 1].

Accuracy is a pass/fail rate and has an exact bound (Clopper–Pearson, in `calibration`). A box
or mask label's quality is an IoU: any number in [0, 1], and the target is a *mean*. For that,
the Hoeffding–Bentkus bound (Bates, Angelopoulos, Lei, Malik and Jordan, "Distribution-free,
risk-controlling prediction sets", 2021; the bound Learn-then-Test uses on detection) is valid
for any distribution on [0, 1]: it takes the smaller of Hoeffding's tail and Bentkus' (a
Binomial tail times e, since among [0, 1] variables with a given mean the Bernoulli ones have
the heaviest lower tail). It needs only the count and the sum, so it drops into the same
fixed-sequence threshold test as the exact bound, from the highest threshold down.

The betting bound (Waudby-Smith and Ramdas, "Estimating means of bounded random variables by
betting", JRSS B 2024) adapts to the spread of the qualities: a gambler starts with 1 and stakes
a share of their wealth on each quality in turn being above the hypothesised mean m; while the
mean is at most m the wealth is a nonnegative supermartingale, so it ends at 1/δ or more with
chance at most δ (Markov's inequality), and every m at which it does is below the true mean with
confidence 1 − δ. The stakes are the predictable plug-in of the paper's empirical-Bernstein
bettor for a known count n. Masks' IoUs cluster (right objects near 0.9), so the bound sits far
closer to their mean than Hoeffding–Bentkus, which must allow for the widest spread. It reads
the qualities in an order that must not depend on them (`calibration` draws one from item ids).
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


BET_CAP = 0.75  # at most this share of the wealth that a quality of 0 could lose (the paper's c)


def betting_log_wealth(qualities: np.ndarray, means: np.ndarray, confidence: float) -> np.ndarray:
    """The gambler's log wealth after all of `qualities` (read in the given order), betting that
    their mean exceeds each of `means`: an array shaped like `means`. A mean is rejected where it
    reaches log(1/δ) (Markov's inequality at the known count; each bet shrinks as the mean rises,
    so the wealth falls with it and the rejected means are those below the bound)."""
    x = np.asarray(qualities, dtype=float)
    m = np.asarray(means, dtype=float)
    n = x.size
    if n == 0:
        return np.full(m.shape, -np.inf)
    t = np.arange(1, n + 1)
    running_mean = (0.5 + np.cumsum(x)) / (t + 1)
    running_var = (0.25 + np.cumsum((x - running_mean) ** 2)) / (t + 1)
    before = np.r_[0.25, running_var[:-1]]  # what is known before each quality is read
    stake = np.sqrt(2.0 * math.log(1.0 / (1.0 - confidence)) / (n * before))
    safe_m = np.maximum(m, 1e-12)[..., None]
    bets = np.minimum(stake, BET_CAP / safe_m)
    return np.log1p(bets * (x - safe_m)).sum(axis=-1)


def betting_passes(qualities: np.ndarray, mean: float, confidence: float) -> bool:
    """Whether the gambler's wealth rejects "the mean of `qualities` is at most `mean`" at `confidence`."""
    return bool(betting_log_wealth(qualities, np.array(mean), confidence) >= math.log(1.0 / (1.0 - confidence)))


def betting_lower(qualities: np.ndarray, confidence: float) -> float:
    """Lower confidence bound on the mean of qualities in [0, 1], read in the given order: the
    largest mean the gambler's wealth rejects (0 when it rejects none); its wealth falls as the
    hypothesised mean rises, so the bound is found by bisection."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(qualities, dtype=float)
    if x.size == 0:
        return 0.0
    lo, hi = 0.0, 1.0
    if not betting_passes(x, 1e-9, confidence):
        return 0.0
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2.0
        if betting_passes(x, mid, confidence):
            lo = mid
        else:
            hi = mid
    return lo
