"""CalibrateThreshold: the confidence threshold, chosen on the model's predictions for the validation set."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelloop import layout, storage, tasks
from labelloop.calibration import Calibration, calibrate_per_class, read_order
from labelloop.calibration import calibrate_threshold as calibrate
from labelloop.config import JobSettings
from labelloop.contracts import CalibrationResult
from labelloop.steps.predictions import predictions
from labelloop.threshold_rules import tbal_class_thresholds, tbal_threshold


def calibrate_threshold(event: dict[str, Any]) -> dict[str, Any]:
    """Pick the confidence threshold from the model's predictions on the validation set."""
    config, iteration, state = event["config"], event["iteration"], event["state"]
    settings = JobSettings.parse(config["Settings"])
    n_classes = len(config["ClassNames"])
    transform = iteration["ValidationTransform"]
    task = tasks.get(settings.task_type)
    val, truth = predictions(transform["OutputUri"], task, n_classes, iteration["ValidationCount"],
                             truth_attribute=settings.label_attribute)
    method = settings.calibration_method
    carried = iteration.get("RetiredValidation") or {"Count": 0, "Correct": 0}
    if not settings.scope.carries_verdicts:
        carried = {"Count": 0, "Correct": 0}
    target = settings.working_target(state["Remaining"] / max(1, state["Total"]))
    # The channel line holds the human label as the ledger keeps it (the task type's value).
    quality = [task.quality(p, t) for p, t in zip(val.values.tolist(), truth)]
    result = calibrate(
        val.confidence,
        quality if task.bounded_mean else np.asarray(quality) >= 1.0,
        target_accuracy=target,
        confidence_level=settings.confidence_level,
        min_support=settings.min_validation_support,
        carried_correct=carried["Correct"],
        carried_total=carried["Count"],
        bounded_mean=task.bounded_mean,
        bound=settings.iou_bound,  # the settings refuse "betting" for classification
        read_order=read_order(val.ids),
    )
    bound_chose = method == "lower-bound"
    class_thresholds = per_class = None
    if settings.per_class:  # every class's auto-labels meet the target (config: lower-bound, classes only)
        result, per_class = per_class_calibration(settings, result, val.confidence, np.asarray(quality) >= 1.0,
                                                  val.values, n_classes, target)
        class_thresholds = [c.threshold for c in per_class]
    if method == "tbal":
        threshold, class_thresholds = _tbal(task, val, quality, n_classes, target)
    else:  # the oracle's threshold is chosen by GateAndRoute, on the pool's predictions
        threshold = {"lower-bound": result.threshold, "fixed-margin": settings.margin_threshold}.get(method)
    out = CalibrationResult.model_validate({
        "Method": method,
        "Threshold": threshold,
        # The bound, support and accuracy vouch for a threshold only when the bound chose it.
        "LowerBound": result.lower_bound if bound_chose else None,
        "Support": result.support if bound_chose else None,
        "AccuracyAtThreshold": result.accuracy if bound_chose else None,
        "ValidationCount": result.validation_count,
        "ValidationAccuracy": result.validation_accuracy,
        "MinSupport": result.min_support,
        "WorkingTarget": target,
        "CarriedSupport": result.carried_support if bound_chose else 0,
        "PoolLowerBound": result.pool_bound if bound_chose else None,
        "ClassThresholds": class_thresholds,
        "ClassLowerBounds": [c.lower_bound for c in per_class] if per_class else None,
        "ClassSupports": [c.support for c in per_class] if per_class else None,
    }).dump()
    storage.write_json(layout.calibration_uri(settings.output_uri, state["Iteration"]), out)
    return out


def _tbal(task: tasks.TaskType, val: Any, quality: list[float], n_classes: int,
          target: float) -> tuple[float | None, list[float | None] | None]:
    """(threshold, class thresholds): TBAL's class-wise rule for classes, the lowest class threshold
    standing for them all; one threshold over the image qualities for boxes."""
    ok = np.asarray(quality, dtype=float)
    if task.bounded_mean:
        return tbal_threshold(val.confidence, ok, target=target), None
    per_class = tbal_class_thresholds(val.confidence, ok >= 1.0, val.values, n_classes, target=target)
    return min((t for t in per_class if t is not None), default=None), per_class


def per_class_calibration(settings: JobSettings, whole: Calibration, confidence: np.ndarray, correct: np.ndarray,
                          predicted: np.ndarray, n_classes: int, target: float) -> tuple[Calibration, list[Calibration]]:
    """The per-class promise's calibration: each predicted class's own test (`calibrate_per_class`),
    and the whole they make (`_joined`), which stands for them where one threshold is read."""
    classes = calibrate_per_class(confidence, correct, predicted, n_classes, target_accuracy=target,
                                  confidence_level=settings.confidence_level,
                                  min_support=settings.min_validation_support)
    return _joined(whole, classes), classes


def _joined(whole: Calibration, classes: list[Calibration]) -> Calibration:
    """The per-class thresholds as one calibration: the lowest threshold, the lowest bound (every
    class's auto-labels meet it, so their union does), the summed support and its accuracy."""
    passed = [c for c in classes if c.threshold is not None]
    if not passed:
        return Calibration(None, None, 0, None, whole.validation_count, whole.validation_accuracy,
                           min(c.min_support for c in classes))
    support = sum(c.support for c in passed)
    bound = min(c.lower_bound for c in passed)
    return Calibration(
        threshold=min(c.threshold for c in passed),
        lower_bound=bound,
        support=support,
        accuracy=sum(c.accuracy * c.support for c in passed) / support,
        validation_count=whole.validation_count,
        validation_accuracy=whole.validation_accuracy,
        min_support=min(c.min_support for c in classes),
        pool_bound=bound,
    )
