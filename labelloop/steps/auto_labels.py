"""What a gate auto-labels: the items above the threshold, the worst-case tail, retired validation items."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelloop import ledger
from labelloop.calibration import worst_case_tail
from labelloop.config import JobSettings
from labelloop.manifest import Label


class AutoLabels:
    """The auto-labels of one gate, looked up by item id without a million Label objects.

    An item above the threshold is vouched for by the calibrated threshold and bound (with
    class thresholds: those of the class the model gives it); an item of the worst-case tail by
    no threshold and the pool's bound.
    """

    def __init__(self, ids: np.ndarray, classes: np.ndarray, confidences: np.ndarray, tail: np.ndarray,
                 cal: dict[str, Any], pool_bound: float | None, job_name: str, created: str, iteration: int):
        self._index = {int(i): k for k, i in enumerate(ids)}
        self._classes, self._confidences, self._tail = classes, confidences, tail
        self._vouched = {False: (cal["Threshold"], cal["LowerBound"]), True: (None, pool_bound)}
        self._support, self._job, self._created, self._iteration = cal["Support"], job_name, created, iteration
        thresholds, bounds = cal.get("ClassThresholds"), cal.get("ClassLowerBounds")
        self._by_class = None if thresholds is None else (thresholds, bounds, cal.get("ClassSupports"))

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._index

    def __getitem__(self, item_id: int) -> Label:
        k = self._index[item_id]
        threshold, bound = self._vouched[bool(self._tail[k])]
        support, cls, class_bound = self._support, plain(self._classes[k]), False
        if self._by_class is not None and not self._tail[k]:
            thresholds, bounds, supports = self._by_class
            threshold = thresholds[cls]
            if bounds is not None:  # the per-class promise (TBAL's class thresholds state no bound)
                bound, support, class_bound = bounds[cls], supports[cls], True
        return Label(cls, float(self._confidences[k]), False, self._job, self._created, self._iteration,
                     threshold, bound, support, class_bound=class_bound)

    def __len__(self) -> int:
        return len(self._index)


def plain(value: Any) -> Any:
    """A label value as JSON holds it (a class index from a numpy array is a plain int)."""
    return int(value) if isinstance(value, np.integer) else value


def confident_mask(probs: np.ndarray, confidence: np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    """The items the calibration auto-labels: their confidence at or above its threshold (the
    scale it was calibrated on), or for the fixed-margin gate their top two routing probabilities
    further apart than the margin."""
    threshold = calibration["Threshold"]
    if threshold is None:
        return np.zeros(len(probs), dtype=bool)
    if calibration["Method"] == "fixed-margin":
        top2 = np.sort(probs, axis=1)[:, -2:]
        return (top2[:, 1] - top2[:, 0]) > threshold
    # Never the routing probabilities' maximum: for boxes and masks that is (1 + c) / 2, on
    # another scale than the confidence c every threshold is calibrated on.
    confidence = np.asarray(confidence, dtype=float)
    per_class = calibration.get("ClassThresholds")
    if per_class is not None:  # each item gated by the threshold of the class the model gives it
        limits = np.array([np.inf if t is None else t for t in per_class], dtype=float)
        return confidence >= limits[probs.argmax(axis=1)]
    return confidence >= threshold


def worst_case_tail_mask(
    settings: JobSettings, state: dict[str, Any], cal: dict[str, Any], confident: np.ndarray
) -> tuple[np.ndarray, float | None]:
    """Cumulative scope: the items left below the threshold, when the bound's slack pays for all of them.

    The bound vouches for the job's auto-labels (earlier ones and this gate's) with room above
    the target; if that room covers every item still open even with each one counted as an
    error, they are auto-labeled too and the job ends. Only then: no later gate exists whose
    bound would have to carry them. Returns their mask over the pool and the bound that then
    vouches for all of the job's auto-labels.
    """
    tail = np.zeros(len(confident), dtype=bool)
    pool_bound = cal.get("PoolLowerBound")
    if not (settings.worst_case_tail and settings.scope.carries_verdicts and cal["Method"] == "lower-bound"):
        return tail, pool_bound
    if settings.human_labels_left(state["HumanLabeled"], state.get("HumanAdjusted") or 0) == 0:
        return tail, pool_bound  # a spent budget leaves what is open unlabeled, never below the threshold
    pool = state["AutoLabeled"] + int(confident.sum())
    left = int((~confident).sum())
    if left and worst_case_tail(pool_bound, pool, cal["WorkingTarget"]) >= left:
        tail = ~confident
        pool_bound = pool_bound * pool / (pool + left)
    return tail, pool_bound


def retire_confident_validation(
    settings: JobSettings, it: int, val_ids: np.ndarray, val_p: np.ndarray, val_confident: np.ndarray,
    predicted: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[int, str], dict[int, dict]]:
    """Iteration and cumulative scopes: the validation items this model would auto-label.

    Such an item no longer resembles the pool that is left, so it stops judging and starts
    training. Cumulative scope: it keeps the verdict this model earned on it, which stands for
    the items auto-labeled with it in every later bound. `predicted` is the model's (labels,
    confidences) for the validation items; by default the most probable class of `val_p`.
    """
    values, confidences = predicted if predicted is not None else (val_p.argmax(axis=1), val_p.max(axis=1))
    retired: dict[int, str] = {}
    verdicts: dict[int, dict] = {}
    for k in np.nonzero(val_confident)[0]:
        retired[int(val_ids[k])] = ledger.RETIRED
        if settings.scope.carries_verdicts:
            verdicts[int(val_ids[k])] = {"iteration": it, "predicted": plain(values[k]), "confidence": round(float(confidences[k]), 6)}
    return retired, verdicts
