"""End to end: the real ASL, run by the local engine, labels scikit-learn's digits.

Everything is real here: the state machine file, the handlers, the CNN trained and served in
subprocesses, the Ground Truth output layout. Only the annotators are simulated, answering from
true labels the product never reads.
"""

import json
import tarfile
from pathlib import Path

import pytest

from labelloop.datasets import load_truth
from labelloop.datasets.digits import prepare_digits
from labelloop.evaluation import evaluate
from labelloop.local.engine import LocalEngine
from labelloop.local.faults import write_undecodable_png
from labelloop.local.workforce import SimulatedWorkforce
from labelloop.manifest import item_key

GT_TYPE = "groundtruth/image-classification"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return prepare_digits(tmp_path_factory.mktemp("digits"))


def run_loop(digits, out: Path, **settings):
    truth = load_truth(digits.truth)
    workforce = SimulatedWorkforce(truth, seed=0)
    engine = LocalEngine(out / "work", workforce)
    execution_input = {
        "ManifestUri": str(digits.manifest),
        "OutputUri": str(out),
        "JobName": "digits-e2e",
        "TaskType": "image-classification",
        "LabelAttributeName": "digit",
        "LabelCategoryConfigUri": str(digits.label_config),
        "HumanBatchSize": 150,
        "Seed": 0,
        **settings,
    }
    result = engine.run(execution_input, name="e2e")
    return result, workforce, truth


def read_output(result):
    path = Path(result.summary["OutputManifestUri"])
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


