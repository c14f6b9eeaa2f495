"""The oracle's threshold (benchmarks only): chosen on the hidden truth of the items a gate judges.

It is chosen in GateAndRoute, the first step that has the pool's predictions (CalibrateThreshold
runs before the pool's batch transform and leaves the oracle's threshold empty).

Job scope: the gate judges every item no human has labeled, its provisional auto-labels too, and
what it auto-labels is the job's auto-labels as of then. So the lowest threshold whose items meet
the target on their true labels is what the best calibrator could choose with this model.
"""

from __future__ import annotations

import json

import numpy as np

from labelloop import storage
from labelloop.config import JobSettings
from labelloop.manifest import item_key, iter_json_lines
from labelloop.steps.predictions import Predictions
from labelloop.tasks import TaskType
from labelloop.threshold_rules import oracle_threshold
from labelloop.truth import read_truth


def pool_keys(prefix: str) -> list[str]:
    """Each transform output line's item key, in the order `predictions` reads them."""
    keys = []
    for uri in [u for u in storage.list_objects(prefix) if u.endswith(".out")]:
        for _, text in iter_json_lines(storage.iter_lines(uri)):
            keys.append(item_key(json.loads(text)))
    return keys


def oracle_quality(settings: JobSettings, task: TaskType, class_names: list[str], prefix: str,
                   pool: Predictions) -> np.ndarray:
    """Each pool item's true quality (`pool`, read from the transform output under `prefix`): 1/0
    for a right/wrong class, the IoU for boxes; an item without a true label counts as wrong."""
    if not settings.oracle_truth_uri:  # JobSettings refuses this; a second lock on the product path
        raise ValueError("the oracle calibration needs OracleTruthUri")
    truth = read_truth(settings.oracle_truth_uri, settings.label_attribute).labels
    keys = pool_keys(prefix)
    quality = np.zeros(len(keys))
    for k, (key, value) in enumerate(zip(keys, pool.values.tolist())):
        reference = task.truth_value(truth[key], class_names) if key in truth else None
        quality[k] = 0.0 if reference is None else task.quality(value, reference)
    return quality


def still_meeting(confidence: np.ndarray, quality: np.ndarray, confident: np.ndarray, target: float) -> np.ndarray:
    """`confident` less its least confident items, as few as it takes for the rest to meet the target.

    Job scope draws validation items at random from every item the gate judged, auto-labeled
    ones too, after the threshold is chosen; what the draws leave may fall a hair below the
    target. The items dropped stay open for the next gate.
    """
    threshold = oracle_threshold(confidence[confident], quality[confident], target=target)
    return confident & (confidence >= threshold) if threshold is not None else np.zeros_like(confident)
