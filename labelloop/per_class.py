"""The per-class promise (`--per-class`, PerClassPromise): every class's auto-labels meet the target.

Pure logic: which settings it works with, and how many validation labels it needs. The test
itself is `calibration.calibrate_per_class`.
"""

from __future__ import annotations

from typing import Any

from labelloop import tasks
from labelloop.calibration import class_support_needed


def settings_problems(settings: Any) -> list[str]:
    """What makes PerClassPromise impossible with the other settings, each said with the way out."""
    if not isinstance(settings.per_class, bool):
        return [f"PerClassPromise must be true or false, got {settings.per_class!r}"]
    if not settings.per_class:
        return []
    p = []
    if settings.task_type in tasks.names() and tasks.get(settings.task_type).bounded_mean:
        p.append(f"PerClassPromise is for classification; a {settings.task_type} label holds many classes and "
                 "is promised a mean IoU over the image")
    if settings.calibration_method != "lower-bound":
        p.append(f"PerClassPromise needs CalibrationMethod 'lower-bound' (the one that states a confidence), "
                 f"not {settings.calibration_method!r}")
    if settings.calibration_scope == "cumulative":
        p.append("PerClassPromise works with CalibrationScope 'job' (the default) or 'iteration', not 'cumulative': "
                 "its carried verdicts are not kept per class, and docs/promise.md measures it missing the promise")
    return p


def validation_size(settings: Any, default: int, n_classes: int) -> int:
    """The adaptive policy's validation set under the per-class promise, unless ValidationSize is given.

    Every class is judged on the validation items the model gives it, at the Bonferroni-split
    confidence, so each needs about `class_support_needed` of them: with balanced classes the
    set holds that many for each (10 classes at 95 %/95 %: 104 each, 1,040 in all).
    """
    if not settings.per_class or settings.validation_size is not None or n_classes < 1:
        return default
    return max(default, n_classes * class_support_needed(settings.target_accuracy, settings.confidence_level, n_classes))
