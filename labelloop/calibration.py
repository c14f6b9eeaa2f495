"""Choosing the confidence threshold above which the model's labels are trusted.

The promise: among items auto-labeled at threshold t, accuracy is at least the target, and we
say so with a stated confidence. For each candidate threshold we count the validation items at
or above it (n) and how many the model got right (k), and take the exact one-sided
Clopper-Pearson lower bound on their accuracy. Thresholds are tested from the highest down and
testing stops at the first failure (fixed-sequence testing), so testing many thresholds does
not inflate the error rate: the chosen threshold meets the target with the stated confidence.

Cumulative scope: the promise is about *all* auto-labels of a job, not one iteration's. The
validation items that earlier iterations retired (the model of the day would have auto-labeled
them) keep the verdict that model earned on them, right or wrong; those verdicts are added to
every candidate's counts. Testing the pool of auto-labels as a whole lets the easy items
auto-labeled early carry some harder ones later, as long as the pool still meets the target,
where testing each iteration alone would send the whole hard tail to humans.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy.stats import beta

from labelloop import tasks
from labelloop.bounds import betting_lower, betting_passes, hoeffding_bentkus_lower


BOUNDS = {
    "hoeffding-bentkus": "Hoeffding-Bentkus: needs only the count and sum of the qualities",
    "betting": "the betting bound (Waudby-Smith and Ramdas): tighter where the qualities cluster",
}


@dataclass(frozen=True)
class Calibration:
    threshold: float | None  # None: nothing qualifies, nothing is auto-labeled
    lower_bound: float | None  # accuracy lower bound at the chosen threshold
    support: int  # validation items at or above the chosen threshold
    accuracy: float | None  # observed accuracy at the chosen threshold
    validation_count: int
    validation_accuracy: float | None  # top-1 accuracy on the whole validation set
    min_support: int  # the smallest support the test started from
    carried_support: int = 0  # retired validation verdicts counted in `support` (cumulative scope)
    carried_correct: float = 0  # ... of which right (their summed quality, for a bounded mean)
    # The bound that vouches for the job's auto-labels after this gate: the chosen threshold's, or,
    # when nothing new passes, the earlier auto-labels' alone (None when even they fail).
    pool_bound: float | None = None

    def to_json(self) -> dict:
        return asdict(self)


def clopper_pearson_lower(correct: np.ndarray | int, total: np.ndarray | int, confidence: float) -> np.ndarray:
    """Exact one-sided lower confidence bound on a binomial proportion."""
    k = np.asarray(correct, dtype=float)
    n = np.asarray(total, dtype=float)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1.0 - confidence, k, n - k + 1.0)
    return np.where(k <= 0, 0.0, bound)


def lower_bound(total: np.ndarray | float, n: np.ndarray | int, confidence: float, bounded_mean: bool = False) -> np.ndarray:
    """The exact binomial bound for pass/fail labels; Hoeffding–Bentkus for qualities in [0, 1]."""
    if bounded_mean:
        return hoeffding_bentkus_lower(total, n, confidence)
    return clopper_pearson_lower(total, n, confidence)


def smallest_passing_support(target: float, confidence: float, bounded_mean: bool = False) -> int:
    """Fewest items that could ever pass: n all-correct items give a bound of (1-confidence)^(1/n)
    (for a bounded mean: n items of quality 1, under the Hoeffding–Bentkus bound, a bit more)."""
    n = max(1, math.ceil(math.log(1.0 - confidence) / math.log(target)))
    while bounded_mean and lower_bound(n, n, confidence, True) < target:
        n += 1
    return n


# The share of the allowed shortfall (1 - target) the first test tolerates. Pass/fail labels at the
# top of a good model are nearly all right: half the allowed error rate. A box's or mask's IoU sits
# below 1 even when the label is right (edges a few pixels off: the detector's matched boxes average
# IoU 0.81), so a bounded mean's first test tolerates three quarters: at a 0.6 target, 116 images
# averaging 0.7 rather than 24 averaging 0.8, which the most confident boxes never reached.
FIRST_TEST_SHORTFALL = 0.5
FIRST_TEST_SHORTFALL_BOUNDED_MEAN = 0.75

# The betting bound also tests from an early start (a third of the starting support) with a tenth
# of the error rate, then from the usual start with the rest plus whatever the early tests carried
# down (the fallback procedure). A segmenter's most confident masks are far better than the next
# ones (the top 50 of 301 validation masks averaged 0.85, the top 173 0.69), so at a 0.7 target the
# early start certifies models the usual start cannot; a detector's top boxes are not (see the
# comment above), and then the usual start keeps nine tenths of the error rate, or all of it
# once the early tests pass down to it. A validation set too small for the usual start gives the
# early start all of it.
BETTING_EARLY_START = 1 / 3
BETTING_EARLY_SHARE = 0.1


@functools.lru_cache(maxsize=64)  # a few settings per job, asked at every gate
def starting_support(target: float, confidence: float, bounded_mean: bool = False) -> int:
    """Support of the first threshold tested: the fewest items that pass with part of the allowed
    shortfall (`FIRST_TEST_SHORTFALL`: half the allowed error rate; three quarters of it for a mean IoU).

    Starting where a single unlucky error already fails (the smallest passing support) would end
    the fixed sequence at its first step most of the time; starting where the test tolerates
    errors at half the allowed rate keeps its power. It depends only on the settings, never on
    which items are correct, so the sequence stays fixed and the guarantee holds.
    """
    n = smallest_passing_support(target, confidence, bounded_mean)
    share = FIRST_TEST_SHORTFALL_BOUNDED_MEAN if bounded_mean else FIRST_TEST_SHORTFALL
    while True:
        shortfall = n * (1.0 - target) * share
        if lower_bound(n - (shortfall if bounded_mean else math.floor(shortfall)), n, confidence, bounded_mean) >= target:
            return n
        n += 1


def start_for(target: float, confidence: float, available: int, bounded_mean: bool = False) -> int:
    """Support of the first threshold tested when `available` verdicts (validation items and
    carried ones) judge: `starting_support`, or, for pass/fail labels when fewer than that many
    judge, the smallest support that could pass at all (`start_for(..., 0)`: the fewest
    validation labels a first certificate needs).

    A small validation set (a small dataset, or the first iterations of any) would otherwise
    never reach the starting support: at 95 %/95 % a 400-item job gathered about 110 validation
    labels and certified nothing however good its model. Below the starting support the test
    starts where every item at or above the threshold must be right, and steps down from there
    as usual. The rule reads the settings and the number of verdicts only, never which of them
    are right, so for a given validation set the sequence of thresholds is fixed before any
    verdict is seen and fixed-sequence testing keeps its error rate (the coverage is also
    simulated at small validation sets in tests/unit/test_calibration.py). A bounded mean keeps
    its starting support: its smallest passing support asks for perfect qualities (every box
    at IoU 1), which real labels never reach.
    """
    usual = starting_support(target, confidence, bounded_mean)
    if bounded_mean or available >= usual:
        return usual
    return smallest_passing_support(target, confidence)


def early_start(start: int) -> int:
    """The betting bound's early start, for a usual start of `start` items."""
    return math.ceil(start * BETTING_EARLY_START)


