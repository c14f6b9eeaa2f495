"""A box job's gate auto-labels exactly the images whose confidence reaches the calibrated
threshold, and nothing below it (steps called directly, local paths, a detector's answers
written by hand)."""

import json
from pathlib import Path

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


def test_the_gate_auto_labels_the_images_at_or_above_the_threshold_and_no_others(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    lines = []
    for i in range(400):
        Image.new("L", (32, 32), 0).save(images / f"{i}.png")
        lines.append(json.dumps({"source-ref": str(images / f"{i}.png")}) + "\n")
    (tmp_path / "manifest.jsonl").write_text("".join(lines))
    job = {
        "ManifestUri": str(tmp_path / "manifest.jsonl"), "OutputUri": str(tmp_path / "out"), "JobName": "boxes-gate",
        "TaskType": "object-detection", "LabelAttributeName": "objects", "LabelCategories": ["car", "person"],
        "HumanBatchSize": 200, "ValidationPolicy": "ground-truth", "ValidationFraction": 0.75,
        "TargetAccuracy": 0.6, "ConfidenceLevel": 0.8, "Seed": 0,
    }
    boot = steps.bootstrap({"Input": job, "ExecutionName": "b1", "Deployment": DEPLOYMENT})
    config, state = boot["config"], steps.sample_for_humans(boot)

    # People box the true object on every image.
    state = humans_answer(config, state, {"objects": {"image_size": SIZE, "annotations": [TRUE_BOX]}})
    after = model_judges(config, state, output=detector)
    # Every right box scores 0.7, every wrong one 0.5: the bound stops at the right ones.
    assert after["LastMetrics"]["Threshold"] == 0.7 and after["LastMetrics"]["LowerBound"] >= 0.6

    records = [json.loads(l) for l in open(after["LedgerUri"])]
    auto = {r["id"] for r in records if r["label"] and not r["label"]["human"]}
    base = Path(job["OutputUri"]) / "iterations" / "001"
    unlabeled = {int(json.loads(l)["labelloop-id"]) for l in open(base / "transform-input/unlabeled/unlabeled.manifest")}
    assert auto == {i for i in unlabeled if i % 2 == 0}, "the 0.5-scored (wrong) images must not be auto-labeled"
    assert after["AutoLabeled"] == len(auto) > 0
