"""The semantic-segmentation task type: masks in Ground Truth's format (a painted PNG the line names,
its colours in `internal-color-map`), compact in the ledger, scored by Ground Truth's mean IoU,
voted per pixel, and answered by simulated painters from a truth manifest of masks."""

from __future__ import annotations

import base64
import io
import json

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image

from labelloop import storage, tasks
from labelloop.config import ConfigurationError, JobSettings
from labelloop.evaluation import evaluate
from labelloop.local.workforce import SimulatedWorkforce
from labelloop.manifest import Label, ManifestError
from labelloop.report import example_view
from labelloop.tasks.semantic_segmentation import decode_mask, encode_mask, hex_colors, mask_value, paint
from labelloop.truth import TruthError, check_truth, names_in, read_truth

TASK = tasks.get("semantic-segmentation")
CLASSES = ["cat", "dog", "bird"]
ATTR = "animal-ref"


def mask_of(*regions: tuple[int, slice, slice], size=(20, 30)) -> np.ndarray:
    """A class map (height x width) with each (class id, rows, cols) region painted in order."""
    mask = np.zeros(size, np.uint8)
    for class_id, rows, cols in regions:
        mask[rows, cols] = class_id
    return mask


MASK = mask_of((1, slice(2, 8), slice(3, 12)), (3, slice(10, 18), slice(15, 28)))


def human(value, confidence=1.0) -> Label:
    return Label(class_id=value, confidence=confidence, human=True, job_name="labeling-job/j",
                 created="2026-01-01T00:00:00.000000", iteration=1)


def gt_line(tmp_path, mask=MASK, colors=None, name="m.png") -> dict:
    """A line as Ground Truth writes it: the painted mask beside, named by the line."""
    (tmp_path / name).write_bytes(paint(mask, len(CLASSES)))
    return {"source-ref": "/data/x.png", ATTR: str(tmp_path / name),
            f"{ATTR}-metadata": {"internal-color-map": colors or TASK.label_metadata(None, CLASSES)["internal-color-map"],
                                 "type": "groundtruth/semantic-segmentation", "human-annotated": "yes",
                                 "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/old"}}


# ---------------------------------------------------------------- formats


def test_an_output_line_is_ground_truths_a_painted_png_beside_the_manifest_and_reads_back(tmp_path):
    auto = Label(class_id=mask_value(MASK), confidence=0.8123456, human=False, job_name="labelloop/j-auto",
                 created="2026-01-02T00:00:00.000000", iteration=2, threshold=0.6, lower_bound=0.71, support=80)
    line = TASK.output_line({"source-ref": "/data/x.png", "labelloop-id": 4}, auto, attribute=ATTR, class_names=CLASSES,
                            folder=str(tmp_path / "annotations"), name="4")
    assert line[ATTR] == str(tmp_path / "annotations" / "4.png") and "labelloop-id" not in line
    meta = line[f"{ATTR}-metadata"]
    assert meta["internal-color-map"]["0"] == {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.8123}
    assert [meta["internal-color-map"][str(i + 1)]["class-name"] for i in range(3)] == CLASSES
    assert meta["type"] == "groundtruth/semantic-segmentation" and meta["human-annotated"] == "no"
    assert meta["confidence"] == 0.8123 and meta["job-name"] == "labelloop/j-auto" and meta["creation-date"]
    assert meta["labelloop-calibration"] == {"threshold": 0.6, "mean-iou-lower-bound": 0.71, "support": 80}
    painted = np.asarray(Image.open(line[ATTR]))  # an RGB PNG in the map's colours, as Ground Truth paints
    assert painted.shape == (20, 30, 3)
    assert "#%02x%02x%02x" % tuple(painted[3, 4]) == meta["internal-color-map"]["1"]["hex-color"]
    assert "#%02x%02x%02x" % tuple(painted[0, 0]) == "#ffffff"
    assert np.array_equal(decode_mask(TASK.line_label(line, ATTR, CLASSES)), MASK)


