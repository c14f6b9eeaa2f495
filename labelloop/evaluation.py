"""Scoring an output manifest against true labels (benchmarks and demos only: users have none)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from labelloop.manifest import item_key
from labelloop.storage import json_lines


@dataclass
class Evaluation:
    items: int = 0
    human: int = 0
    human_correct: int = 0
    auto: int = 0
    auto_correct: int = 0
    unlabeled: int = 0

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


def evaluate(lines: Iterable[str], attribute: str, truth: dict[str, str]) -> Evaluation:
    result = Evaluation()
    for _, line in json_lines(lines, "output manifest"):
        result.items += 1
        meta = line.get(f"{attribute}-metadata") or {}
        if attribute not in line:
            result.unlabeled += 1
            continue
        right = truth.get(item_key(line)) == meta.get("class-name")
        if meta.get("human-annotated") == "yes":
            result.human += 1
            result.human_correct += right
        else:
            result.auto += 1
            result.auto_correct += right
    return result
