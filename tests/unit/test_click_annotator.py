"""Simulated annotators of segmentation runs that click: each true object's four extreme points,
then corrective clicks until it is good enough, the clicks counted; and the local workforce that
hands them the item's image and writes their clicks where the merge step counts them."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from labelloop import tasks
from labelloop.local.workforce import CLICKS_KEY, SimulatedWorkforce, WorkforceError
from labelloop.tasks.semantic_segmentation.clicks import iou
from labelloop.tasks.semantic_segmentation.people import STOP_IOU, click_mask, true_objects
from labelloop.tasks.semantic_segmentation import decode_mask, mask_value

TASK = tasks.get("semantic-segmentation")
CLASSES = ["disc", "bar"]
H, W = 80, 100


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(grey image, true class map): two bright discs of class 1 apart, a mid-grey bar of class 2,
    on dark noise: objects the proposer finds easily."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    true = np.zeros((H, W), np.uint8)
    true[(yy - 25) ** 2 + (xx - 25) ** 2 <= 14 ** 2] = 1
    true[(yy - 55) ** 2 + (xx - 75) ** 2 <= 10 ** 2] = 1
    true[55:70, 10:45] = 2
    image = rng.normal(30, 6, (H, W))
    image[true == 1] = rng.normal(200, 10, (true == 1).sum())
    image[true == 2] = rng.normal(120, 8, (true == 2).sum())
    return np.clip(image, 0, 255).astype(np.uint8), true


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def test_each_classs_connected_regions_are_the_objects_largest_first():
    _, true = scene()
    found = true_objects(true)
    assert [c for c, _ in found] == [1, 2, 1]  # the disc of 14 px radius, the bar, the small disc
    assert [int(m.sum()) for _, m in found] == sorted((int(m.sum()) for _, m in found), reverse=True)
    assert np.array_equal(sum(m.astype(int) * c for c, m in found), true)  # the objects tile the truth


def test_easy_objects_are_clicked_to_the_stop_level_with_at_least_four_clicks_each():
    image, true = scene()
    mask, clicks = click_mask(image, true, 1.0, np.random.default_rng(0))
    for class_id in (1, 2):
        assert iou(mask == class_id, true == class_id) >= STOP_IOU
    assert 3 * 4 <= clicks <= 3 * (4 + 5)  # four extreme points an object, at most five corrections
    assert TASK.quality(mask_value(mask), mask_value(true)) >= STOP_IOU
    again, clicks_again = click_mask(image, true, 1.0, np.random.default_rng(7))
    assert np.array_equal(mask, again) and clicks == clicks_again  # a person who never slips: no chance in it


def test_a_slipping_person_is_seeded_and_no_better():
    image, true = scene()
    answers = [click_mask(image, true, 0.5, np.random.default_rng(s)) for s in (3, 3, 4)]
    assert np.array_equal(answers[0][0], answers[1][0]) and answers[0][1] == answers[1][1]  # same seed, same answer
    steady = TASK.quality(mask_value(click_mask(image, true, 1.0, np.random.default_rng(0))[0]), mask_value(true))
    for mask, clicks in answers:
        assert clicks >= 12
        assert TASK.quality(mask_value(mask), mask_value(true)) <= steady + 0.02


def test_an_empty_image_costs_nothing_and_a_mask_of_another_size_is_refused():
    image, true = scene()
    mask, clicks = click_mask(image, np.zeros_like(true), 1.0, np.random.default_rng(0))
    assert clicks == 0 and not mask.any()
    with pytest.raises(ValueError, match="the image is 100 x 80 pixels, its true mask 100 x 40"):
        click_mask(image, true[:40], 1.0, np.random.default_rng(0))


def _job(tmp_path, truth: dict, workers: int = 1) -> dict:
    manifest = [{"source-ref": key, "labelloop-id": n} for n, key in enumerate(truth)]
    (tmp_path / "in.manifest").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    (tmp_path / "labels.json").write_text(json.dumps({"document-version": "2018-11-28",
                                                      "labels": [{"label": c} for c in CLASSES]}))
    pre, acs = TASK.built_in_lambda_arns("us-east-1")
    return {
        "LabelingJobName": "j-001-label", "LabelAttributeName": "shapes-ref",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": str(tmp_path / "in.manifest")}}},
        "OutputConfig": {"S3OutputPath": str(tmp_path / "labeling")},
        "LabelCategoryConfigS3Uri": str(tmp_path / "labels.json"),
        "HumanTaskConfig": {"PreHumanTaskLambdaArn": pre, "NumberOfHumanWorkersPerDataObject": workers,
                            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": acs}},
    }


def test_the_workforce_clicks_on_each_items_image_by_default_and_writes_the_clicks(tmp_path):
    truth = {}
    for seed in range(2):
        image, true = scene(seed)
        (tmp_path / f"{seed}.png").write_bytes(png(image))
        truth[str(tmp_path / f"{seed}.png")] = mask_value(true if seed == 0 else np.zeros_like(true))
    params = _job(tmp_path, truth, workers=2)
    describe = SimulatedWorkforce(truth, seed=0).run_labeling_job(params)
    out = [json.loads(x) for x in open(describe["LabelingJobOutput"]["OutputDatasetS3Uri"])]
    clicks = [line["shapes-ref-metadata"].get(CLICKS_KEY) for line in out]
    assert clicks[0] >= 2 * 12 and clicks[1] == 0  # both workers' clicks; nothing to click on an empty image
    first = decode_mask(TASK.line_label(out[0], "shapes-ref", CLASSES))
    assert TASK.quality(mask_value(first), truth[out[0]["source-ref"]]) >= STOP_IOU
    responses = [json.loads(x) for x in (tmp_path / "labeling" / "j-001-label" / "annotations" / "worker-response"
                                         / "responses.jsonl").read_text().splitlines()]
    assert sum(responses[0]["clicks"]) == clicks[0] and len(responses[0]["clicks"]) == 2

    painted = SimulatedWorkforce(truth, seed=0, annotator="painter").run_labeling_job({**params, "LabelingJobName": "j-2"})
    out = [json.loads(x) for x in open(painted["LabelingJobOutput"]["OutputDatasetS3Uri"])]
    assert all(CLICKS_KEY not in line["shapes-ref-metadata"] for line in out)  # a painter's work is not clicks
    assert np.array_equal(decode_mask(TASK.line_label(out[0], "shapes-ref", CLASSES)), decode_mask(truth[out[0]["source-ref"]]))
    with pytest.raises(WorkforceError, match="semantic-segmentation has no simulated annotator 'brush' \\(clicks, painter\\)"):
        SimulatedWorkforce(truth, annotator="brush").run_labeling_job({**params, "LabelingJobName": "j-3"})


def test_labelloop_run_refuses_a_simulated_annotator_the_task_type_lacks_before_the_run(tmp_path):
    import argparse

    from labelloop.cli import _workforce
    from labelloop.config import ConfigurationError

    image = tmp_path / "0.png"
    image.write_bytes(png(scene()[0]))
    (tmp_path / "truth.jsonl").write_text(json.dumps({"key": str(image), "label": "disc"}) + "\n")
    (tmp_path / "in.manifest").write_text(json.dumps({"source-ref": str(image)}) + "\n")
    run = {"ManifestUri": str(tmp_path / "in.manifest"), "LabelCategories": CLASSES}
    args = argparse.Namespace(truth=str(tmp_path / "truth.jsonl"), workforce="simulated", task_type="image-classification",
                              simulated_annotator="painter", annotator_accuracy=1.0, seed=0)
    with pytest.raises(ConfigurationError, match="painter: image-classification has one kind of simulated annotator only"):
        _workforce(args, run)
    args.task_type, args.simulated_annotator = "semantic-segmentation", "brush"
    with pytest.raises(ConfigurationError, match="brush: semantic-segmentation has clicks, painter"):
        _workforce(args, run)
    args.task_type, args.simulated_annotator = "image-classification", None
    assert _workforce(args, run)[0].annotator is None  # the task type's default
