"""Reading a batch transform's joined output: each item's per-class probabilities, checked complete."""

from __future__ import annotations

import json
from typing import Iterator

import numpy as np

from labelloop import storage
from labelloop.errors import AlgorithmOutputError
from labelloop.manifest import ID_KEY, iter_json_lines


def transform_results(prefix: str, n_classes: int) -> Iterator[tuple[int, list[float], dict]]:
    """(id, probabilities, input line) for each line of a batch transform's joined output."""
    files = [u for u in storage.list_objects(prefix) if u.endswith(".out")]
    for uri in files:
        for number, text in iter_json_lines(storage.iter_lines(uri)):
            where = f"{uri} line {number}"
            try:
                line = json.loads(text)
                probs = line["SageMakerOutput"]["probabilities"]
                item_id = line[ID_KEY]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AlgorithmOutputError(
                    f"{where}: expected the input line joined with SageMakerOutput.probabilities"
                ) from None
            if not isinstance(probs, list) or len(probs) != n_classes:
                raise AlgorithmOutputError(f"{where}: expected {n_classes} class probabilities")
            arr = np.asarray(probs, dtype=float)
            if not np.all(np.isfinite(arr)) or np.any(arr < 0) or abs(arr.sum() - 1.0) > 1e-3:
                raise AlgorithmOutputError(f"{where}: probabilities must be finite, non-negative and sum to 1")
            yield item_id, probs, line


def expect_all(prefix: str, expected: int, got: int) -> None:
    if expected != got:
        raise AlgorithmOutputError(f"batch transform output under {prefix} has {got} predictions for {expected} items")


def predictions(prefix: str, n_classes: int, expected: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probabilities) from a batch transform's output, checked complete.

    Filled into preallocated arrays: a million items' predictions take 8 bytes a number, not
    the hundreds a Python list of floats would.
    """
    ids = np.empty(expected, dtype=np.int64)
    probs = np.empty((expected, n_classes), dtype=np.float64)
    got = 0
    for item_id, prob, _ in transform_results(prefix, n_classes):
        if got == expected:
            raise AlgorithmOutputError(f"batch transform output under {prefix} has more predictions than its {expected} items")
        ids[got] = item_id
        probs[got] = prob
        got += 1
    expect_all(prefix, expected, got)
    return ids, probs
