"""Resume after a crash, and one execution per output location (local paths, steps called directly)."""

import json
import os
import subprocess
import sys

import pytest

from labelloop import locks, steps
from labelloop.config import ConfigurationError

DEPLOYMENT = {"Algorithms": {"text-classification": {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/src.tar.gz"}}}


@pytest.fixture()
def job(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"text {i}"}) + "\n" for i in range(50)))
    return {
        "ManifestUri": str(manifest),
        "OutputUri": str(tmp_path / "out"),
        "JobName": "resume-test",
        "TaskType": "text-classification",
        "LabelAttributeName": "label",
        "LabelCategories": ["a", "b"],
        "HumanBatchSize": 10,
    }


def boot(job, name):
    return steps.bootstrap({"Input": job, "ExecutionName": name, "Deployment": DEPLOYMENT})


def answer_batch(state, drop_last=False):
    """Write what a finished labeling job writes for the batch."""
    batch = state["HumanBatch"]
    lines = [json.loads(l) for l in open(batch["ManifestUri"])]
    if drop_last:
        lines = lines[:-1]
    out = os.path.join(batch["OutputUri"], batch["LabelingJobName"], "manifests", "output", "output.manifest")
    os.makedirs(os.path.dirname(out))
    with open(out, "w") as f:
        for line in lines:
            f.write(json.dumps({**line, "label": 1, "label-metadata": {"class-name": "b", "human-annotated": "yes"}}) + "\n")
    return out, {l["labelloop-id"] for l in lines}


def test_crash_after_the_labeling_job_keeps_its_answers_and_trains_on_them_first(job):
    first = boot(job, "run-1")
    state = steps.sample_for_humans(first)
    _, answered_ids = answer_batch(state)
    # The process dies here, before MergeHumanLabels. The same command runs again:
    second = boot(job, "run-2")
    resumed = second["state"]
    assert resumed["Resumed"] and resumed["HumanLabeled"] == 10 and resumed["Remaining"] == 40
    # It goes on as the first run would have: a model trained on those answers, then its gate,
    # in the same iteration; nobody is asked for more labels before that.
    assert resumed["Iteration"] == 1 and resumed["RetrainFirst"] and resumed["HumanLabeledThisIteration"] == 10
    assert steps.sample_for_humans(second) == resumed
    ledger = [json.loads(l) for l in open(resumed["LedgerUri"])]
    assert {r["id"] for r in ledger if r["label"]} == answered_ids


def answered_and_merged(job):
    """The first batch answered and merged; returns the merged state."""
    first = boot(job, "run-1")
    state = steps.sample_for_humans(first)
    out, _ = answer_batch(state)
    return steps.merge_human_labels({**first, "state": state, "labeling": {"OutputManifestUri": out}})


def test_crash_after_the_merge_trains_on_the_batch_before_asking_for_more(job):
    merged = answered_and_merged(job)
    # The process dies here, before the model of iteration 1 is trained. The same command runs again:
    resumed = boot(job, "run-2")["state"]
    assert resumed["Iteration"] == 1 and resumed["RetrainFirst"]
    assert resumed["LedgerUri"] == merged["LedgerUri"] and resumed["HumanLabeledThisIteration"] == 10
    assert (resumed["HumanLabeled"], resumed["Remaining"]) == (10, 40)


def test_a_merge_that_labeled_everything_goes_on_to_the_export(job, tmp_path):
    manifest = tmp_path / "small.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"text {i}"}) + "\n" for i in range(10)))
    small = {**job, "ManifestUri": str(manifest), "OutputUri": str(tmp_path / "small-out")}
    answered_and_merged(small)
    resumed = boot(small, "run-2")["state"]
    assert resumed["Remaining"] == 0 and not resumed["RetrainFirst"], "nothing left to gate: no training"


def test_crash_before_the_labeling_job_resends_the_same_batch(job):
    first = boot(job, "run-1")
    state = steps.sample_for_humans(first)
    sent = open(state["HumanBatch"]["ManifestUri"]).read()
    second = boot(job, "run-2")
    again = steps.sample_for_humans(second)
    assert again["HumanBatch"]["ManifestUri"] == state["HumanBatch"]["ManifestUri"]
    assert open(again["HumanBatch"]["ManifestUri"]).read() == sent
    assert again["HumanBatch"]["LabelingJobName"] != state["HumanBatch"]["LabelingJobName"]  # SageMaker names are unique


def test_a_different_dataset_cannot_reuse_the_output_location(job, tmp_path):
    boot(job, "run-1")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"source": "x"}) + "\n")
    with pytest.raises(ConfigurationError, match="holds a run with ManifestUri"):
        boot({**job, "ManifestUri": str(other)}, "run-2")


def test_second_live_execution_is_refused(job, tmp_path):
    lock = os.path.join(job["OutputUri"], "config", "lock.json")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        locks.acquire(lock, "someone-else")
        data = json.load(open(lock))
        data["Pid"] = holder.pid  # held by another live process on this machine
        json.dump(data, open(lock, "w"))
        with pytest.raises(locks.RunInProgressError, match="'someone-else' .* is using this output location"):
            boot(job, "run-2")
    finally:
        holder.kill()
        holder.wait()
    # Its process is gone: the lock is stale and the next execution takes over.
    assert boot(job, "run-3")["state"]["Total"] == 50


def test_export_releases_the_lock(job):
    first = boot(job, "run-1")
    steps.export_output({**first, "ExecutionName": "run-1"})
    assert not os.path.exists(os.path.join(job["OutputUri"], "config", "lock.json"))
