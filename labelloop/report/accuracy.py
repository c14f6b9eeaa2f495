"""What went wrong, when the true labels are known (`output/evaluation.json`, written by a run
given `--truth`): the auto-labels' accuracy per class against the target, the confusion matrix of
the auto-labels, and which example items were auto-labeled wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelloop.manifest import ManifestError, item_key
from labelloop.report.run import Item, RunData, number

MAX_MATRIX_CLASSES = 40  # beyond this a matrix is unreadable; the per-class table still shows every class


@dataclass
class ClassAccuracy:
    name: str
    auto: int
    auto_accuracy: float | None
    human: int
    human_accuracy: float | None
    below_target: bool


def target(data: RunData) -> float | None:
    return number(data.settings.get("TargetAccuracy"))


def auto_accuracy(data: RunData) -> float | None:
    return number((data.evaluation or {}).get("auto_accuracy"))


def below_target(data: RunData) -> bool:
    acc, goal = auto_accuracy(data), target(data)
    return acc is not None and goal is not None and acc < goal


def _class_order(data: RunData, names: set[str]) -> list[str]:
    return [c for c in data.classes if c in names] + sorted(names - set(data.classes))


def per_class(data: RunData) -> list[ClassAccuracy]:
    """One row per class given, in class-index order: how often its labels are right; [] without an evaluation."""
    counts = (data.evaluation or {}).get("per_class")
    if not isinstance(counts, dict):
        return []
    goal = target(data)
    rows = []
    for name in _class_order(data, set(counts)):
        c = counts[name] if isinstance(counts[name], dict) else {}
        auto, human = int(c.get("auto") or 0), int(c.get("human") or 0)
        acc = (c.get("auto_correct") or 0) / auto if auto else None
        rows.append(ClassAccuracy(name, auto, acc, human, (c.get("human_correct") or 0) / human if human else None,
                                  acc is not None and goal is not None and acc < goal))
    return rows


def confusion(data: RunData) -> dict[str, Any] | None:
    """The auto-labels' confusion matrix: {"classes": [...], "rows": [(true class, [count per given class])]}."""
    matrix = (data.evaluation or {}).get("confusion")
    if not isinstance(matrix, dict) or not matrix:
        return None
    given = {g for row in matrix.values() if isinstance(row, dict) for g in row}
    classes = _class_order(data, set(matrix) | given | set(data.classes))
    if len(classes) > MAX_MATRIX_CLASSES:
        return None
    rows = [(t, [int((matrix.get(t) or {}).get(g, 0)) for g in classes]) for t in classes]
    return {"classes": classes, "rows": rows}


def example_truth(data: RunData, items: list[Item]) -> dict[str, str]:
    """True labels of the example items ({item key: class}), read from the run's truth file."""
    path = (data.evaluation or {}).get("truth_file")
    if not isinstance(path, str) or not Path(path).is_file() or not items:
        return {}
    from labelloop.truth import read_truth

    try:
        truth = read_truth(path, str(data.settings.get("LabelAttributeName") or "") or None)
    except (OSError, ValueError):
        return {}
    keys = set()
    for item in items:
        try:
            keys.add(item_key(item.source))
        except ManifestError:
            continue
    return {k: truth.labels[k] for k in keys if k in truth.labels}


def true_class(truth: dict[str, str], item: Item) -> str | None:
    try:
        return truth.get(item_key(item.source))
    except ManifestError:
        return None
