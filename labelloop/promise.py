"""What the promise (accuracy, or a mean IoU for boxes) needs, in words a user can act on: how many validation labels the
first certificate takes at the job's target and confidence, how many the validation policy will
gather, and, when nothing was auto-labeled, why and what would change it.

The numbers come from `labelloop.calibration`: below its starting support the lower-bound test
starts at the smallest support that could pass (`start_for`: that many validation items at or
above a threshold, all right; a mean IoU keeps the starting support, or under the betting bound its
early start, a third of it), so a job that never holds that many cannot certify any
threshold, however good its model.
"""

from __future__ import annotations

import math
from typing import Any

from labelloop import storage, tasks
from labelloop.calibration import FIRST_TEST_SHORTFALL, class_confidence, early_start, start_for, starting_support
from labelloop.config import ConfigurationError, JobSettings, parse_label_category_config


def class_count(settings: JobSettings) -> int:
    """The job's number of classes, when the settings name them or their config file can be read (else 0)."""
    if settings.label_categories:
        return len(settings.label_categories)
    try:
        return len(parse_label_category_config(storage.read_json(settings.label_category_config_uri), "categories"))
    except (OSError, ValueError, ConfigurationError):
        return 0


def _per_class(settings: JobSettings) -> int:
    """The number of classes each holding its own promise (0: one promise for all auto-labels)."""
    return class_count(settings) if settings.per_class else 0


def _need(settings: JobSettings, target: float, confidence: float) -> int:
    k = _per_class(settings)
    need = start_for(target, class_confidence(confidence, k) if k else confidence, 0, _boxes(settings))
    return early_start(need) if _boxes(settings) and settings.iou_bound == "betting" else need


def labels_needed(settings: JobSettings) -> int:
    """Validation labels the first certificate needs (all at or above one threshold, all right);
    under the per-class promise, of one predicted class, for that class's first certificate."""
    return max(settings.min_validation_support, _need(settings, settings.target_accuracy, settings.confidence_level))


def _tolerant(settings: JobSettings) -> str:
    """From how many validation labels on the test tolerates a few wrong ones (accuracy only)."""
    if _boxes(settings):
        return ""
    if _per_class(settings):
        level = class_confidence(settings.confidence_level, _per_class(settings))
        return f" (all right; each of the {_per_class(settings)} classes tested at {100 * level:.4g} % confidence)"
    n = max(settings.min_validation_support, starting_support(settings.target_accuracy, settings.confidence_level))
    wrong = math.floor(n * (1.0 - settings.target_accuracy) * FIRST_TEST_SHORTFALL)
    return f" (all right; from {n} on, {wrong} may be wrong)" if wrong else " (all right)"


