"""Reading a batch transform's joined output: each item's prediction, checked complete.

What one output line holds is the task type's business (`TaskType.parse_output`): class
probabilities for classification, boxes for detection. The steps see a `Predictions`: the
label each item would get, its confidence, and what routing ranks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from labelloop import storage
from labelloop.errors import AlgorithmOutputError
from labelloop.manifest import ID_KEY, iter_json_lines
from labelloop.tasks import TaskType


@dataclass(frozen=True)
class Predictions:
    ids: np.ndarray  # item ids, in output order
    values: np.ndarray  # the label the model gives each item
    confidence: np.ndarray  # how sure it is, in [0, 1]: what the threshold gates
    probs: np.ndarray  # what routing ranks: class probabilities, or a distribution that grows with the confidence


def transform_results(prefix: str, task: TaskType, n_classes: int) -> Iterator[tuple[int, Any, dict]]:
    """(id, the task's parsed output, input line) for each line of a batch transform's joined output."""
    files = [u for u in storage.list_objects(prefix) if u.endswith(".out")]
    for uri in files:
        for number, text in iter_json_lines(storage.iter_lines(uri)):
            where = f"{uri} line {number}"
            try:
                line = json.loads(text)
                output = line["SageMakerOutput"]
                item_id = line[ID_KEY]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AlgorithmOutputError(f"{where}: expected the input line joined with SageMakerOutput") from None
            try:
                parsed = task.parse_output(output, n_classes)
            except ValueError as exc:
                raise AlgorithmOutputError(f"{where}: {exc}") from None
            yield item_id, parsed, line


def expect_all(prefix: str, expected: int, got: int) -> None:
    if expected != got:
        raise AlgorithmOutputError(f"batch transform output under {prefix} has {got} predictions for {expected} items")


def predictions(prefix: str, task: TaskType, n_classes: int, expected: int,
                truth_attribute: str | None = None) -> tuple[Predictions, list[Any]]:
    """The predictions of a batch transform's output, checked complete, and (with
    `truth_attribute`) each item's label from its joined input line, for validation.

    Filled into a buffer the task type preallocates: a million items' class probabilities take
    8 bytes a number, not the hundreds a Python list of floats would.
    """
    ids = np.empty(expected, dtype=np.int64)
    outputs = task.output_buffer(expected, n_classes)
    truth: list[Any] = []
    got = 0
    for item_id, output, line in transform_results(prefix, task, n_classes):
        if got == expected:
            raise AlgorithmOutputError(f"batch transform output under {prefix} has more predictions than its {expected} items")
        ids[got] = item_id
        outputs[got] = output
        if truth_attribute is not None:
            truth.append(line[truth_attribute])
        got += 1
    expect_all(prefix, expected, got)
    values, confidence = task.predicted(outputs)
    return Predictions(ids, values, confidence, task.routing_probs(outputs, confidence)), truth
