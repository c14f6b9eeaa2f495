"""Bounding-box labels: Ground Truth's format in and out, IoU as Ground Truth scores it, workers consolidated."""

import numpy as np
import pytest

from labelloop.manifest import ManifestError
from labelloop.tasks.object_detection import ObjectDetection, consolidate_boxes, image_iou, iou_matrix

CLASSES = ["car", "pedestrian", "sign"]
TASK = ObjectDetection()


def box(c, left, top, w, h, **extra):
    return {"class_id": c, "left": left, "top": top, "width": w, "height": h, **extra}


def label(*annotations, width=100, height=80):
    return {"image_size": [{"width": width, "height": height, "depth": 3}], "annotations": list(annotations)}


def test_iou_of_boxes():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=float)
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5]], dtype=float)
    assert iou_matrix(a, b)[0, 0] == pytest.approx(50 / 150)
    assert iou_matrix(a, b)[0, 1] == 0.0


def test_image_iou_counts_missed_and_extra_boxes_as_zero_per_class_then_averages_classes():
    truth = [box(0, 0, 0, 10, 10), box(0, 50, 50, 10, 10), box(1, 20, 20, 10, 10)]
    perfect = image_iou(truth, truth)
    assert perfect == 1.0
    # car: one exact match and one missed box -> (1 + 0) / 2; pedestrian exact -> 1; image -> 0.75
    assert image_iou([truth[0], truth[2]], truth) == pytest.approx(0.75)
    # an extra sign nobody drew adds a class scored 0: (0.5 + 1 + 0) / 3
    assert image_iou([truth[0], truth[2], box(2, 70, 10, 5, 5)], truth) == pytest.approx(0.5)
    # the wrong class for a well-placed box scores 0 for both classes
    assert image_iou([box(1, 0, 0, 10, 10)], [box(0, 0, 0, 10, 10)]) == 0.0
    assert image_iou([], []) == 1.0  # "no objects" agreed
    assert image_iou([], truth) == 0.0


def test_image_iou_matches_the_most_confident_prediction_first():
    truth = [box(0, 0, 0, 10, 10)]
    good, poor = box(0, 0, 0, 10, 10, confidence=0.9), box(0, 2, 0, 10, 10, confidence=0.4)
    # the confident exact box takes the truth; the other is an unmatched prediction: (1 + 0) / 2
    assert image_iou([poor, good], truth) == pytest.approx(0.5)


def test_ground_truth_values_are_read_checked_and_written_back():
    raw = label(box(0, 10, 5, 20.5, 30), box(2, 60, 40, 10, 10))
    value = TASK.read_value(raw, CLASSES)
    assert TASK.write_value(value, CLASSES) == raw
    meta = TASK.label_metadata(value, CLASSES)
    assert meta == {"objects": [{"confidence": 1.0}, {"confidence": 1.0}], "class-map": {"0": "car", "2": "sign"}}
    assert TASK.read_value(label(), CLASSES)["annotations"] == []  # no objects is a valid label


@pytest.mark.parametrize("bad, message", [
    ([], "expected an object"),
    ({"annotations": []}, "image_size must be a list of one"),
    (label(box(3, 0, 0, 5, 5)), r"class_id 3 is not a class index in 0..2"),
    (label(box(0, 0, 0, 0, 5)), "width and height must be positive"),
    (label(box(0, 200, 0, 5, 5)), "lies outside the 100 x 80 image"),
    (label(box(0, "1", 0, 5, 5)), "annotation 0 left must be a finite number"),
    ({"image_size": [{"width": 0, "height": 5}], "annotations": []}, "width must be an integer"),
])
def test_bad_box_labels_say_what_is_wrong(bad, message):
    with pytest.raises(ValueError, match=message):
        TASK.read_value(bad, CLASSES)


def test_an_existing_label_under_other_category_names_is_refused():
    line = {"source-ref": "/x.png", "boxes": label(box(1, 0, 0, 5, 5)),
            "boxes-metadata": {"class-map": {"1": "truck"}, "human-annotated": "yes"}}
    with pytest.raises(ManifestError, match="line 4: .*class_id 1, 'pedestrian'.* class-map says 'truck'"):
        TASK.existing_label(line, "boxes", CLASSES, 4, "job")
    line["boxes-metadata"]["class-map"] = {"1": "pedestrian"}
    assert TASK.existing_label(line, "boxes", CLASSES, 4, "job").human


def test_output_line_is_ground_truths_format_with_object_confidences():
    from labelloop.manifest import Label

    value = TASK.read_value(label(box(0, 1, 2, 3, 4, confidence=0.8)), CLASSES)
    out = TASK.output_line({"source-ref": "/a.png"}, Label(class_id=value, confidence=0.8, human=False, job_name="j",
                                                            created="2026-11-29T00:00:00", iteration=2,
                                                            threshold=0.7, lower_bound=0.63, support=300),
                           attribute="boxes", class_names=CLASSES)
    assert out["boxes"] == label(box(0, 1, 2, 3, 4))  # the score stays out of the label
    meta = out["boxes-metadata"]
    assert meta["objects"] == [{"confidence": 0.8}] and meta["class-map"] == {"0": "car"}
    assert meta["type"] == "groundtruth/object-detection" and meta["human-annotated"] == "no"
    assert meta["labelloop-calibration"] == {"threshold": 0.7, "mean-iou-lower-bound": 0.63, "support": 300}