@pytest.fixture(scope="module")
def full_run(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result, workforce, truth = run_loop(digits, out, MaxHumanLabeledObjectCount=1200)
    return result, workforce, truth, out


def test_execution_succeeds_and_labels_every_item_once(full_run, digits):
    result, _, _, _ = full_run
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    lines = read_output(result)
    inputs = [json.loads(l)["source-ref"] for l in digits.manifest.read_text().splitlines()]
    assert sorted(l["source-ref"] for l in lines) == sorted(inputs)
    assert len(lines) == len(inputs) == 1797
    assert result.summary["StopReason"] == "all-labeled"


def test_every_line_is_ground_truth_format(full_run, digits):
    result, _, _, _ = full_run
    classes = [c["label"] for c in json.loads(digits.label_config.read_text())["labels"]]
    for line in read_output(result):
        meta = line["digit-metadata"]
        assert isinstance(line["digit"], int) and classes[line["digit"]] == meta["class-name"]
        assert 0.0 <= meta["confidence"] <= 1.0
        assert meta["human-annotated"] in ("yes", "no")
        assert meta["type"] == GT_TYPE
        assert meta["job-name"]
        assert len(meta["creation-date"]) == 26 and meta["creation-date"][10] == "T"  # ISO 8601, microseconds
        assert "labelloop-id" not in line


def test_human_lines_match_what_the_workforce_answered_within_budget(full_run):
    result, workforce, _, _ = full_run
    human = sum(l["digit-metadata"]["human-annotated"] == "yes" for l in read_output(result))
    assert human == workforce.answered == result.summary["HumanLabeled"]
    assert human <= 1200


def test_auto_labels_are_accurate_and_carry_their_calibration(full_run):
    result, _, truth, _ = full_run
    lines = read_output(result)
    auto = [l for l in lines if l["digit-metadata"]["human-annotated"] == "no"]
    assert len(auto) > 300, "auto-labeling should pay off on digits"
    for line in auto:
        cal = line["digit-metadata"]["labelloop-calibration"]
        assert cal["accuracy-lower-bound"] >= 0.95 and cal["support"] >= 59  # start_for: 59 below 153 validation items
        if cal.get("basis") == "worst-case tail":  # below the threshold, paid for by the bound's slack
            assert cal["threshold"] is None
        else:
            assert line["digit-metadata"]["confidence"] >= round(cal["threshold"], 4) - 1e-4
    ev = evaluate((json.dumps(l) for l in lines), "digit", truth)
    assert ev.auto_accuracy >= 0.93  # target 0.95 holds with 95 % confidence; allow sampling noise


def test_artifacts_are_written_per_iteration(full_run):
    result, _, _, out = full_run
    iterations = sorted((out / "iterations").glob("0*/metrics.json"))
    assert len(iterations) == result.summary["Iterations"] >= 2
    first = json.loads(iterations[0].read_text())
    assert {"HumanLabeled", "AutoLabeled", "Remaining", "Threshold", "ValidationAccuracy"} <= set(first)
    model = Path(result.summary["FinalModelArtifacts"])
    with tarfile.open(model) as tar:  # the PyTorch inference container loads code/ from the model
        assert "code/inference.py" in tar.getnames()
    label_jobs = list((out / "labeling").glob("*/manifests/output/output.manifest"))
    assert len(label_jobs) >= result.summary["Iterations"]


def test_budget_stops_the_loop_and_leaves_items_listed_unlabeled(digits, tmp_path):
    result, workforce, _ = run_loop(digits, tmp_path, MaxHumanLabeledObjectCount=300, HumanBatchSize=150)
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    assert result.summary["StopReason"] == "human-budget-spent"
    lines = read_output(result)
    assert len(lines) == 1797
    human = [l for l in lines if l.get("digit-metadata", {}).get("human-annotated") == "yes"]
    assert len(human) == workforce.answered == 300
    unlabeled = [l for l in lines if "digit" not in l]
    assert unlabeled and all("human-budget-spent" in l["digit-metadata"]["failure-reason"] for l in unlabeled)
    assert result.summary["Unlabeled"] == len(unlabeled)


def test_failed_training_job_fails_the_execution_with_the_job_description(tmp_path):
    # "Images" that are not images: the training job fails, as it would on SageMaker.
    (tmp_path / "img").mkdir()
    lines, truth = [], {}
    for i in range(80):
        path = tmp_path / "img" / f"{i}.png"
        write_undecodable_png(path)  # passes Bootstrap's header check; training cannot decode it
        lines.append(json.dumps({"source-ref": str(path)}))
        truth[item_key({"source-ref": str(path)})] = "a" if i % 2 else "b"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    engine = LocalEngine(tmp_path / "work", SimulatedWorkforce(truth))
    result = engine.run(
        {
            "ManifestUri": str(manifest), "OutputUri": str(tmp_path / "out"), "JobName": "broken",
            "TaskType": "image-classification", "LabelAttributeName": "label",
            "LabelCategories": ["a", "b"], "HumanBatchSize": 40,
        },
        name="broken-1",
    )
    assert result.status == "FAILED"
    assert result.error == "LabelingLoopFailed"
    assert result.cause.startswith("States.TaskFailed: ")  # the training state failed as on AWS
    describe = json.loads(result.cause.removeprefix("States.TaskFailed: ").rsplit(" (labels so far:", 1)[0])
    assert describe["TrainingJobStatus"] == "Failed" and "AlgorithmError" in describe["FailureReason"]
    # The labels humans gave before the failure are kept in a partial output manifest.
    out = tmp_path / "out" / "output" / "output.manifest"
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert len(lines) == 80
    assert sum(l.get("label-metadata", {}).get("human-annotated") == "yes" for l in lines) == 40
    summary = json.loads((tmp_path / "out" / "output" / "summary.json").read_text())
    assert summary["StopReason"] == "failed: States.TaskFailed"


def test_pre_labeling_starts_from_a_given_model(full_run, digits, tmp_path):
    result, _, truth, _ = full_run
    model = result.summary["FinalModelArtifacts"]
    pre, workforce, _ = run_loop(digits, tmp_path, InitialModelArtifacts=model, HumanBatchSize=300, MaxIterations=1)
    assert pre.status == "SUCCEEDED", f"{pre.error}: {pre.cause}"
    first = json.loads((tmp_path / "iterations" / "001" / "metrics.json").read_text())
    assert first["TrainCount"] == 0  # iteration 1 judged the given model; nothing was trained
    assert first["AutoLabeledThisIteration"] > 1000  # a good model labels most items at once
    assert workforce.answered == 300  # humans labeled only the random validation sample
    lines = read_output(pre)
    ev = evaluate((json.dumps(l) for l in lines), "digit", truth)
    assert ev.auto_accuracy >= 0.93


@pytest.mark.parametrize("scope", ["cumulative", "iteration"])  # job is the default, run above
def test_other_calibration_scopes_label_every_item_once(digits, tmp_path, scope):
    result, workforce, truth = run_loop(digits, tmp_path, CalibrationScope=scope, MaxHumanLabeledObjectCount=1200)
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    lines = read_output(result)
    assert len(lines) == 1797 and len({l["source-ref"] for l in lines}) == 1797
    human = [l for l in lines if l["digit-metadata"]["human-annotated"] == "yes"]
    assert len(human) == workforce.answered == result.summary["HumanLabeled"] <= 1200
    # Human lines say what the humans said; auto-labels passed the threshold that vouches for them.
    for line in human:
        assert line["digit-metadata"]["class-name"] == truth[item_key(line)]
    auto = [l for l in lines if l["digit-metadata"]["human-annotated"] == "no"]
    # Cumulative scope's worst-case tail has no threshold: the bound's slack pays for it.
    certified = [l for l in auto if l["digit-metadata"]["labelloop-calibration"].get("basis") != "worst-case tail"]
    assert certified and all(
        l["digit-metadata"]["confidence"] >= round(l["digit-metadata"]["labelloop-calibration"]["threshold"], 4) - 1e-4
        for l in certified
    )
    ev = evaluate((json.dumps(l) for l in lines), "digit", truth)
    assert ev.auto_accuracy >= 0.93
