"""Two threshold rules the benchmark measures labelloop's bound against. Neither makes a promise.

- `oracle_threshold`: the lowest threshold whose auto-labels meet the target on the hidden truth.
  Given the truth of every item a gate judges, no calibrator working with the same model can
  auto-label more and still meet the target, so its human labels are the limit the others are
  measured by. It needs the truth, so it exists for benchmarks only (CalibrationMethod "oracle").
- `tbal_threshold`: the published threshold-based auto-labeling rule (Vishwakarma, Lin, Sala and
  Vinayak, "Promises and Pitfalls of Threshold-based Auto-labeling", NeurIPS 2023). Over the
  validation items the model gives a class (class-wise, "independent", as the authors ran every
  experiment), it keeps the lowest threshold t with more than n_v0 = 25 items at or above it whose
  error estimate there, ê(t) + C1·σ̂(t) with σ̂(t) = sqrt(ê(t)(1 − ê(t))), is at most the allowed
  auto-labeling error ε_a. The issue's wording, "lowest threshold whose validation error plus
  C1·sqrt(e(1-e)) stays under the allowed error 1 − target, at least 25 validation points above
  it, C1 = 0.25", maps to it as: e = ê(t) measured on the validation items at or above t (those
  predicted as the class, per class), "under" = at most, ε_a = 1 − target, "at least 25" = more
  than 25 (the authors' n_v0 test is strict), C1 = 0.25 (the authors' example setting). The
  formula was checked against the authors' released code (github.com/harit7/TBAL,
  core/threshold_estimation.py, its "sigma" upper bound); note σ̂ is not divided by sqrt(n): the
  margin is a multiple of the estimated error's spread, not a confidence interval, so the rule
  states no confidence. Candidates are every distinct confidence (the authors' code steps through
  a grid of 10,000 values between the lowest and highest when there are over 500 items, a speed
  shortcut that can only move a threshold up to the next grid point).

Both are pure: confidences and per-item correctness (or quality in [0, 1]) in, a threshold out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

TBAL_C1 = 0.25
TBAL_MIN_POINTS = 25  # n_v0: a threshold needs more than this many validation items at or above it


def _runs(confidences: Sequence[float], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(each distinct confidence from the highest down, items at or above it, their summed score)."""
    conf = np.asarray(confidences, dtype=float)
    score = np.asarray(scores, dtype=float)
    if conf.shape != score.shape:
        raise ValueError("confidences and correctness must have the same length")
    order = np.argsort(-conf, kind="stable")
    conf, score = conf[order], score[order]
    last = np.nonzero(np.r_[conf[1:] != conf[:-1], True])[0] if conf.size else np.zeros(0, dtype=int)
    return conf[last], last + 1, np.cumsum(score)[last] if conf.size else np.zeros(0)


def _lowest(thresholds: np.ndarray, keep: np.ndarray) -> float | None:
    return float(thresholds[keep].min()) if keep.any() else None


def oracle_threshold(confidences: Sequence[float], quality: Sequence[float], *, target: float) -> float | None:
    """Lowest threshold whose items' mean quality (accuracy, for right/wrong) is at least `target`.

    `quality` holds each item's true quality: 1/0 for a right/wrong class, an IoU for boxes.
    None: no threshold meets the target, nothing is auto-labeled.
    """
    thresholds, count, total = _runs(confidences, quality)
    return _lowest(thresholds, total >= target * count - 1e-9 * count)


def tbal_threshold(confidences: Sequence[float], correct: Sequence[float], *, target: float,
                   c1: float = TBAL_C1, min_points: int = TBAL_MIN_POINTS) -> float | None:
    """TBAL's threshold for one group of validation items (the module's doc): the lowest t with more
    than `min_points` items at or above it and ê(t) + c1·sqrt(ê(t)(1 − ê(t))) ≤ 1 − target."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    thresholds, count, right = _runs(confidences, correct)
    error = (count - right) / np.maximum(count, 1)
    estimate = error + c1 * np.sqrt(np.clip(error * (1.0 - error), 0.0, None))
    return _lowest(thresholds, (count > min_points) & (estimate <= (1.0 - target) + 1e-12))


def tbal_class_thresholds(confidences: Sequence[float], correct: Sequence[float], predicted: Sequence[int],
                          n_classes: int, *, target: float, c1: float = TBAL_C1,
                          min_points: int = TBAL_MIN_POINTS) -> list[float | None]:
    """TBAL's class-wise thresholds: `tbal_threshold` on the validation items predicted as each class."""
    conf, ok, pred = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float), np.asarray(predicted)
    return [tbal_threshold(conf[pred == k], ok[pred == k], target=target, c1=c1, min_points=min_points)
            for k in range(n_classes)]