def calibrate_threshold(
    confidences: Sequence[float],
    correct: Sequence[bool],
    *,
    target_accuracy: float,
    confidence_level: float,
    min_support: int = 0,
    carried_correct: float = 0,
    carried_total: int = 0,
    bounded_mean: bool = False,
    bound: str = "hoeffding-bentkus",
    read_order: Sequence[float] | None = None,
    start: int | None = None,
) -> Calibration:
    """Lowest confidence threshold whose auto-labels meet `target_accuracy` with `confidence_level`.

    Testing starts at the highest threshold with `start` validation items at or above it (by
    default `start_for`'s; `min_support`, if larger), then steps down through each distinct
    confidence value. A `start` must not depend on which items are right.
    `carried_correct` of `carried_total` earlier verdicts (cumulative scope) count at every
    threshold; when they alone fail the bound, nothing new is auto-labeled.

    With `bounded_mean`, `correct` holds each validation label's quality in [0, 1] (an IoU) and
    `target_accuracy` is the target mean quality: the Hoeffding–Bentkus bound replaces the exact
    binomial one, and the same fixed sequence is tested. `bound="betting"` tests each threshold
    with the betting bound instead (`bounds.betting_lower`), reading the qualities in the order of
    `read_order` (one key per item, independent of the qualities); it needs every quality, so it takes
    no carried verdicts. Unless given a `start`, it also tests from an early start with part of the
    error rate (`BETTING_EARLY_START`, `BETTING_EARLY_SHARE`); `min_support` reports that start.
    """
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {sorted(BOUNDS)}, got {bound!r}")
    if bound == "betting" and (not bounded_mean or carried_total or read_order is None or len(read_order) != len(confidences)):
        raise ValueError("the betting bound is for a mean quality in [0, 1], reads one order key per "
                         "validation item and takes no carried verdicts")
    if not 0.0 < target_accuracy < 1.0:
        raise ValueError(f"target accuracy must be in (0, 1), got {target_accuracy}")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence level must be in (0, 1), got {confidence_level}")
    conf = np.asarray(confidences, dtype=float)
    ok = np.asarray(correct, dtype=float if bounded_mean else bool)
    if bounded_mean and (not np.all(np.isfinite(ok)) or np.any((ok < 0) | (ok > 1))):
        raise ValueError("qualities must be numbers in [0, 1]")
    if conf.shape != ok.shape:
        raise ValueError("confidences and correct must have the same length")
    if not 0 <= carried_correct <= carried_total:
        raise ValueError(f"carried verdicts: {carried_correct} right of {carried_total} is impossible")
    n_val = int(conf.size)
    early = start is None and bound == "betting"
    if start is None:
        start = start_for(target_accuracy, confidence_level, n_val + carried_total, bounded_mean)
    start = max(int(min_support), int(start))
    first = max(int(min_support), early_start(start)) if early else start
    val_acc = float(ok.mean()) if n_val else None
    nothing = Calibration(None, None, 0, None, n_val, val_acc, first, carried_total, carried_correct)
    if n_val + carried_total < first or n_val == 0:
        return nothing

    by_confidence = np.argsort(-conf, kind="stable")
    conf, ok = conf[by_confidence], ok[by_confidence]
    # One candidate per distinct confidence value: the last position of each run of ties.
    last_of_run = np.r_[conf[1:] != conf[:-1], True]
    idx = np.nonzero(last_of_run)[0]
    support = idx + 1 + carried_total
    hits = np.cumsum(ok)[idx] + carried_correct
    if carried_total:
        # The first test: do the earlier auto-labels alone still hold? (auto-label nothing new)
        idx, support, hits = np.r_[-1, idx], np.r_[carried_total, support], np.r_[carried_correct, hits]
    keep = support >= first
    idx, support, hits = idx[keep], support[keep], hits[keep]
    if idx.size == 0:
        return nothing
    if bound == "betting":
        keys = np.asarray(read_order, dtype=float)[by_confidence]
        # The error rate each start brings (the fallback procedure). A validation set smaller than
        # the usual start (known from its size alone) gives the early start all of it.
        share = BETTING_EARLY_SHARE if first < start <= support[-1] else 1.0
        alpha = np.zeros(idx.size)
        alpha[0] = (1.0 - confidence_level) * share
        if share < 1.0:
            alpha[np.argmax(support >= start)] += (1.0 - confidence_level) * (1.0 - share)
        j, bound_j = _betting_fallback(ok, keys, idx, target_accuracy, alpha)
    else:
        bounds = lower_bound(hits, support, confidence_level, bounded_mean)
        # Fixed-sequence testing: only the unbroken run of passes from the top counts.
        failures = np.nonzero(bounds < target_accuracy)[0]
        j = (int(failures[0]) if failures.size else int(bounds.size)) - 1
        bound_j = float(bounds[j]) if j >= 0 else None
    if j < 0:
        return nothing
    if idx[j] < 0:  # only the earlier auto-labels passed: nothing new, but their bound still counts
        return Calibration(None, None, 0, None, n_val, val_acc, first, carried_total, carried_correct, bound_j)
    return Calibration(
        threshold=float(conf[idx[j]]),
        lower_bound=bound_j,
        support=int(support[j]),
        accuracy=float(hits[j] / support[j]),
        validation_count=n_val,
        validation_accuracy=val_acc,
        min_support=first,
        carried_support=carried_total,
        carried_correct=carried_correct,
        pool_bound=bound_j,
    )


