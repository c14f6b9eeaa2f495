"""The human batch: which items a labeling job gets, and the manifest it reads."""

from __future__ import annotations

import math
from typing import Any

from labelloop import layout, ledger, storage
from labelloop.config import JobSettings

ROLE_KEY = "labelloop-role"  # carried in the human batch manifest: why an item was picked
GUESS_KEY = "labelloop-guess"  # the model's guess, shown to people on the local worker page


def human_batch_limit(settings: JobSettings, state: dict[str, Any], candidates: int, size: int | None = None) -> int:
    """How many items the next batch may hold: the batch size (default: the job's), the budget
    left, the candidates."""
    left = settings.human_labels_left(state["HumanLabeled"], state.get("HumanAdjusted") or 0)
    size = settings.human_batch_size if size is None else size
    return max(0, min(size, candidates if left is None else left, candidates))


def gate_batch_limit(settings: JobSettings, state: dict[str, Any], n_open: int, n_uncertain: int) -> int:
    """How many items a gate that leaves `n_open` items unlabeled by humans, `n_uncertain` of them
    below its threshold, may send to people: `human_batch_limit` over `human_candidates`, with
    the tail's `batch_size`."""
    candidates = human_candidates(settings, n_open, n_uncertain)
    return human_batch_limit(settings, state, candidates, batch_size(settings, n_uncertain))


def top_up_limit(batch: int) -> int:
    """The most validation top-ups a batch of `batch` items may hold: half of it (all of a
    one-item batch), so the uncertain items keep the other half. `batch_size` sizes the tail's
    last batch by it."""
    return batch // 2 or batch


def batch_size(settings: JobSettings, n_uncertain: int) -> int:
    """The batch a gate routes when it leaves `n_uncertain` items the model is unsure of.

    In a job's tail a full batch would buy labels the next model no longer needs: retrained on
    part of the tail, it certifies most of the rest. So while more than half a batch is left, a
    batch holds half of the uncertain items. Once at most half a batch is left, it holds twice
    their number (at least a quarter batch): room for every one of them beside the validation
    top-up, which may take half of a batch (`top_up_limit`). Halving a handful would leave a few items to yet
    another gate, which costs a training run and, under the job scope, a fresh judgement of
    every auto-label; a full batch would draw more validation top-ups than the job's last gates
    need. Only how many of the uncertain items people get changes; the calibration does not.
    """
    size = settings.human_batch_size
    if not settings.tail_batch:
        return size
    if 2 * n_uncertain <= size:
        return max(math.ceil(size / 4), 2 * n_uncertain)
    return min(size, math.ceil(n_uncertain / 2))


def human_candidates(settings: JobSettings, n_open: int, n_uncertain: int) -> int:
    """How many items the next batch is sized from: the ones the model is unsure of; under the
    job scope, while any is left, every item no human has labeled, since the validation top-up
    is drawn from all of them. Sized from the uncertain ones alone, the top-up would take the
    last uncertain items' places and the job would buy one validation label per iteration."""
    return n_open if settings.scope.provisional and n_uncertain else n_uncertain


def write_human_batch(
    config: dict, iteration: int, ledger_uri: str, chosen: dict[int, str], guesses: dict[int, dict] | None = None
) -> dict[str, Any]:
    """Write the labeling job's input manifest for the chosen items ({id: role}).

    A validation item never carries a guess, whatever `guesses` holds: its answer judges the
    model, so the person giving it must not see what the model said.
    """
    guesses = guesses or {}
    if not chosen:
        return {"Count": 0}
    settings = config["Settings"]
    out = settings["OutputUri"]
    batch_uri = layout.human_batch_uri(out, iteration)
    with storage.LineWriter(batch_uri) as writer:
        for record in storage.iter_json_lines(ledger_uri):
            role = chosen.get(record["id"])
            if role is None:
                continue
            line = {**ledger.job_line(record), ROLE_KEY: role}
            if record["id"] in guesses and role != ledger.VALIDATION:
                line[GUESS_KEY] = guesses[record["id"]]
            writer.write(line)
    return {
        "Count": writer.count,
        "ManifestUri": batch_uri,
        "OutputUri": layout.labeling_dir(out),
        "LabelingJobName": layout.job_name(settings["JobName"], config["RunId"], iteration, "label"),
    }
