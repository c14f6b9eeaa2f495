"""Resuming a run: the loop state rebuilt from what an earlier run on the same output wrote."""

from __future__ import annotations

from typing import Any

from labelloop import layout, storage
from labelloop.config import JobSettings
from labelloop.contracts import LoopState
from labelloop.manifest import ID_KEY
from labelloop.steps.human_batch import GUESS_KEY
from labelloop.steps.merge import merge_answers


def resume_state(config: dict[str, Any], settings: JobSettings) -> dict[str, Any] | None:
    """The state to go on from, rebuilt from what the earlier run wrote; None if it wrote no ledger."""
    out = settings.output_uri
    found = layout.ledgers(storage.list_objects(layout.iterations_root(out)))
    if not found:
        return None
    iteration, stage, ledger_uri = found[-1]
    next_iteration = iteration + 1 if stage != "input" else 1
    # A routed batch for the next iteration: merge its answers if its labeling job finished.
    batch_uri = layout.human_batch_uri(out, next_iteration)
    pending = storage.exists(batch_uri)
    answered = None
    if pending:
        outputs = [
            u for u in storage.list_objects(layout.labeling_dir(out))
            if u.endswith(layout.labeling_output_suffix(next_iteration))
        ]
        answered = outputs[-1] if outputs else None
    total = pre = human = auto = 0
    clicks: int | None = None  # this job's human labels' clicks, where their answers said
    by_batch: dict[int, set[int]] = {}  # this job's human labels, by the iteration whose batch asked for them
    for record in storage.iter_json_lines(ledger_uri):
        total += 1
        label = record["label"]
        if label is not None:
            pre += label["iteration"] == 0
            human += label["human"] and label["iteration"] > 0
            auto += not label["human"] and label["iteration"] > 0
            if label["human"] and label["iteration"] > 0:
                by_batch.setdefault(label["iteration"], set()).add(record["id"])
                if label.get("clicks") is not None:
                    clicks = (clicks or 0) + label["clicks"]
    # The last step done merged a human batch, and the run stopped before a model was trained on
    # it: go on from there (train, calibrate, gate), as the run would have, not ask people for more.
    merged_last = stage == "human"
    remaining = total - pre - human - auto
    state = LoopState.model_validate({
        "Iteration": iteration if merged_last else next_iteration,
        "LedgerUri": ledger_uri,
        "Total": total,
        "Rejected": sum(1 for _ in storage.iter_lines(layout.rejected_uri(out))) if storage.exists(layout.rejected_uri(out)) else 0,
        "PreLabeled": pre,
        "HumanLabeled": human,
        "HumanAdjusted": _adjusted(out, by_batch),
        "HumanClicks": clicks,
        "AutoLabeled": auto,
        "Remaining": remaining,
        "HumanLabeledThisIteration": len(by_batch.get(iteration, ())) if merged_last else 0,
        "HumanBatch": {"Count": 0},
        # Train first when the merged batch left items to gate, or when the last gate held its
        # batch back to retrain on retired validation items: do that, as it would have.
        "RetrainFirst": (merged_last and remaining > 0)
        or (not pending and stage == "auto" and bool(_stored_metrics(out, iteration).get("RetrainFirst"))),
        "ModelArtifacts": None,
        "StopReason": None,
        "Resumed": True,
    }).dump()
    if pending:
        count = sum(1 for _ in storage.iter_lines(batch_uri))
        state["HumanBatch"] = {
            "Count": count,
            "ManifestUri": batch_uri,
            "OutputUri": layout.labeling_dir(out),
            "LabelingJobName": layout.job_name(settings.job_name, config["RunId"], next_iteration, "label"),
        }
        if answered:
            # Paid-for answers that the crash kept from being merged: merge them now, and let the
            # loop carry on from the next step (training on them) with nothing sent to humans twice.
            state = merge_answers(config, state, answered)
            state["RetrainFirst"] = state["Remaining"] > 0
    return state


def _adjusted(out: str, by_batch: dict[int, set[int]]) -> int:
    """How many of the human labels were adjustments: their batch showed the model's guess."""
    count = 0
    for iteration, ids in by_batch.items():
        uri = layout.human_batch_uri(out, iteration)
        if storage.exists(uri):
            count += sum(1 for line in storage.iter_json_lines(uri) if GUESS_KEY in line and line.get(ID_KEY) in ids)
    return count


def _stored_metrics(out: str, iteration: int) -> dict[str, Any]:
    uri = layout.metrics_uri(out, iteration)
    return storage.read_json(uri) if storage.exists(uri) else {}