def labels_gathered(settings: JobSettings, total: int) -> int:
    """Most validation labels the job's validation policy gathers on `total` items."""
    humans = total if settings.human_label_limit() is None else min(total, settings.human_label_limit())
    if settings.validation_policy == "adaptive":
        # Its random draws fill at most half of each human batch (the rest trains the model), but
        # all of the first when a given model needs no training labels.
        first = min(settings.human_batch_size, humans) if settings.initial_model_artifacts else 0
        return min(settings.validation_size_for(total, _per_class(settings)), max(first, (humans + 1) // 2))
    if settings.validation_policy == "frozen-first":
        return math.ceil(settings.validation_share(total) * min(settings.human_batch_size, humans))
    return math.floor(settings.validation_share(total) * humans)


def _parse(settings: dict[str, Any]) -> JobSettings | None:
    try:
        return JobSettings.parse(settings)
    except (ConfigurationError, TypeError, ValueError):
        return None


def _p(value: float) -> str:
    return f"{100 * value:g} %"


def _boxes(settings: JobSettings) -> bool:
    return tasks.get(settings.task_type).bounded_mean


def promise_words(task_type: str, target: float, confidence: float) -> str:
    """The promise in a task type's own terms: '95 % accurate with 95 % confidence', or for a
    mean quality (boxes) 'mean IoU of the auto-labels ≥ 0.6 with 95 % confidence'."""
    if task_type in tasks.names() and tasks.get(task_type).bounded_mean:
        return f"mean IoU of the auto-labels ≥ {target:g} with {_p(confidence)} confidence"
    return f"{_p(target)} accurate with {_p(confidence)} confidence"


def quality_text(task_type: str, value: float | None, digits: int = 2) -> str:
    """An auto-label quality as a user reads it: a percentage for accuracy, a number for a mean IoU."""
    if value is None:
        return "n/a"
    if task_type in tasks.names() and tasks.get(task_type).bounded_mean:
        return f"{value:.{digits + 1}f}"
    return f"{100 * value:.{digits}f} %"


def target_flag(task_type: str) -> str:
    """The `run` option that sets a task type's target (an unknown type: the accuracy's)."""
    return "--target-iou" if task_type in tasks.names() and tasks.get(task_type).bounded_mean else "--target-accuracy"


def start_line(settings_json: dict[str, Any], total: int) -> str | None:
    """One line for the start of a run: what the promise needs against what the job will gather."""
    settings = _parse(settings_json)
    if settings is None or settings.calibration_method != "lower-bound":
        return None
    need, gather, k = labels_needed(settings), labels_gathered(settings, total), _per_class(settings)
    whose, a_class = ("every class's auto-labels ", " of a class") if k else ("", "")
    line = (f"promise: {whose}{promise_words(settings.task_type, settings.target_accuracy, settings.confidence_level)} "
            f"needs {need} validation labels{a_class} for a first certificate{_tolerant(settings)}; the "
            f"{settings.validation_policy} validation policy gathers up to {gather} of these {total} items")
    if gather < need:
        line += "\n  too few: nothing can be auto-labeled. " + _change(settings, total)
    elif gather < k * need:
        line += (f"\n  fewer than all {k} classes need ({k} x {need} = {k * need}): with classes of about equal size "
                 f"none may be certified. " + _change(settings, total))
    return line


def _alternatives(settings: JobSettings) -> list[tuple[str, int]]:
    """(what to pass, labels the first certificate then needs), for lower settings."""
    target, confidence = settings.target_accuracy, settings.confidence_level
    lower_target = round(target - 0.05, 2) if target > 0.55 else None
    lower_confidence = round(confidence - 0.05, 2) if confidence > 0.55 else None
    flag = target_flag(settings.task_type)
    out = []
    if lower_target:
        out.append((f"{flag} {lower_target:g}", _need(settings, lower_target, confidence)))
    if lower_confidence:
        out.append((f"--confidence {lower_confidence:g}", _need(settings, target, lower_confidence)))
    if lower_target and lower_confidence:
        out.append((f"{flag} {lower_target:g} --confidence {lower_confidence:g}",
                    _need(settings, lower_target, lower_confidence)))
    return out


def _items_for(settings: JobSettings, need: int) -> int | None:
    """Fewest items on which the policy gathers `need` validation labels (None: never)."""
    if settings.validation_policy == "adaptive":
        return 2 * need if settings.validation_size_for(2 * need, _per_class(settings)) >= need else None
    share = settings.validation_share(need)
    return math.ceil(need / share) if share > 0 and settings.validation_policy == "ground-truth" else None


def _change(settings: JobSettings, total: int) -> str:
    """What would let a first certificate happen, with numbers: lower settings, more items."""
    k = _per_class(settings)
    need = labels_needed(settings) * max(1, k)  # per class: a class's labels for every class
    a_class = " of a class" if k else ""
    parts = [f"at {flag} the first certificate needs {n} validation labels{a_class}" for flag, n in _alternatives(settings)]
    items = _items_for(settings, need)
    if items is not None and items > total:
        parts.append(f"at these settings about {items} items give it {need}")
    if settings.validation_policy == "adaptive" and settings.validation_size_for(total, k) < need:
        parts.append(f"--validation-size {need} holds enough")
    return "; ".join(parts)


def why_nothing_auto_labeled(settings_json: dict[str, Any], metrics: list[dict[str, Any]], total: int) -> list[str]:
    """Why a run auto-labeled nothing and what would change it; [] when it did auto-label."""
    settings = _parse(settings_json)
    if settings is None or any((m.get("AutoLabeled") or 0) > 0 for m in metrics):
        return []
    if settings.calibration_method == "none":
        return ["nothing was auto-labeled: --calibration none labels everything by hand"]
    if settings.calibration_method == "fixed-margin":
        return ["nothing was auto-labeled: no item's margin passed --margin-threshold "
                f"{settings.margin_threshold:g}; a lower margin would auto-label more"]
    if settings.calibration_method != "lower-bound":  # a benchmark's rule (tbal, oracle)
        return [f"nothing was auto-labeled: the {settings.calibration_method} rule found no threshold that meets "
                f"the target {settings.target_accuracy:g}"]
    need = labels_needed(settings)
    held = max([(m.get("ValidationCount") or 0) + (m.get("CarriedSupport") or 0) for m in metrics], default=0)
    accuracy = [m.get("ValidationAccuracy") for m in metrics if isinstance(m.get("ValidationAccuracy"), (int, float))]
    k = _per_class(settings)
    if k and held < k * need:  # a class is judged on the validation items the model gives it
        lines = [f"nothing was auto-labeled: under --per-class a class's first certificate needs {need} validation "
                 f"labels that the model gives that class, all right ({k} x {need} = {k * need} for {k} classes); this "
                 f"job held at most {held} in all, about {held // k} a class"]
    elif held < need:
        lines = [f"nothing was auto-labeled: at {target_flag(settings.task_type)} {settings.target_accuracy:g} and --confidence "
                 f"{settings.confidence_level:g} the first certificate needs {need} validation labels; this job held "
                 f"at most {held}"]
    elif _boxes(settings):
        best = f" (best validation mean IoU {max(accuracy):.3f})" if accuracy else ""
        lines = [f"nothing was auto-labeled: the job held {held} validation labels, enough for a certificate, but the "
                 f"model's boxes were not good enough on them for the bound on their mean IoU to reach "
                 f"{settings.target_accuracy:g}{best}; more human labels (a larger budget or more iterations) train a "
                 "better model"]
    else:
        best = f" (best validation accuracy {100 * max(accuracy):.1f} %)" if accuracy else ""
        lines = [f"nothing was auto-labeled: the job held {held} validation labels, enough for a certificate, but the "
                 f"model was not accurate enough on them for the bound to reach {_p(settings.target_accuracy)}{best}; "
                 "more human labels (a larger budget or more iterations) train a better model"]
    lines.append("what would change it: " + _change(settings, total))
    return lines
