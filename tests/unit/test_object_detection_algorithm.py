"""algorithms/object_detection, driven the way SageMaker drives it: train.py in a subprocess with
a script-mode job's SM_* environment on Ground Truth bounding-box labels, then inference.py's
handlers answering a batch-transform request.

The data: 96x80 grayscale images (not square, so boxes must be scaled per axis) holding up to
two shapes, bright squares (class 0) and bright rings (class 1), on noise; some images hold
nothing (an empty `annotations` list is a valid label)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from algorithm_helpers import extract_source

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 96, 80


def source_dir(workdir: Path) -> Path:
    """The source dir SageMaker extracts for object detection (the packaged tarball, unpacked)."""
    return extract_source("object-detection", workdir)


def shapes(folder: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """Manifest lines with `boxes` labels in Ground Truth's format."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    lines = []
    for i in range(n):
        image = rng.normal(30, 8, size=(HEIGHT, WIDTH))
        annotations: list[dict[str, Any]] = []
        for _ in range(0 if i % 10 == 0 else int(rng.integers(1, 3))):
            side = int(rng.integers(14, 30))
            for _ in range(20):
                left, top = int(rng.integers(0, WIDTH - side)), int(rng.integers(0, HEIGHT - side))
                if all(left + side <= a["left"] or a["left"] + a["width"] <= left or top + side <= a["top"]
                       or a["top"] + a["height"] <= top for a in annotations):
                    break
            else:
                continue
            inside = (xx >= left) & (xx < left + side) & (yy >= top) & (yy < top + side)
            cls = int(rng.integers(0, 2))
            if cls == 1:  # a ring: the square's border only
                core = (xx >= left + 4) & (xx < left + side - 4) & (yy >= top + 4) & (yy < top + side - 4)
                inside &= ~core
            image[inside] = 220
            annotations.append({"class_id": cls, "left": left, "top": top, "width": side, "height": side})
        path = folder / f"{i}.png"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "L").save(path)
        lines.append({
            "source-ref": str(path),
            "boxes": {"image_size": [{"width": WIDTH, "height": HEIGHT, "depth": 1}], "annotations": annotations},
            "boxes-metadata": {"type": "groundtruth/object-detection", "human-annotated": "yes"},
        })
    return lines


