"""What image and text classification share: a label is one class index."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from labelloop.tasks.base import TaskType


def crowd_classification_template(element: str, subject: str, *, source_attribute: bool) -> str:
    """Ground Truth's built-in classification worker UI (Crowd HTML Elements) as a Liquid template.

    `element`: crowd-image-classifier or crowd-classifier; `subject`: "image" or "text", for the
    instructions; `source_attribute`: the item is the element's `src` (images), else its
    `<classification-target>` (texts).
    """
    instructions = f"<p>Choose the one category that best describes the {subject}.</p>"
    src = '\n    src="{{ task.input.taskObject | grant_read_access }}"' if source_attribute else ""
    target = "" if source_attribute else "\n    <classification-target>{{ task.input.taskObject }}</classification-target>"
    return f"""<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <{element}
    name="{element}"{src}
    header="{{{{ task.input.header }}}}"
    categories="{{{{ task.input.labels | to_json | escape }}}}">{target}
    <full-instructions header="Classification instructions">
      {instructions}
    </full-instructions>
    <short-instructions>
      {instructions}
    </short-instructions>
  </{element}>
</crowd-form>
"""


class Classification(TaskType):
    widget = "classification"
    quality_name = "accuracy"
    default_target = 0.95

    def description(self, class_names: list[str]) -> str:
        return f"Choose one of {len(class_names)} categories"

    def read_value(self, value: Any, class_names: list[str]) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(class_names):
            raise ValueError(f"{value!r} is not a class index in 0..{len(class_names) - 1}")
        return value

    def label_metadata(self, value: int, class_names: list[str]) -> dict[str, Any]:
        return {"class-name": class_names[value]}

    def consolidate(self, answers: list[int], workers: int, rng: np.random.Generator) -> tuple[int, float]:
        """Majority vote, ties broken by `rng`; the confidence grows with the winner's share."""
        counts = Counter(answers).most_common()
        top = counts[0][1]
        tied = sorted(v for v, c in counts if c == top)
        winner = int(tied[int(rng.integers(len(tied)))])
        return winner, (round(top / workers * 0.95 + 0.04, 2) if workers > 1 else 0.95)

    def simulated_answer(self, true: int, class_names: list[str], accuracy: float, rng: np.random.Generator) -> int:
        if accuracy >= 1.0 or rng.random() < accuracy:
            return true
        wrong = int(rng.integers(len(class_names) - 1))
        return wrong + (wrong >= true)

    def truth_value(self, truth: Any, class_names: list[str]) -> int | None:
        """Truth files name the class."""
        try:
            return class_names.index(truth)
        except ValueError:
            return None

    def output_buffer(self, expected: int, n_classes: int) -> np.ndarray:
        return np.empty((expected, n_classes), dtype=np.float64)

    def parse_output(self, output: Any, n_classes: int) -> list[float]:
        probs = output.get("probabilities") if isinstance(output, dict) else None
        if not isinstance(probs, list) or len(probs) != n_classes:
            raise ValueError(f"expected {n_classes} class probabilities in SageMakerOutput.probabilities")
        try:
            arr = np.asarray(probs, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("probabilities must be numbers") from None
        if not np.all(np.isfinite(arr)) or np.any(arr < 0) or abs(arr.sum() - 1.0) > 1e-3:
            raise ValueError("probabilities must be finite, non-negative and sum to 1")
        return probs

    def predicted(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The most probable class and its probability (the model's probabilities are calibrated)."""
        return outputs.argmax(axis=1), outputs.max(axis=1)

    def routing_probs(self, outputs: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        return outputs  # the class probabilities: margin, entropy and class balance use all of them

    def quality(self, value: int, reference: int) -> float:
        return float(value == reference)
