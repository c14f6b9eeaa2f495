"""End to end: the real ASL labels masks. scikit-learn's digits, painted on cluttered canvases by
`labelloop prepare fashion-mnist-segmentation` (its source swapped for them), are painted again by
simulated annotators answering from the preparer's Ground Truth output manifest with the click
tool (each object's extreme points, then corrective clicks, on the image); the U-Net trains and
serves in subprocesses. A paid mask must come out as it was made, in Ground Truth's format, its
clicks counted in the run's cost, and a mask the model labels must be certified on its mean IoU."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelloop.datasets.fashion_mnist_segmentation import prepare_fashion_mnist_segmentation
from labelloop.evaluation import evaluate
from labelloop.local.engine import LocalEngine
from labelloop.local.workforce import SimulatedWorkforce
from labelloop.tasks import get
from labelloop.tasks.semantic_segmentation.people import STOP_IOU
from labelloop.tasks.semantic_segmentation import color_map, decode_mask, hex_colors, mask_value
from labelloop.truth import read_truth

CANVASES = 60
ATTRIBUTE = "digits-ref"  # Ground Truth's rule: a mask's attribute ends in -ref
JOB = "masks-e2e"
TARGET = 0.7  # the task's default mean IoU, Ground Truth's


@pytest.fixture(scope="module")
def masks_run(tmp_path_factory, digits_as_fashion_mnist):
    data = prepare_fashion_mnist_segmentation(tmp_path_factory.mktemp("canvases"), source=digits_as_fashion_mnist,
                                              limit=CANVASES, seed=0)
    truth = read_truth(data.truth)
    workforce = SimulatedWorkforce(truth.labels, seed=0)
    out = tmp_path_factory.mktemp("run")
    result = LocalEngine(out / "work", workforce).run({
        "ManifestUri": str(data.manifest), "OutputUri": str(out), "JobName": JOB,
        "TaskType": "semantic-segmentation", "LabelAttributeName": ATTRIBUTE,
        "LabelCategoryConfigUri": str(data.label_config), "HumanBatchSize": 20, "MaxIterations": 2,
        "ValidationPolicy": "ground-truth", "ValidationFraction": 0.4, "Seed": 0,
    }, name="masks")
    lines = [json.loads(line) for line in Path(out / "output" / "output.manifest").read_text().splitlines()]
    classes = [c["label"] for c in json.loads(data.label_config.read_text())["labels"]]
    return result, workforce, truth, lines, classes, data, out


def _rgb(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _painted(mask: np.ndarray, n_classes: int) -> np.ndarray:
    """A class map painted in the internal-color-map's colours, as the annotator's answer would be."""
    lut = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in hex_colors(n_classes)], np.uint8)
    return lut[mask]


def test_the_loop_runs_masks_through_the_real_state_machine(masks_run):
    result, workforce, _, lines, _, data, _ = masks_run
    assert result.status == "SUCCEEDED", f"{result.error}: {result.cause}"
    inputs = [json.loads(line)["source-ref"] for line in data.manifest.read_text().splitlines()]
    assert sorted(line["source-ref"] for line in lines) == sorted(inputs), "every image exactly once"
    human = [line for line in lines if line.get(f"{ATTRIBUTE}-metadata", {}).get("human-annotated") == "yes"]
    assert len(human) == workforce.answered == result.summary["HumanLabeled"] >= 40
    assert result.summary["HumanLabeled"] + result.summary["AutoLabeled"] + result.summary["Unlabeled"] == CANVASES


def test_each_iteration_trains_on_from_the_model_before_it(masks_run, training_logs):
    logs = training_logs(masks_run[-1] / "work")
    assert sorted(logs) == ["001-train", "002-train"], sorted(logs)
    assert "continuing from the previous model" not in logs["001-train"]
    assert "continuing from the previous model (trained on" in logs["002-train"]


def test_people_masks_are_what_they_painted_in_ground_truths_format(masks_run):
    _, _, truth, lines, classes, _, out = masks_run
    answers: dict[str, str] = {}
    for responses in out.rglob("worker-response/responses.jsonl"):
        for response in map(json.loads, responses.read_text().splitlines()):
            assert response["key"] not in answers, "nobody is asked twice to paint one image"
            (answers[response["key"]],) = response["answers"]  # one worker an image
    qualities = []
    human = [line for line in lines if line.get(f"{ATTRIBUTE}-metadata", {}).get("human-annotated") == "yes"]
    assert sorted(answers) == sorted(line["source-ref"] for line in human), "every paid mask is in the output"
    colours = {entry["hex-color"] for entry in color_map(classes).values()}
    for line in human:
        meta, ref = line[f"{ATTRIBUTE}-metadata"], Path(line[ATTRIBUTE])
        assert meta["type"] == "groundtruth/semantic-segmentation"
        assert meta["job-name"].startswith(f"labeling-job/{JOB}")
        assert {k: {"class-name": v["class-name"], "hex-color": v["hex-color"]}
                for k, v in meta["internal-color-map"].items()} == color_map(classes)
        assert ref.is_file() and (out / "output") in ref.parents, "the mask PNG lies beside the output manifest"
        painted = _rgb(str(ref))
        assert {"#%02x%02x%02x" % tuple(c) for c in np.unique(painted.reshape(-1, 3), axis=0)} <= colours
        answer = decode_mask(answers[line["source-ref"]], len(classes))
        assert np.array_equal(painted, _painted(answer, len(classes))), "a paid mask is kept as painted"
        true_mask = truth.labels[line["source-ref"]]
        qualities.append(get("semantic-segmentation").quality(mask_value(answer), get("semantic-segmentation").truth_value(
            true_mask, classes)))
    # Clicked, not painted: near the truth, where each object's clicking stopped (IoU 0.85 or five corrections).
    assert np.mean(qualities) >= 0.75 and np.median(qualities) >= STOP_IOU - 0.05, sorted(qualities)[:5]


def test_the_clicks_people_spent_are_the_runs_cost_in_clicks(masks_run):
    result, _, _, lines, _, _, out = masks_run
    spent = [sum(r["clicks"]) for responses in out.rglob("worker-response/responses.jsonl")
             for r in map(json.loads, responses.read_text().splitlines())]
    human = result.summary["HumanLabeled"]
    assert len(spent) == human and result.summary["HumanClicks"] == sum(spent)
    assert all(n >= 4 for n in spent), "every canvas has an object: its four extreme points at least"
    rows = [json.loads(p.read_text()) for p in sorted(out.rglob("metrics.json"))]
    assert rows and rows[-1]["HumanClicks"] == sum(spent)
    assert sum(r["HumanClicksThisIteration"] or 0 for r in rows) == sum(spent)  # per iteration, adding up


def test_every_auto_label_is_certified_on_its_mean_iou_or_the_reason_is_recorded(masks_run):
    result, _, truth, lines, classes, _, out = masks_run
    auto = [line for line in lines if line.get(f"{ATTRIBUTE}-metadata", {}).get("human-annotated") == "no"]
    for line in auto:
        meta = line[f"{ATTRIBUTE}-metadata"]
        assert 0.0 <= meta["confidence"] <= 1.0
        cal = meta["labelloop-calibration"]
        assert cal["mean-iou-lower-bound"] >= TARGET and cal["support"] >= 1
        assert Path(line[ATTRIBUTE]).is_file()
    ev = evaluate((json.dumps(line) for line in lines), ATTRIBUTE, truth.labels, get("semantic-segmentation"), classes)
    assert 0.75 <= ev.human_accuracy < 1.0  # the click tool's masks, not the truth
    if auto:
        assert ev.auto_accuracy is not None and 0.0 <= ev.auto_accuracy <= 1.0
        return
    # Nothing certified: each gate's calibration says why (too few validation masks to vouch for
    # any threshold, or masks too far from the truth), and every image left says the loop stopped.
    gates = sorted(out.rglob("calibration.json"))
    assert len(gates) == 2
    for gate in map(json.loads, (g.read_text() for g in gates)):
        assert gate["Threshold"] is None and gate["LowerBound"] is None
        assert gate["WorkingTarget"] == TARGET
        assert gate["ValidationCount"] < gate["MinSupport"] or gate["ValidationAccuracy"] < TARGET, gate
    left = [line for line in lines if "failure-reason" in line[f"{ATTRIBUTE}-metadata"]]
    assert len(left) == result.summary["Unlabeled"] > 0
    assert all(line[f"{ATTRIBUTE}-metadata"]["failure-reason"] == "not labeled: the loop stopped (max-iterations)"
               for line in left)
    assert result.summary["StopReason"] == "max-iterations"
