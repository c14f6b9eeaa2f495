"""A box job's gate auto-labels exactly the images whose confidence reaches the calibrated
threshold, and nothing below it (steps called directly, local paths, a detector's answers
written by hand)."""

import json
from pathlib import Path

import pytest
from PIL import Image

from labelloop import steps
from test_gate import humans_answer, model_judges

DEPLOYMENT = {"Algorithms": {"object-detection": {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/src.tar.gz"}}}
SIZE = [{"width": 32, "height": 32, "depth": 1}]
TRUE_BOX = {"class_id": 0, "left": 4, "top": 4, "width": 16, "height": 16}
WRONG_BOX = {"class_id": 1, "left": 20, "top": 20, "width": 10, "height": 10}


def detector(line: dict) -> dict:
    """Right (IoU 1) and scored 0.7 on even ids; wrong (IoU 0) and scored 0.5 on odd ones."""
    right = line["labelloop-id"] % 2 == 0
    return {"image_size": SIZE, "boxes": [{**(TRUE_BOX if right else WRONG_BOX), "score": 0.7 if right else 0.5}]}


def box_job(tmp_path, n_images: int, batch: int, **settings):
    """A box job of blank images, started, with its first batch drawn (three quarters validation)."""
    images = tmp_path / "images"
    images.mkdir()
    lines = []
    for i in range(n_images):
        Image.new("L", (32, 32), 0).save(images / f"{i}.png")
        lines.append(json.dumps({"source-ref": str(images / f"{i}.png")}) + "\n")
    (tmp_path / "manifest.jsonl").write_text("".join(lines))
    job = {
        "ManifestUri": str(tmp_path / "manifest.jsonl"), "OutputUri": str(tmp_path / "out"), "JobName": "boxes-gate",
        "TaskType": "object-detection", "LabelAttributeName": "objects", "LabelCategories": ["car", "person"],
        "HumanBatchSize": batch, "ValidationPolicy": "ground-truth", "ValidationFraction": 0.75,
        "TargetAccuracy": 0.6, "Seed": 0, **settings,
    }
    boot = steps.bootstrap({"Input": job, "ExecutionName": "b1", "Deployment": DEPLOYMENT})
    return job, boot["config"], steps.sample_for_humans(boot)


def auto_labeled(state) -> set[int]:
    return {r["id"] for r in map(json.loads, open(state["LedgerUri"])) if r["label"] and not r["label"]["human"]}


def unlabeled_ids(job) -> set[int]:
    base = Path(job["OutputUri"]) / "iterations" / "001" / "transform-input/unlabeled/unlabeled.manifest"
    return {int(json.loads(line)["labelloop-id"]) for line in open(base)}


def test_the_gate_auto_labels_the_images_at_or_above_the_threshold_and_no_others(tmp_path):
    job, config, state = box_job(tmp_path, 400, 200, ConfidenceLevel=0.8)
    # People box the true object on every image.
    state = humans_answer(config, state, {"objects": {"image_size": SIZE, "annotations": [TRUE_BOX]}})
    after = model_judges(config, state, output=detector)
    # Every right box scores 0.7, every wrong one 0.5: the bound stops at the right ones.
    assert after["LastMetrics"]["Threshold"] == 0.7 and after["LastMetrics"]["LowerBound"] >= 0.6

    auto = auto_labeled(after)
    assert auto == {i for i in unlabeled_ids(job) if i % 2 == 0}, "the 0.5-scored (wrong) images must not be auto-labeled"
    assert after["AutoLabeled"] == len(auto) > 0


def slightly_off(line: dict) -> dict:
    """On even ids the object's box three pixels off (IoU 0.684), scored 0.7; on odd ones a wrong box scored 0.5."""
    if line["labelloop-id"] % 2:
        return {"image_size": SIZE, "boxes": [{**WRONG_BOX, "score": 0.5}]}
    return {"image_size": SIZE, "boxes": [{**TRUE_BOX, "left": 7, "score": 0.7}]}


@pytest.mark.parametrize("bound,certified", [("hoeffding-bentkus", False), ("betting", True)])
def test_the_betting_bound_certifies_boxes_that_are_all_a_little_off(tmp_path, bound, certified):
    """About 150 validation images at IoU 0.684 each: Hoeffding-Bentkus allows for qualities spread
    over [0, 1] and cannot vouch for a 0.6 mean at 95 %; the betting bound sees they do not spread."""
    job, config, state = box_job(tmp_path, 600, 400, IouBound=bound)
    state = humans_answer(config, state, {"objects": {"image_size": SIZE, "annotations": [TRUE_BOX]}})
    after = model_judges(config, state, output=slightly_off)
    if not certified:
        assert after["LastMetrics"]["Threshold"] is None and not auto_labeled(after)
        return
    assert after["LastMetrics"]["Threshold"] == 0.7 and 0.6 <= after["LastMetrics"]["LowerBound"] < 0.684
    assert auto_labeled(after) == {i for i in unlabeled_ids(job) if i % 2 == 0}
