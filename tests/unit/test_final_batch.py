"""A job that ends on a human batch shows it as an iteration, and answers that fail are counted
(steps called directly, local paths)."""

import json
import os

import pytest

from labelloop import layout, steps

DEPLOYMENT = {"Algorithms": {"text-classification": {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/src.tar.gz"}}}


@pytest.fixture()
def first_batch(tmp_path):
    """A 20-item job whose first human batch holds every item."""
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"text {i}"}) + "\n" for i in range(20)))
    job = {"ManifestUri": str(manifest), "OutputUri": str(tmp_path / "out"), "JobName": "final-batch",
           "TaskType": "text-classification", "LabelAttributeName": "label", "LabelCategories": ["a", "b"],
           "HumanBatchSize": 20, "PricePerLabel": 0.5}
    boot = steps.bootstrap({"Input": job, "ExecutionName": "run-1", "Deployment": DEPLOYMENT})
    return {**boot, "state": steps.sample_for_humans(boot)}


def answer(event, unanswered: int) -> dict:
    """Ground Truth's output for the batch: the last `unanswered` items failed (no label attribute)."""
    batch = event["state"]["HumanBatch"]
    lines = [json.loads(l) for l in open(batch["ManifestUri"])]
    out = os.path.join(batch["OutputUri"], batch["LabelingJobName"], "manifests", "output", "output.manifest")
    os.makedirs(os.path.dirname(out))
    with open(out, "w") as f:
        for k, line in enumerate(lines):
            if k < len(lines) - unanswered:
                line.update({"label": 1, "label-metadata": {"class-name": "b", "human-annotated": "yes"}})
            else:
                line["label-metadata"] = {"failure-reason": "ClientError: no annotator could label this object"}
            f.write(json.dumps(line) + "\n")
    return {**event, "state": steps.merge_human_labels({**event, "labeling": {"OutputManifestUri": out}}),
            "ExecutionName": "run-1"}


def test_a_job_ending_on_a_human_batch_writes_its_row_and_counts_it(first_batch):
    event = answer(first_batch, unanswered=0)
    assert event["state"]["Remaining"] == 0  # AllLabeled? goes straight to ExportOutput: no gate after
    summary = steps.export_output(event)
    row = json.loads(open(layout.metrics_uri(event["config"]["Settings"]["OutputUri"], 1)).read())
    assert row == summary["FinalHumanBatch"]
    assert row["FinalHumanBatch"] and row["Iteration"] == summary["Iterations"] == 1
    assert (row["HumanLabeled"], row["HumanLabeledThisIteration"], row["Remaining"]) == (20, 20, 0)
    assert row["HumanCost"] == summary["HumanCost"] == 10.0 and row["StopReason"] == "all-labeled"
    assert summary["HumanFailed"] == 0


def test_answers_that_fail_are_counted_in_the_state_the_row_and_the_summary(first_batch):
    event = answer(first_batch, unanswered=3)
    state = event["state"]
    assert (state["HumanLabeled"], state["HumanFailed"], state["HumanFailedThisIteration"], state["Remaining"]) == (17, 3, 3, 3)
    summary = steps.export_output(event)  # as the loop does when it stops here
    assert summary["HumanFailed"] == 3 and summary["FinalHumanBatch"]["HumanFailedThisIteration"] == 3
    assert summary["Unlabeled"] == 3


def test_nothing_merged_since_the_last_gate_writes_no_extra_row(first_batch):
    summary = steps.export_output({**first_batch, "ExecutionName": "run-1"})  # nothing merged since
    assert "FinalHumanBatch" not in summary and summary["Iterations"] == 0
    assert not os.path.exists(layout.metrics_uri(first_batch["config"]["Settings"]["OutputUri"], 1))