def test_on_s3_the_mask_is_an_object_beside_the_output_manifest(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="seg-bucket")
        line = TASK.output_line({"source-ref": "s3://seg-bucket/x.png"}, human(mask_value(MASK)), attribute=ATTR,
                                class_names=CLASSES, folder="s3://seg-bucket/out/output/annotations", name="7")
        assert line[ATTR] == "s3://seg-bucket/out/output/annotations/7.png"
        assert storage.read_bytes(line[ATTR])[:8] == b"\x89PNG\r\n\x1a\n"
        assert np.array_equal(decode_mask(TASK.line_label(line, ATTR, CLASSES)), MASK)


def test_colours_are_read_by_class_name_so_another_jobs_order_is_mapped_not_renumbered(tmp_path):
    other = ["bird", "cat"]  # another job: bird painted in its colour 1, cat in its colour 2
    mask = mask_of((1, slice(0, 5), slice(0, 5)), (2, slice(10, 15), slice(10, 15)))
    (tmp_path / "m.png").write_bytes(paint(mask, len(other)))
    colors = TASK.label_metadata(None, other)["internal-color-map"]
    line = {ATTR: str(tmp_path / "m.png"), f"{ATTR}-metadata": {"internal-color-map": colors}}
    read = decode_mask(TASK.line_label(line, ATTR, CLASSES))
    assert read[0, 0] == 3 and read[12, 12] == 1 and read[19, 29] == 0  # bird is 3 here, cat 1


def test_colour_maps_have_distinct_colours_never_the_backgrounds():
    for n in (1, 10, 11, 40):
        colors = hex_colors(n)
        assert len(colors) == n + 1 == len(set(colors)) and colors[0] == "#ffffff" and "#ffffff" not in colors[1:]


def test_the_ledger_value_is_compact_json_text_and_read_value_checks_a_worker_answer():
    value = mask_value(MASK)  # a data: URL, as a browser's canvas hands one over
    assert value.startswith("data:image/png;base64,") and len(value) < 400
    assert json.loads(json.dumps(value)) == value and TASK.read_value(value, CLASSES) == value
    assert TASK.read_value(encode_mask(MASK), CLASSES) == value  # bare base64 is read the same
    assert np.array_equal(decode_mask(value), MASK)

    def png(image: Image.Image, format: str = "PNG") -> str:
        buffer = io.BytesIO()
        image.save(buffer, format=format)
        return base64.b64encode(buffer.getvalue()).decode()

    bad = {
        "class id 4; this job's ids are 0 \\(background\\) to 3": mask_value(mask_of((4, slice(0, 2), slice(0, 2)))),
        "must be a greyscale \\(mode L\\) PNG": png(Image.new("RGB", (4, 4))),
        "not base64": "%%%",
        "not a PNG image": base64.b64encode(b"hello").decode(),
        "a JPEG image, not a PNG": png(Image.new("L", (4, 4)), "JPEG"),
        "at most 8192 a side": png(Image.new("L", (8193, 1))),
        "must be the base64 text of a PNG, got int": 3,
    }
    for message, answer in bad.items():
        with pytest.raises(ValueError, match=message):
            TASK.read_value(answer, CLASSES)


# ---------------------------------------------------------------- labels the input already carries


def test_an_input_line_carrying_a_mask_is_kept_as_a_human_label(tmp_path):
    label = TASK.existing_label(gt_line(tmp_path), ATTR, CLASSES, 3, "job")
    assert label.human and label.job_name == "labeling-job/old" and label.confidence == 1.0
    assert np.array_equal(decode_mask(label.class_id), MASK)
    assert TASK.existing_label({"source-ref": "/data/y.png"}, ATTR, CLASSES, 4, "job") is None