def write_channel(folder: Path, lines: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.manifest").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def run_training(src: Path, workdir: Path, hps: dict[str, Any]) -> tuple[subprocess.CompletedProcess, Path, Path]:
    model_dir, failure = workdir / "model", workdir / "output" / "failure"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(
        SM_MODEL_DIR=str(model_dir), SM_CHANNEL_TRAIN=str(workdir / "train"),
        SM_CHANNEL_VALIDATION=str(workdir / "validation"), SM_NUM_CPUS="1", SM_OUTPUT_FAILURE=str(failure),
        # as the orchestrator sends them: every value JSON-encoded into a string
        SM_HPS=json.dumps({k: json.dumps(v) for k, v in hps.items()}),
    )
    proc = subprocess.run([sys.executable, "train.py"], cwd=src, env=env, capture_output=True, text=True, timeout=300)
    return proc, model_dir, failure


def load_inference(src: Path):
    sys.path.insert(0, str(src))
    try:
        spec = importlib.util.spec_from_file_location("_detector_inference", src / "inference.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(src))
        for name in ("box_labels", "centernet", "jsonlines_protocol", "object_loader"):
            sys.modules.pop(name, None)


def iou(a: dict, b: dict) -> float:
    w = min(a["left"] + a["width"], b["left"] + b["width"]) - max(a["left"], b["left"])
    h = min(a["top"] + a["height"], b["top"] + b["height"]) - max(a["top"], b["top"])
    inter = max(0.0, w) * max(0.0, h)
    return inter / (a["width"] * a["height"] + b["width"] * b["height"] - inter)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("detector")
    src = source_dir(work)
    write_channel(work / "train", shapes(work / "images", 200, seed=0))
    write_channel(work / "validation", shapes(work / "val-images", 20, seed=1))
    proc, model_dir, _ = run_training(
        src, work, {"num-classes": 2, "label-attribute": "boxes", "image-size": 64, "epochs": 25, "seed": 0}
    )
    assert proc.returncode == 0, f"train.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return work, src, model_dir, proc.stdout


def test_training_writes_the_model_its_config_and_the_serving_code(trained):
    _, _, model_dir, stdout = trained
    config = json.loads((model_dir / "model-config.json").read_text())
    assert config["task"] == "object-detection" and config["num_classes"] == 2
    assert config["input"]["image_size"] == 64 and config["input"]["channels"] == 1
    assert config["decode"] == {"max_boxes": 20, "min_score": 0.05, "nms_iou": 0.6}
    assert (model_dir / "model.pt").is_file() and (model_dir / "code" / "inference.py").is_file()
    assert "validation-loss=" in stdout
    assert "(20 with no objects)" in stdout


def test_batch_transform_answers_boxes_in_the_images_pixels_that_find_the_shapes(trained):
    work, src, model_dir, _ = trained
    inference = load_inference(src)
    model = inference.model_fn(str(model_dir))
    test = shapes(work / "test-images", 30, seed=2)
    body = "".join(json.dumps({"source-ref": line["source-ref"], "labelloop-id": i}) + "\n" for i, line in enumerate(test))
    reply = inference.output_fn(inference.predict_fn(inference.input_fn(body.encode(), "application/jsonlines"), model),
                                "application/jsonlines")
    answers = [json.loads(text) for text in reply.splitlines()]
    assert len(answers) == len(test)
    found, wanted, false_alarms = 0, 0, 0
    for answer, line in zip(answers, test):
        assert set(answer) == {"boxes", "image_size"}
        assert answer["image_size"] == [{"width": WIDTH, "height": HEIGHT, "depth": 1}]
        boxes = answer["boxes"]
        assert len(boxes) <= 20
        scores = [b["score"] for b in boxes]
        assert scores == sorted(scores, reverse=True) and all(0.05 <= s <= 1 for s in scores)
        for b in boxes:
            assert set(b) == {"class_id", "left", "top", "width", "height", "score"}
            assert b["class_id"] in (0, 1) and b["width"] > 0 and b["height"] > 0
            assert b["left"] >= 0 and b["top"] >= 0
            assert b["left"] + b["width"] <= WIDTH + 1e-6 and b["top"] + b["height"] <= HEIGHT + 1e-6
        kept = [b for b in boxes if b["score"] >= 0.3]
        truth = line["boxes"]["annotations"]
        wanted += len(truth)
        found += sum(any(k["class_id"] == t["class_id"] and iou(k, t) >= 0.5 for k in kept) for t in truth)
        false_alarms += sum(not any(k["class_id"] == t["class_id"] and iou(k, t) >= 0.5 for t in truth) for k in kept)
    assert found >= 0.8 * wanted, f"found {found} of {wanted} shapes"
    assert false_alarms <= 0.2 * wanted, f"{false_alarms} confident boxes match no shape"
    assert len(reply.encode()) < 1500 * len(test)


def test_requests_without_an_image_fail_naming_the_line(trained):
    work, src, model_dir, _ = trained
    inference = load_inference(src)
    model = inference.model_fn(str(model_dir))
    body = json.dumps({"source-ref": str(work / "images" / "0.png")}) + '\n{"x": 1}\n'
    with pytest.raises(ValueError, match="request line 2: missing 'source-ref'"):
        inference.predict_fn(inference.input_fn(body, "application/jsonlines"), model)
    with pytest.raises(ValueError, match="request line 1: cannot use image /nowhere.png"):
        inference.predict_fn([{"source-ref": "/nowhere.png"}], model)


@pytest.mark.parametrize(
    "annotation, message",
    [
        ({"class_id": 0, "left": 80, "top": 10, "width": 30, "height": 10}, "lies outside the 96x80 image"),
        ({"class_id": 2, "left": 1, "top": 1, "width": 5, "height": 5}, "class_id 2 is out of range for num-classes=2"),
        ({"class_id": 0, "left": 1, "top": 1, "width": 0, "height": 5}, "width and height must be positive"),
        ({"class_id": 0, "left": "1", "top": 1, "width": 3, "height": 5}, "left must be a finite number"),
    ],
)
def test_bad_boxes_fail_the_job_naming_channel_file_line_and_box(tmp_path, annotation, message):
    src = source_dir(tmp_path)
    lines = shapes(tmp_path / "images", 3, seed=4)
    lines[1]["boxes"]["annotations"].append(annotation)
    write_channel(tmp_path / "train", lines)
    proc, _, failure = run_training(src, tmp_path, {"num-classes": 2, "label-attribute": "boxes", "epochs": 1})
    assert proc.returncode == 1
    reason = failure.read_text()
    assert "train channel file" in reason and "data.manifest line 2" in reason
    assert "'boxes'" in reason and message in reason


def test_labels_that_do_not_describe_the_image_fail_clearly(tmp_path):
    src = source_dir(tmp_path)
    lines = shapes(tmp_path / "images", 3, seed=5)
    lines[2]["boxes"]["image_size"] = [{"width": 640, "height": 480, "depth": 1}]
    lines[2]["boxes"]["annotations"] = []
    write_channel(tmp_path / "train", lines)
    proc, _, failure = run_training(src, tmp_path, {"num-classes": 2, "label-attribute": "boxes", "epochs": 1})
    assert proc.returncode == 1
    assert "data.manifest line 3: label's image_size is 640x480 but image" in failure.read_text()
    del lines[2]["boxes"]
    write_channel(tmp_path / "train", lines)
    proc, _, failure = run_training(src, tmp_path, {"num-classes": 2, "label-attribute": "boxes", "epochs": 1})
    assert proc.returncode == 1 and "line 3: missing label attribute 'boxes'" in failure.read_text()


@pytest.mark.parametrize(
    "label, message",
    [
        ({"annotations": []}, "has no 'image_size'"),
        ({"image_size": [{"width": 0, "height": 4}], "annotations": []}, "image_size width must be a positive integer"),
        ({"image_size": [{"width": 4, "height": 4}], "annotations": {}}, "'annotations' must be a list"),
        (3, "expected a bounding-box label"),
    ],
)
def test_malformed_labels_are_explained(label, message):
    sys.path.insert(0, str(ROOT / "algorithms" / "object_detection"))
    try:
        import box_labels
    finally:
        sys.path.pop(0)
        sys.modules.pop("box_labels", None)
    with pytest.raises(ValueError, match=message):
        box_labels.parse_box_label(label, 2)
    ok = box_labels.parse_box_label(
        {"image_size": [{"width": 10, "height": 8, "depth": 3}],
         "annotations": [{"class_id": 1, "left": -0.5, "top": 0, "width": 11.2, "height": 8}]}, 2)
    assert ok.boxes.tolist() == [[0.0, 0.0, 10.0, 8.0]] and ok.classes.tolist() == [1]


@pytest.mark.parametrize("factor", [0.8, 1.0, 1.25])
def test_zoomed_training_batches_keep_boxes_on_their_objects(tmp_path, factor):
    import torch

    src = source_dir(tmp_path)
    sys.path.insert(0, str(src))
    try:
        spec = importlib.util.spec_from_file_location("_detector_train", src / "train.py")
        train = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(train)
    finally:
        sys.path.remove(str(src))
    image = torch.zeros(1, 1, 64, 64)
    image[..., 20:36, 8:20] = 255.0  # a 12x16 object at left 8, top 20
    boxes = [np.array([[8, 20, 12, 16], [58, 58, 6, 6]], np.float32)]  # the second one sits at the corner
    zoomed, out_boxes, out_classes = train.zoom(image, boxes, [np.array([1, 0])], factor, torch.Generator().manual_seed(3))
    assert zoomed.shape == image.shape
    rows, cols = np.nonzero(zoomed[0, 0].numpy() > 127)
    left, top, width, height = out_boxes[0][0]
    assert abs(left - cols.min()) <= 1 and abs(top - rows.min()) <= 1
    assert abs(left + width - (cols.max() + 1)) <= 1 and abs(top + height - (rows.max() + 1)) <= 1
    assert out_classes[0][0] == 1
    assert len(out_boxes[0]) == len(out_classes[0]) and np.all(out_boxes[0][:, :2] >= 0)
    assert np.all(out_boxes[0][:, :2] + out_boxes[0][:, 2:] <= 64 + 1e-4)


def test_the_box_head_crops_the_box_and_its_edge_targets_lead_back_to_the_true_box():
    import sys

    sys.path.insert(0, str(ROOT / "algorithms" / "object_detection"))
    try:
        import numpy as np
        import refiner
        import torch
    finally:
        sys.path.pop(0)
    # A bright 10x20 bar on a dark 64x64 image: its crop shows the bar upright in the middle.
    image = torch.zeros((1, 1, 64, 64))
    image[0, 0, 20:40, 30:40] = 1.0
    box = torch.tensor([[30.0, 20.0, 10.0, 20.0]])
    crop = refiner.crop(image, torch.tensor([0]), refiner.frames(box))[0, 0]
    assert crop.shape == (refiner.CROP, refiner.CROP)
    middle = refiner.CROP // 2
    assert crop[middle, middle] > 0.9 and crop[middle, 1] < 0.1 and crop[1, middle] < 0.5
    # Jittered proposals with their edge targets applied land on the true box again.
    rng = np.random.default_rng(0)
    truth = np.array([[30.0, 20.0, 10.0, 20.0]], np.float32)
    owner, props, cls, edges, positive = refiner.samples([truth], [np.array([1])], 64, 3, rng, copies=5)
    assert cls[positive == 1].tolist() == [1] * 5 and set(cls[positive == 0].tolist()) <= {3}
    moved = refiner.apply_edges(props, refiner.frames(props), edges)[positive == 1]
    assert torch.allclose(moved, torch.from_numpy(truth).expand(5, 4), atol=1e-3)