def bound_problems(settings: Any) -> list[str]:
    """What makes IouBound impossible with the other settings, each said with the way out."""
    if settings.iou_bound not in BOUNDS:
        return [f"IouBound {settings.iou_bound!r} is not one of {sorted(BOUNDS)}"]
    if settings.iou_bound == "hoeffding-bentkus":
        return []
    p = []
    if settings.calibration_scope == "cumulative":
        p.append("IouBound 'betting' works with CalibrationScope 'job' (the default) or 'iteration', not "
                 "'cumulative': it reads every quality, and the cumulative scope carries earlier verdicts as sums")
    if settings.task_type in tasks.names() and not tasks.get(settings.task_type).bounded_mean:
        p.append(f"IouBound is for boxes and masks (a mean IoU); a {settings.task_type} label is right or wrong "
                 "and has the exact Clopper-Pearson bound")
    return p


def read_order(ids: np.ndarray) -> np.ndarray:
    """A key per item id for the betting bound's reading order: the ids scrambled (splitmix64's
    finaliser), so the order is fixed for a job, the same on a resumed run, and unrelated to the
    items' content even where ids follow it (a manifest sorted by class)."""
    z = np.asarray(ids).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((z ^ (z >> np.uint64(31))) >> np.uint64(11)).astype(np.float64) / 2.0**53