def test_a_bad_existing_mask_is_refused_naming_the_line(tmp_path):
    colors = TASK.label_metadata(None, CLASSES)["internal-color-map"]
    renamed = {**colors, "2": {"class-name": "horse", "hex-color": colors["2"]["hex-color"]}}
    short = {k: v for k, v in colors.items() if k != "3"}
    cases = {
        "mask .*missing.png does not exist": {**gt_line(tmp_path), ATTR: str(tmp_path / "missing.png")},
        "names 'horse', not a category of this job": gt_line(tmp_path, colors=renamed),
        "pixels of colour #2ca02c, which its internal-color-map does not name": gt_line(tmp_path, colors=short),
        "needs an internal-color-map": {**gt_line(tmp_path), f"{ATTR}-metadata": {"type": "groundtruth/semantic-segmentation"}},
        "expected the URI of a mask PNG": {**gt_line(tmp_path), ATTR: 5},
    }
    (tmp_path / "text.png").write_text("not an image")
    cases["is not a PNG image"] = {**gt_line(tmp_path), ATTR: str(tmp_path / "text.png")}
    for message, line in cases.items():
        with pytest.raises(ManifestError, match=f"line 12: existing label {ATTR}: .*{message}"):
            TASK.existing_label(line, ATTR, CLASSES, 12, "job")


def test_ground_truths_rule_a_mask_attribute_ends_in_ref_and_no_other_does():
    base = {"ManifestUri": "/m", "OutputUri": "/o", "JobName": "j", "LabelCategories": CLASSES}
    JobSettings.parse({**base, "TaskType": "semantic-segmentation", "LabelAttributeName": "animal-ref"})
    with pytest.raises(ConfigurationError, match="'animal' must end in '-ref' for task type semantic-segmentation"):
        JobSettings.parse({**base, "TaskType": "semantic-segmentation", "LabelAttributeName": "animal"})
    with pytest.raises(ConfigurationError, match="'animal-ref' may not end in '-ref' for task type image-classification"):
        JobSettings.parse({**base, "TaskType": "image-classification", "LabelAttributeName": "animal-ref"})
    assert JobSettings.parse({**base, "TaskType": "semantic-segmentation", "LabelAttributeName": "a-ref"}).target_accuracy == 0.7


# ---------------------------------------------------------------- quality


def test_quality_is_ground_truths_mean_iou_over_the_classes_either_mask_has_background_excluded():
    reference = mask_of((1, slice(0, 10), slice(0, 10)))
    half = mask_of((1, slice(0, 10), slice(0, 5)))
    assert TASK.quality(mask_value(half), mask_value(reference)) == pytest.approx(0.5)
    # A class only the prediction has scores 0 and counts: (0.5 + 0) / 2.
    extra = mask_of((1, slice(0, 10), slice(0, 5)), (2, slice(15, 20), slice(20, 30)))
    assert TASK.quality(mask_value(extra), mask_value(reference)) == pytest.approx(0.25)
    # Per class, by category index (class id - 1), as scoring reports them.
    assert TASK.class_qualities(mask_value(extra), mask_value(reference)) == {0: pytest.approx(0.5), 1: 0.0}
    # Background agreement earns nothing: a missed object scores 0 however much background matches.
    assert TASK.quality(mask_value(mask_of()), mask_value(reference)) == 0.0
    assert TASK.quality(mask_value(mask_of()), mask_value(mask_of())) == 1.0  # both only background
    shifted = mask_of((1, slice(0, 10), slice(2, 12)))  # 80 shared of 120 pixels in either
    assert TASK.quality(mask_value(shifted), mask_value(reference)) == pytest.approx(80 / 120)
    with pytest.raises(ValueError, match="masks of different sizes: 30 x 20 against 10 x 10"):
        TASK.quality(mask_value(reference), mask_value(np.zeros((10, 10), np.uint8)))


# ---------------------------------------------------------------- consolidation and simulated painters


