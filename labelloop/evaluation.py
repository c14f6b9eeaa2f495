"""Scoring an output manifest against true labels (benchmarks and demos only: users have none).

For classification a label is right or wrong; for a task type whose quality is a number in
[0, 1] (the mean IoU of an image's boxes), the `*_correct` fields sum that quality, so the
accuracies read as mean qualities. Per class, likewise: for boxes a class's counts are the images
where it appears (in the label or the truth) and its summed IoU there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from labelloop.manifest import item_key
from labelloop.storage import json_lines

if TYPE_CHECKING:
    from labelloop.tasks import TaskType


@dataclass
class Evaluation:
    items: int = 0
    human: int = 0
    human_correct: float = 0
    auto: int = 0
    auto_correct: float = 0
    unlabeled: int = 0
    # Class given -> {"auto", "auto_correct", "human", "human_correct"}: how often a label of that class
    # is right (items with a true label only); for boxes, the class's IoU summed over the images it is in.
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    # Auto-labels only: true class -> {given class: count}.
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    truth_file: str | None = None  # where the true labels came from (the report marks wrong examples with it)

    @property
    def auto_accuracy(self) -> float | None:
        return self.auto_correct / self.auto if self.auto else None

    @property
    def human_accuracy(self) -> float | None:
        return self.human_correct / self.human if self.human else None

    @property
    def dataset_accuracy(self) -> float | None:
        """Share of all items carrying the right label (unlabeled items count as wrong)."""
        return (self.human_correct + self.auto_correct) / self.items if self.items else None

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "auto_accuracy": self.auto_accuracy,
            "human_accuracy": self.human_accuracy,
            "dataset_accuracy": self.dataset_accuracy,
        }


def evaluate(lines: Iterable[str], attribute: str, truth: dict[str, Any], task: "TaskType | None" = None,
             class_names: list[str] | None = None) -> Evaluation:
    """Score every label of an output manifest; `task` (with the job's `class_names`) when its
    labels are not single classes: each label then scores its quality against the truth, and each
    class the quality of its part of the label (no confusion matrix is kept)."""
    scored = task is not None and task.bounded_mean
    result = Evaluation()
    for _, line in json_lines(lines, "output manifest"):
        result.items += 1
        meta = line.get(f"{attribute}-metadata") or {}
        if attribute not in line:
            result.unlabeled += 1
            continue
        true, given = truth.get(item_key(line)), meta.get("class-name")
        names = class_names or []
        parts: dict[str, float] = {}  # the label's quality per class
        if scored:
            reference = task.truth_value(true, names) if true is not None else None
            right = 0.0
            if reference is not None:
                value = task.line_label(line, attribute, names)
                right = task.quality(value, reference)
                parts = {names[c]: q for c, q in task.class_qualities(value, reference).items()}
        else:
            right = true == given
            parts = {str(given): right} if true is not None else {}
        kind = "human" if meta.get("human-annotated") == "yes" else "auto"
        if kind == "human":
            result.human += 1
            result.human_correct += right
        else:
            result.auto += 1
            result.auto_correct += right
        for name, quality in parts.items():
            counts = result.per_class.setdefault(name, {"auto": 0, "auto_correct": 0, "human": 0, "human_correct": 0})
            counts[kind] += 1
            counts[f"{kind}_correct"] += quality
        if true is None or scored:
            continue
        if kind == "auto":
            row = result.confusion.setdefault(true, {})
            row[str(given)] = row.get(str(given), 0) + 1
    return result