def _betting_fallback(qualities: np.ndarray, keys: np.ndarray, idx: np.ndarray, target: float,
                      alpha: np.ndarray) -> tuple[int, float | None]:
    """(chosen candidate, its bound) under the betting bound: candidate j holds the items 0..idx[j]
    (most confident first), read in the order of their keys, and is tested at the error rate its
    own start brings (`alpha[j]`) plus what the tests above it carried down, unbroken (Wiens'
    fallback procedure: with one start, plain fixed-sequence testing). The rates sum to 1 −
    confidence, so with that confidence no candidate that passes misses the target; the lowest
    threshold that passes is chosen (-1: none)."""
    carried, chosen, chosen_alpha, chosen_held = 0.0, -1, 0.0, None
    for j, last in enumerate(idx):
        level = carried + alpha[j]
        if level <= 0.0:
            continue
        held = qualities[: last + 1][np.argsort(keys[: last + 1], kind="stable")]
        if betting_passes(held, target, 1.0 - level):
            chosen, chosen_alpha, chosen_held, carried = j, level, held, level
        else:
            if not alpha[j + 1:].any():
                break  # nothing later can be tested
            carried = 0.0
    if chosen < 0:
        return -1, None
    return chosen, betting_lower(chosen_held, 1.0 - chosen_alpha)  # at least the target: the wealth falls as the mean rises


def worst_case_tail(pool_bound: float | None, pool_size: int, target_accuracy: float) -> int:
    """How many more items a pool's accuracy bound pays for if every one of them were wrong.

    With the stated confidence the pool's n auto-labels are at least `pool_bound` accurate; m more,
    all wrong, would leave the n + m at least pool_bound * n / (n + m) accurate, which still meets
    the target while m <= n * (pool_bound / target - 1). No statistics about the m items are
    needed, so this adds no test and the guarantee is unchanged.
    """
    if pool_bound is None or pool_size <= 0 or pool_bound <= target_accuracy:
        return 0
    m = max(0, math.floor(pool_size * (pool_bound / target_accuracy - 1.0)))
    while m and pool_bound * pool_size / (pool_size + m) < target_accuracy:  # rounding
        m -= 1
    return m


def class_confidence(confidence: float, n_classes: int) -> float:
    """Each class's confidence under the per-class promise: Bonferroni over the classes.

    The classes' tests each miss with probability at most (1 - confidence) / n_classes, so the
    chance that any class's chosen threshold misses the target is at most 1 - confidence (a
    union bound: it holds however the classes' tests depend on each other). The number of
    classes is a setting, fixed before any validation label is seen.
    """
    return 1.0 - (1.0 - confidence) / max(1, int(n_classes))


def class_support_needed(target: float, confidence: float, n_classes: int) -> int:
    """Validation labels of one predicted class its first per-class certificate needs (all right)."""
    return start_for(target, class_confidence(confidence, n_classes), 0)


def calibrate_per_class(
    confidences: Sequence[float],
    correct: Sequence[bool],
    predicted: Sequence[int],
    n_classes: int,
    *,
    target_accuracy: float,
    confidence_level: float,
    min_support: int = 0,
) -> list[Calibration]:
    """One threshold per predicted class, so that every class's auto-labels meet the target, jointly
    with `confidence_level`.

    Class c's threshold is `calibrate_threshold` on the validation items the model gives class c,
    at `class_confidence`: the same fixed-sequence test, each class's sequence fixed by its own
    items' confidences, never by which are right. An item is auto-labeled when its confidence
    reaches the threshold of the class the model gives it, so class c's auto-labels are exactly
    the items that class's test vouched for. The union meets the target too (every part does).
    """
    conf = np.asarray(confidences, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    pred = np.asarray(predicted)
    if not conf.shape == ok.shape == pred.shape:
        raise ValueError("confidences, correct and predicted must have the same length")
    level = class_confidence(confidence_level, n_classes)
    return [
        calibrate_threshold(conf[pred == c], ok[pred == c], target_accuracy=target_accuracy,
                            confidence_level=level, min_support=min_support)
        for c in range(n_classes)
    ]