def test_workers_masks_are_voted_per_pixel_ties_going_to_the_lowest_class():
    a = mask_of((1, slice(0, 10), slice(0, 10)))
    b = mask_of((1, slice(0, 10), slice(0, 8)))
    c = mask_of((2, slice(0, 10), slice(0, 10)))
    winner, confidence = TASK.consolidate([mask_value(m) for m in (a, b, c)], 3, np.random.default_rng(0))
    voted = decode_mask(winner)
    assert (voted[:10, :8] == 1).all()  # two of three say 1
    assert (voted[:10, 8:10] == 0).all()  # one each for 0, 1 and 2: the lowest, background, wins
    assert confidence == round((80 * 2 / 3 + 20 * 1 / 3) / 100, 2)  # mean winning share where anyone painted
    tie, _ = TASK.consolidate([mask_value(c), mask_value(a)], 2, np.random.default_rng(0))
    assert (decode_mask(tie)[:10, :10] == 1).all()  # 1 against 2: 1, whatever the order
    same, confidence = TASK.consolidate([mask_value(MASK)] * 3, 3, np.random.default_rng(0))
    assert np.array_equal(decode_mask(same), MASK) and confidence == 1.0
    assert TASK.consolidate([mask_value(mask_of())] * 2, 2, np.random.default_rng(0))[1] == 1.0
    with pytest.raises(ValueError, match="differ in size"):
        TASK.consolidate([mask_value(MASK), mask_value(MASK[:10])], 2, np.random.default_rng(0))


def test_a_simulated_painter_makes_boundaries_ragged_as_often_as_it_errs():
    true = mask_value(MASK)
    assert TASK.simulated_answer(true, CLASSES, 1.0, np.random.default_rng(0)) == true
    answer = decode_mask(TASK.simulated_answer(true, CLASSES, 0.7, np.random.default_rng(1)))
    changed = answer != MASK
    assert changed.any()
    padded = np.pad(MASK, 1, mode="edge")
    on_boundary = np.zeros_like(changed)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        on_boundary |= padded[1 + dy:21 + dy, 1 + dx:31 + dx] != MASK
    assert not (changed & ~on_boundary).any()  # only pixels next to another class change
    qualities = [TASK.quality(TASK.simulated_answer(true, CLASSES, acc, np.random.default_rng(s)), true)
                 for acc in (0.9, 0.5) for s in range(5)]
    assert 0.5 < np.mean(qualities[5:]) < np.mean(qualities[:5]) < 1.0  # a worse painter scores lower
    again = TASK.simulated_answer(true, CLASSES, 0.7, np.random.default_rng(1))
    assert np.array_equal(decode_mask(again), answer)  # seeded