def test_several_workers_boxes_become_one_box_per_object_drawn_by_most():
    a = [box(0, 10, 10, 20, 20), box(1, 60, 10, 10, 30)]
    b = [box(0, 12, 10, 20, 20), box(1, 61, 11, 10, 30)]
    c = [box(0, 10, 12, 20, 20), box(2, 80, 60, 5, 5)]  # misses the pedestrian, adds a stray sign
    merged = consolidate_boxes([a, b, c], 3)
    assert [m["class_id"] for m in sorted(merged, key=lambda m: m["class_id"])] == [0, 1]  # the sign: 1 of 3 workers
    car = next(m for m in merged if m["class_id"] == 0)
    assert (car["left"], car["top"], car["confidence"]) == (pytest.approx(10.7, abs=0.1), pytest.approx(10.7, abs=0.1), 1.0)
    assert next(m for m in merged if m["class_id"] == 1)["confidence"] == pytest.approx(0.67)
    value, confidence = TASK.consolidate([label(*a), label(*b), label(*c)], 3, np.random.default_rng(0))
    assert len(value["annotations"]) == 2 and 0.8 < confidence < 0.9


def test_a_perfect_simulated_annotator_draws_the_truth_and_a_sloppy_one_misses_and_jitters():
    truth = TASK.read_value(label(*[box(i % 3, 5 * i, 5 * i, 12, 12) for i in range(8)]), CLASSES)
    rng = np.random.default_rng(0)
    assert TASK.simulated_answer(truth, CLASSES, 1.0, rng)["annotations"] == TASK.write_value(truth, CLASSES)["annotations"]
    sloppy = [TASK.quality(TASK.simulated_answer(truth, CLASSES, 0.8, rng), truth) for _ in range(50)]
    assert 0.3 < np.mean(sloppy) < 0.9


def test_the_detectors_boxes_above_the_cutoff_are_the_label_and_the_closest_call_is_the_confidence():
    size = [{"width": 100, "height": 80, "depth": 3}]
    out = [{"image_size": size, "boxes": [box(0, 0, 0, 10, 10, score=0.95), box(1, 50, 50, 5, 5, score=0.1)]},
           {"image_size": size, "boxes": [box(0, 0, 0, 10, 10, score=0.55), box(2, 5, 5, 9, 9, score=0.35)]},
           {"image_size": size, "boxes": [box(1, 0, 0, 10, 10, score=0.15)]},
           {"image_size": size, "boxes": []}]
    values, confidence = TASK.predicted(out)
    assert [len(v["annotations"]) for v in values] == [1, 2, 0, 0]
    # mean kept score x (1 - best dropped score)
    assert confidence.tolist() == pytest.approx([0.95 * 0.9, 0.45, 0.85, 1.0])
    # routing ranks by that confidence, whatever the strategy
    from labelloop.selection import STRATEGIES

    probs = TASK.routing_probs(values, confidence)
    for strategy in ("least-confidence", "margin", "entropy"):
        assert np.argsort(-STRATEGIES[strategy](probs)).tolist() == np.argsort(confidence).tolist(), strategy


def test_the_detectors_output_is_checked_line_by_line():
    size = [{"width": 100, "height": 80, "depth": 3}]
    ok = TASK.parse_output({"image_size": size, "boxes": [box(2, 1, 2, 3, 4, score=0.7)]}, 3)
    assert ok["boxes"] == [box(2, 1.0, 2.0, 3.0, 4.0, score=0.7)]
    for bad, message in [({"probabilities": [1.0]}, "expected SageMakerOutput.boxes"),
                         ({"image_size": size, "boxes": [box(3, 1, 2, 3, 4, score=0.7)]}, "class_id 3"),
                         ({"image_size": size, "boxes": [box(0, 1, 2, 3, 4, score=1.7)]}, r"box 0 score must be in \[0, 1\]"),
                         ({"boxes": []}, "image_size")]:
        with pytest.raises(ValueError, match=message):
            TASK.parse_output(bad, 3)


def test_box_truth_from_a_ground_truth_output_manifest_scores_and_answers(tmp_path):
    """A labeled Ground Truth box manifest is a truth file: its class-map names the boxes, the
    simulated annotator draws them, and the evaluation scores each label's IoU against them."""
    import json

    from labelloop.evaluation import evaluate
    from labelloop.truth import TruthError, check_truth, read_truth

    truth_line = {"source-ref": "/img/1.png", "cars": label(box(0, 10, 10, 20, 20), box(4, 50, 40, 10, 10)),
                  "cars-metadata": {"class-map": {"0": "car", "4": "sign"}, "type": "groundtruth/object-detection"}}
    path = tmp_path / "truth.manifest"
    path.write_text(json.dumps(truth_line) + "\n")
    truth = read_truth(path, "cars")
    assert truth.labels["/img/1.png"]["annotations"][1]["class-name"] == "sign"
    check = check_truth(truth, path, [json.dumps({"source-ref": "/img/1.png"})], CLASSES)
    assert check.covered == 1
    with pytest.raises(TruthError, match="'sign'.*not categories|not categories.*'sign'"):
        check_truth(truth, path, [json.dumps({"source-ref": "/img/1.png"})], ["car", "pedestrian"])
    value = TASK.truth_value(truth.labels["/img/1.png"], CLASSES)
    assert [a["class_id"] for a in value["annotations"]] == [0, 2]  # ids of this job's categories
    answer = TASK.simulated_answer(value, CLASSES, 1.0, np.random.default_rng(0))
    output = [{"source-ref": "/img/1.png", "cars": answer, "cars-metadata": {"human-annotated": "no"}}]
    ev = evaluate((json.dumps(o) for o in output), "cars", truth.labels, TASK, CLASSES)
    assert ev.auto == 1 and ev.auto_accuracy == pytest.approx(1.0)
    half = {**answer, "annotations": answer["annotations"][:1]}  # the sign missed: (1 + 0) / 2 classes
    ev = evaluate([json.dumps({**output[0], "cars": half})], "cars", truth.labels, TASK, CLASSES)
    assert ev.auto_accuracy == pytest.approx(0.5)
