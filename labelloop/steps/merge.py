"""MergeHumanLabels: add a labeling job's answers to a new ledger file."""

from __future__ import annotations

from typing import Any

from labelloop import layout, ledger, storage, tasks
from labelloop.config import JobSettings
from labelloop.contracts import LoopState
from labelloop.errors import LabelingOutputError
from labelloop.manifest import CLICKS_KEY, ID_KEY, Label, creation_date
from labelloop.steps.human_batch import GUESS_KEY, ROLE_KEY
from labelloop.steps.ledger_files import rewrite_ledger


def merge_human_labels(event: dict[str, Any]) -> dict[str, Any]:
    """Add the labeling job's answers to the ledger. Items it did not label stay unlabeled."""
    return merge_answers(event["config"], event["state"], event["labeling"]["OutputManifestUri"])


def merge_answers(config: dict[str, Any], state: dict[str, Any], output_uri: str) -> dict[str, Any]:
    """The state after merging the answers in the labeling output manifest at `output_uri`."""
    settings = JobSettings.parse(config["Settings"])
    task = tasks.get(settings.task_type)
    attribute = settings.label_attribute
    batch, guessed = {}, set()
    for line in storage.iter_json_lines(state["HumanBatch"]["ManifestUri"]):
        batch[line[ID_KEY]] = line.get(ROLE_KEY, ledger.TRAIN)
        if GUESS_KEY in line:  # shown with the model's guess: an adjustment, priced as one
            guessed.add(line[ID_KEY])
    answers: dict[int, Label] = {}
    for number, line in storage.json_lines(storage.iter_lines(output_uri), output_uri):
        where = f"{output_uri} line {number}"
        if not isinstance(line, dict):
            raise LabelingOutputError(f"{where}: expected a JSON object")
        item_id = line.get(ID_KEY)
        if item_id not in batch:
            raise LabelingOutputError(f"{where}: item {item_id!r} was not in this batch")
        if item_id in answers:
            raise LabelingOutputError(f"{where}: item {item_id} answered twice")
        if attribute not in line:
            continue  # Ground Truth lists objects it failed to label without the attribute
        meta = line.get(f"{attribute}-metadata") or {}
        try:
            value = task.line_label(line, attribute, config["ClassNames"])
        except ValueError as exc:
            raise LabelingOutputError(f"{where}: {exc}") from None
        clicks = meta.get(CLICKS_KEY)
        if clicks is not None and (isinstance(clicks, bool) or not isinstance(clicks, int) or clicks < 0):
            raise LabelingOutputError(f"{where}: {CLICKS_KEY} must be a count of clicks, got {str(clicks)[:40]!r}")
        answers[item_id] = Label(
            class_id=value,
            confidence=float(meta.get("confidence", 1.0)),
            human=True,
            job_name=str(meta.get("job-name", state["HumanBatch"]["LabelingJobName"])),
            created=str(meta.get("creation-date", creation_date())),
            iteration=state["Iteration"],
            clicks=clicks,
        )
    splits = settings.validation.assign_splits(settings, state, answers, batch)
    new_uri = layout.ledger_uri(settings.output_uri, state["Iteration"], "human")
    remaining = rewrite_ledger(state["LedgerUri"], new_uri, answers, splits)["remaining"]
    counted = [a.clicks for a in answers.values() if a.clicks is not None]
    clicks = {}
    if counted or state.get("HumanClicks") is not None:
        clicks = {"HumanClicks": (state.get("HumanClicks") or 0) + sum(counted), "HumanClicksThisIteration": sum(counted)}
    return LoopState.model_validate({
        **state,
        **clicks,
        "LedgerUri": new_uri,
        "HumanLabeled": state["HumanLabeled"] + len(answers),
        "HumanLabeledThisIteration": len(answers),
        "HumanAdjusted": (state.get("HumanAdjusted") or 0) + len(guessed.intersection(answers)),
        "HumanFailed": (state.get("HumanFailed") or 0) + len(batch) - len(answers),
        "HumanFailedThisIteration": len(batch) - len(answers),
        "Remaining": remaining,
        "HumanBatch": {"Count": 0},
    }).dump()