def test_the_simulated_workforce_answers_from_a_truth_manifest_of_masks_and_writes_masks_beside(tmp_path):
    truth_path = tmp_path / "truth.manifest"
    lines, manifest = [], []
    for i in range(3):
        mask = mask_of((i + 1, slice(i, 10), slice(0, 10 + i)))
        line = gt_line(tmp_path, mask, name=f"t{i}.png")
        line["source-ref"] = f"/data/{i}.png"
        lines.append(line)
        manifest.append({"source-ref": f"/data/{i}.png", "labelloop-id": 10 + i})
    truth_path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    truth = read_truth(truth_path)
    assert truth.attribute == ATTR and names_in(truth.labels["/data/0.png"]) == CLASSES
    assert check_truth(truth, truth_path, [json.dumps(m) for m in manifest], CLASSES).covered == 3
    with pytest.raises(TruthError, match="labels that are not categories of this job"):
        check_truth(truth, truth_path, [json.dumps(m) for m in manifest], ["cat", "dog"])
    (tmp_path / "in.manifest").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    (tmp_path / "labels.json").write_text(json.dumps({"document-version": "2018-11-28",
                                                      "labels": [{"label": c} for c in CLASSES]}))
    pre, acs = TASK.built_in_lambda_arns("us-east-1")
    describe = SimulatedWorkforce(truth.labels, seed=0, annotator="painter").run_labeling_job({
        "LabelingJobName": "j-001-label", "LabelAttributeName": ATTR,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": str(tmp_path / "in.manifest")}}},
        "OutputConfig": {"S3OutputPath": str(tmp_path / "labeling")}, "LabelCategoryConfigS3Uri": str(tmp_path / "labels.json"),
        "HumanTaskConfig": {"PreHumanTaskLambdaArn": pre, "NumberOfHumanWorkersPerDataObject": 3,
                            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": acs}},
    })
    out = [json.loads(x) for x in open(describe["LabelingJobOutput"]["OutputDatasetS3Uri"])]
    assert [line[ATTR].rsplit("/", 1)[-1] for line in out] == ["10.png", "11.png", "12.png"]
    assert all("/annotations/consolidated-annotation/output/" in line[ATTR] for line in out)
    for line, true in zip(out, lines):
        assert line[f"{ATTR}-metadata"]["job-name"] == "labeling-job/j-001-label"
        assert np.array_equal(decode_mask(TASK.line_label(line, ATTR, CLASSES)), decode_mask(TASK.line_label(true, ATTR, CLASSES)))
    scored = evaluate([json.dumps(x) for x in out], ATTR, truth.labels, TASK, CLASSES)
    assert scored.human == 3 and scored.human_accuracy == 1.0


def test_a_truth_line_with_a_broken_colour_map_is_refused_naming_the_line(tmp_path):
    line = gt_line(tmp_path)
    line[f"{ATTR}-metadata"]["internal-color-map"] = {"0": "white"}
    (tmp_path / "t.manifest").write_text(json.dumps(line) + "\n")
    with pytest.raises(TruthError, match="line 1: its internal-color-map must map indices"):
        read_truth(tmp_path / "t.manifest")
    assert TASK.truth_value({"mask-ref": str(tmp_path / "none.png"), "internal-color-map": {}}, CLASSES) is None
    assert TASK.truth_value(mask_value(MASK), CLASSES) == mask_value(MASK)  # already a value of this job


# ---------------------------------------------------------------- the model's answers


def test_the_segmenters_reply_is_read_and_checked():
    reply = {"mask": encode_mask(MASK), "confidence": 0.83, "confidences": {"mean-max-prob": 0.9, "soft-min": 0.4}}
    parsed = TASK.parse_output(reply, len(CLASSES))
    values, confidence = TASK.predicted([parsed, {**parsed, "confidence": 0.1}])
    assert values[0] == "data:image/png;base64," + reply["mask"] and confidence.tolist() == [0.83, 0.1]
    assert TASK.parse_output({"mask": encode_mask(MASK), "confidence": 1}, 3)["confidences"] == {}
    bad = {
        "expected SageMakerOutput.mask": {"probabilities": [0.5]},
        "class id 3; this job's ids are 0 \\(background\\) to 2": {**reply},
        "confidence must be a number in \\[0, 1\\]": {**reply, "confidence": 1.5},
        "confidences\\['x'\\] must be a number": {**reply, "confidences": {"x": "high"}},
        "at most 8 named numbers": {**reply, "confidences": {str(i): 0.5 for i in range(9)}},
        "larger than 32768 bytes": {**reply, "mask": "A" * 50_000},
    }
    for message, output in bad.items():
        with pytest.raises(ValueError, match=message):
            TASK.parse_output(output, 2 if "class id" in message else 3)
    # A request of full-size replies fits the model server's reply limit.
    from labelloop import aws_limits
    per_request = aws_limits.max_lines_per_request(3, TASK.reply_line_bytes(3))
    assert per_request * TASK.reply_line_bytes(3) <= aws_limits.MODEL_SERVER_REPLY_LIMIT and per_request >= 100


def test_the_report_lays_the_mask_over_the_image(tmp_path):
    Image.new("L", MASK.shape[::-1], 0).save(tmp_path / "x.png")
    source = {"source-ref": str(tmp_path / "x.png")}
    view = example_view("semantic-segmentation")

    def drawn(value) -> np.ndarray:
        html = str(view(source, value))
        data = base64.b64decode(html.split("base64,")[1].split('"')[0])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    plain, from_ledger = drawn(None), drawn(mask_value(MASK))
    from_manifest = drawn(gt_line(tmp_path)[ATTR])
    assert plain.max() == 0 and from_ledger.max() > 0
    assert np.array_equal(from_ledger, from_manifest)  # the ledger's class map and Ground Truth's painted file alike

