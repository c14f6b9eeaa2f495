"""SampleForHumans: the first human batch, a seeded random sample of the unlabeled items."""

from __future__ import annotations

from typing import Any

import numpy as np

from labelloop import ledger, storage
from labelloop.config import JobSettings
from labelloop.steps.human_batch import human_batch_limit, write_human_batch


def sample_for_humans(event: dict[str, Any]) -> dict[str, Any]:
    """The first human batch: a seeded random sample of the unlabeled items.

    With the adaptive validation policy part of it (all of it when starting from a given
    model) is drawn as validation; the rest trains the first model.
    """
    config, state = event["config"], event["state"]
    if state["HumanBatch"]["Count"] or state.get("RetrainFirst"):
        # A resumed run re-sends the batch its predecessor routed and nobody answered, or first
        # trains the model its predecessor's last gate called for.
        return state
    settings = JobSettings.parse(config["Settings"])
    want = human_batch_limit(settings, state, state["Remaining"])
    rng = np.random.default_rng([settings.seed, state["Iteration"]])
    picks = rng.choice(state["Remaining"], size=want, replace=False).tolist() if want else []
    n_val = settings.validation.first_batch_validation(settings, state["Total"], want, len(config["ClassNames"]))
    roles = {position: (ledger.VALIDATION if k < n_val else ledger.TRAIN) for k, position in enumerate(picks)}
    chosen: dict[int, str] = {}
    unlabeled = 0
    for record in storage.iter_json_lines(state["LedgerUri"]):
        if record["label"] is None:
            if unlabeled in roles:
                chosen[record["id"]] = roles[unlabeled]
            unlabeled += 1
    return {**state, "HumanBatch": write_human_batch(config, state["Iteration"], state["LedgerUri"], chosen)}
