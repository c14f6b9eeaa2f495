"""ExportOutput: the Ground Truth output manifest (every input item once) and the run's summary."""

from __future__ import annotations

from typing import Any

from labelloop import layout, ledger, locks, storage, tasks
from labelloop.config import JobSettings
from labelloop.contracts import Summary


def export_output(event: dict[str, Any]) -> dict[str, Any]:
    """Write the Ground Truth output manifest (every input item once) and the run's summary."""
    config, state = event["config"], event["state"]
    settings = JobSettings.parse(config["Settings"])
    task = tasks.get(settings.task_type)
    out = settings.output_uri
    error = event.get("error")
    if error:  # called from the failure path: the labels so far, and why the loop could not go on
        reason = f"failed: {error.get('Error')}"
    else:
        reason = state.get("StopReason") or ("all-labeled" if state["Remaining"] == 0 else "human-budget-spent")
    counts = {"human": 0, "auto": 0, "unlabeled": 0}
    manifest_uri = layout.output_manifest_uri(out)
    with storage.LineWriter(manifest_uri) as writer:
        for record in storage.iter_json_lines(state["LedgerUri"]):
            label = ledger.label_of(record)
            counts["unlabeled" if label is None else "human" if label.human else "auto"] += 1
            writer.write(
                task.output_line(
                    record["source"],
                    label,
                    attribute=settings.label_attribute,
                    class_names=config["ClassNames"],
                    unlabeled_reason=f"not labeled: the loop stopped ({reason})",
                    job_name=settings.job_name,
                    folder=layout.output_files_uri(out),
                    name=str(record["id"]),
                )
            )
    final = _final_human_batch(settings, state, counts["auto"], reason)
    summary = Summary.model_validate({
        "OutputManifestUri": manifest_uri,
        "RejectedManifestUri": layout.rejected_uri(out),
        "Total": state["Total"],
        "Rejected": state.get("Rejected", 0),
        "HumanLabeled": counts["human"],
        "HumanLabeledByThisJob": state["HumanLabeled"],
        "AutoLabeled": counts["auto"],
        "Unlabeled": counts["unlabeled"],
        "Iterations": state["Iteration"] - (0 if final else 1),
        "HumanCost": settings.human_cost(state["HumanLabeled"], state.get("HumanAdjusted") or 0),
        "HumanAdjusted": state.get("HumanAdjusted") or 0,
        "HumanClicks": state.get("HumanClicks"),
        "StopReason": reason,
        "Error": error,
        "FinalModelArtifacts": state.get("ModelArtifacts"),
        "HumanFailed": state.get("HumanFailed") or 0,
        "FinalHumanBatch": final,
    }).dump()
    storage.write_json(layout.summary_uri(out), summary)
    locks.release(layout.lock_uri(out), event.get("ExecutionName"))
    if error:
        # The Fail state's cause: the failed step's error name and cause, and where the labels are.
        summary["Cause"] = f"{error.get('Error')}: {error.get('Cause')} (labels so far: {manifest_uri})"
    return summary


def _final_human_batch(settings: JobSettings, state: dict[str, Any], auto: int, reason: str) -> dict[str, Any] | None:
    """The metrics row of a human batch merged after the last gate, written as its iteration's
    metrics.json; None when the job ended on a gate.

    The loop ends on a merge when people labeled everything left (or a later step failed): no
    gate ran after it, so without this row the iteration table would stop one batch short of the
    summary.
    """
    if not (state.get("HumanLabeledThisIteration") or state.get("HumanFailedThisIteration")):
        return None
    metrics = {
        "Iteration": state["Iteration"],
        "HumanLabeled": state["HumanLabeled"],
        "HumanLabeledThisIteration": state.get("HumanLabeledThisIteration") or 0,
        "HumanFailed": state.get("HumanFailed") or 0,
        "HumanFailedThisIteration": state.get("HumanFailedThisIteration") or 0,
        "HumanAdjusted": state.get("HumanAdjusted") or 0,
        "HumanClicks": state.get("HumanClicks"),
        "HumanClicksThisIteration": state.get("HumanClicksThisIteration"),
        "HumanCost": settings.human_cost(state["HumanLabeled"], state.get("HumanAdjusted") or 0),
        "AutoLabeled": auto,
        "AutoLabeledThisIteration": 0,
        "Remaining": state["Remaining"],
        "Threshold": None,
        "ValidationAccuracy": None,
        "NextHumanBatch": 0,
        "FinalHumanBatch": True,  # no model was trained or gated on this batch
        "StopReason": reason,
    }
    storage.write_json(layout.metrics_uri(settings.output_uri, state["Iteration"]), metrics)
    return metrics
