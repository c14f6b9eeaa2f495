"""End to end: the real ASL labels boxes. scikit-learn's digits, placed on cluttered canvases by
`labelloop prepare fashion-mnist-detection` (its source swapped for them), are boxed by simulated
annotators answering from a Ground Truth output manifest; the detector trains and serves in
subprocesses, and every auto-label must be certified on its mean IoU."""

import json
from pathlib import Path

import pytest

from labelloop.datasets.fashion_mnist_detection import prepare_fashion_mnist_detection
from labelloop.evaluation import evaluate
from labelloop.local.engine import LocalEngine
from labelloop.local.workforce import SimulatedWorkforce
from labelloop.tasks import get
from labelloop.truth import read_truth

CANVASES = 120


@pytest.fixture(scope="module")
def boxes_run(tmp_path_factory, digits_as_fashion_mnist):
    data = prepare_fashion_mnist_detection(tmp_path_factory.mktemp("canvases"), source=digits_as_fashion_mnist,
                                           limit=CANVASES, seed=0)
    truth = read_truth(data.truth)
    workforce = SimulatedWorkforce(truth.labels, seed=0)
    out = tmp_path_factory.mktemp("run")
    result = LocalEngine(out / "work", workforce).run({
        "ManifestUri": str(data.manifest), "OutputUri": str(out), "JobName": "boxes-e2e",
        "TaskType": "object-detection", "LabelAttributeName": "objects",
        "LabelCategoryConfigUri": str(data.label_config), "HumanBatchSize": 40, "MaxIterations": 2,
        "ValidationPolicy": "ground-truth", "ValidationFraction": 0.4, "Seed": 0,
    }, name="boxes")
    lines = [json.loads(line) for line in Path(out / "output" / "output.manifest").read_text().splitlines()]
    classes = [c["label"] for c in json.loads(data.label_config.read_text())["labels"]]
    return result, workforce, truth, lines, classes, data, out


def test_the_loop_runs_boxes_through_the_real_state_machine(boxes_run):
    result, workforce, _, lines, _, data, _ = boxes_run
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    inputs = [json.loads(line)["source-ref"] for line in data.manifest.read_text().splitlines()]
    assert sorted(line["source-ref"] for line in lines) == sorted(inputs), "every image exactly once"
    human = [line for line in lines if line.get("objects-metadata", {}).get("human-annotated") == "yes"]
    assert len(human) == workforce.answered == result.summary["HumanLabeled"] >= 80
    assert result.summary["HumanLabeled"] + result.summary["AutoLabeled"] + result.summary["Unlabeled"] == CANVASES


def test_each_iteration_trains_on_from_the_model_before_it(boxes_run, training_logs):
    logs = training_logs(boxes_run[-1] / "work")
    assert sorted(logs) == ["001-train", "002-train"], sorted(logs)
    assert "continuing from the previous model" not in logs["001-train"]
    assert "continuing from the previous model (trained on" in logs["002-train"]
    assert "with its box head" in logs["002-train"]


def test_people_boxes_are_the_truth_in_ground_truths_format(boxes_run):
    _, _, truth, lines, classes, _, _ = boxes_run
    task = get("object-detection")
    for line in lines:
        meta = line.get("objects-metadata", {})
        if meta.get("human-annotated") != "yes":
            continue
        assert meta["type"] == "groundtruth/object-detection"
        assert set(line["objects"]) == {"image_size", "annotations"}
        assert len(meta["objects"]) == len(line["objects"]["annotations"])
        assert set(meta["class-map"].values()) <= set(classes)
        reference = task.truth_value(truth.labels[line["source-ref"]], classes)
        assert task.quality(task.read_value(line["objects"], classes), reference) == 1.0, "a paid label is kept as given"


def test_every_auto_label_is_certified_on_its_mean_iou(boxes_run):
    _, _, truth, lines, classes, _, _ = boxes_run
    auto = [line for line in lines if line.get("objects-metadata", {}).get("human-annotated") == "no"]
    for line in auto:
        cal = line["objects-metadata"]["labelloop-calibration"]
        assert cal["mean-iou-lower-bound"] >= 0.6 and cal["support"] >= 1
    ev = evaluate((json.dumps(line) for line in lines), "objects", truth.labels, get("object-detection"), classes)
    assert ev.human_accuracy == pytest.approx(1.0)
    if auto:
        assert ev.auto_accuracy is not None and 0.0 <= ev.auto_accuracy <= 1.0
