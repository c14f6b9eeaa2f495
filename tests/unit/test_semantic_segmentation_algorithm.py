"""algorithms/semantic_segmentation, driven the way SageMaker drives it: train.py in a subprocess
with a script-mode job's SM_* environment on Ground Truth semantic-segmentation labels, then
inference.py's handlers answering a batch-transform request.

The data: 96x80 grayscale images (not square, so masks must be resized per axis) holding one or
two bright shapes, solid squares (class 1) and discs (class 2), on noise; the masks are PNGs
whose pixel value is the class id, some mode L and some mode P (palette), some files and some
inline as data: URLs (as labelloop's training channels carry them)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from algorithm_helpers import import_from
from segmentation_algorithm_helpers import COLORS, source_dir

WIDTH, HEIGHT = 96, 80


def save_mask(mask: np.ndarray, path: Path, palette: bool) -> None:
    image = Image.fromarray(mask, "L")
    if palette:
        image = image.convert("P")  # keeps the values as palette indices
        image.putpalette([255, 255, 255, 255, 0, 0, 0, 255, 0] + [0] * (3 * 253))
    image.save(path)


def shapes(folder: Path, n: int, seed: int, attribute: str = "shapes-ref") -> list[dict[str, Any]]:
    """Manifest lines with semantic-segmentation labels in Ground Truth's format."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    lines = []
    for i in range(n):
        image, mask = rng.normal(60, 20, size=(HEIGHT, WIDTH)), np.zeros((HEIGHT, WIDTH), np.uint8)
        for _ in range(int(rng.integers(1, 3))):
            r, cls = int(rng.integers(8, 16)), int(rng.integers(1, 3))
            cx, cy = int(rng.integers(r, WIDTH - r)), int(rng.integers(r, HEIGHT - r))
            inside = (abs(xx - cx) < r) & (abs(yy - cy) < r) if cls == 1 else (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            image[inside] = rng.normal(200, 20, size=int(inside.sum()))
            mask[inside] = cls
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "L").save(folder / f"{i}.png")
        save_mask(mask, folder / f"{i}-mask.png", palette=i % 2 == 1)
        ref = str(folder / f"{i}-mask.png")
        if i % 3 == 2:
            ref = "data:image/png;base64," + base64.b64encode((folder / f"{i}-mask.png").read_bytes()).decode()
        lines.append({
            "source-ref": str(folder / f"{i}.png"),
            attribute: ref,
            f"{attribute}-metadata": {"internal-color-map": COLORS, "type": "groundtruth/semantic-segmentation"},
        })
    return lines


def write_channel(folder: Path, lines: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.manifest").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def run_training(src: Path, workdir: Path, hps: dict[str, Any], previous: Path | None = None,
                 model_dir: Path | None = None, tmp: Path | None = None) -> tuple[subprocess.CompletedProcess, Path, Path]:
    model_dir, failure = model_dir or workdir / "model", workdir / "output" / "failure"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(
        SM_MODEL_DIR=str(model_dir), SM_CHANNEL_TRAIN=str(workdir / "train"),
        SM_CHANNEL_VALIDATION=str(workdir / "validation"), SM_NUM_CPUS="1", SM_OUTPUT_FAILURE=str(failure),
        # as the orchestrator sends them: every value JSON-encoded into a string
        SM_HPS=json.dumps({k: json.dumps(v) for k, v in hps.items()}),
    )
    if previous is not None:  # the loop's `model` channel: the previous iteration's model.tar.gz
        env["SM_CHANNEL_MODEL"] = str(previous)
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    proc = subprocess.run([sys.executable, "train.py"], cwd=src, env=env, capture_output=True, text=True, timeout=300)
    return proc, model_dir, failure


def decode(answer: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer["mask"])))


def true_mask(ref: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(ref.split(",", 1)[1])) if ref.startswith("data:") else ref))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("segmenter")
    src = source_dir(work)
    write_channel(work / "train", shapes(work / "images", 120, seed=0))
    write_channel(work / "validation", shapes(work / "val-images", 20, seed=1))
    proc, model_dir, _ = run_training(
        src, work, {"num-classes": 2, "label-attribute": "shapes-ref", "image-size": 64, "epochs": 14, "seed": 0}
    )
    assert proc.returncode == 0, f"train.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return work, src, model_dir, proc.stdout


def test_training_writes_the_model_its_config_and_the_serving_code(trained):
    _, _, model_dir, stdout = trained
    config = json.loads((model_dir / "model-config.json").read_text())
    assert config["task"] == "semantic-segmentation" and config["num_classes"] == 2
    assert config["input"]["image_size"] == 64 and config["input"]["channels"] == 1
    assert len(config["train_pixel_counts"]) == 3 and all(count > 0 for count in config["train_pixel_counts"])
    assert (model_dir / "model.pt").is_file() and (model_dir / "code" / "inference.py").is_file()
    assert "validation-loss=" in stdout and config["validation_iou"] > 0.7
    assert config["region_head"]["name"] == "region-head" and (model_dir / "region-head.pt").is_file()
    assert "region head epoch" in stdout


def pack_model(model_dir: Path, channel: Path) -> Path:
    channel.mkdir(parents=True, exist_ok=True)
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    return channel


def test_training_continues_from_the_previous_model_it_is_given(trained):
    """One epoch from the previous iteration's model keeps what it learned; one from scratch has not."""
    work, src, model_dir, _ = trained
    channel = pack_model(model_dir, work / "previous")
    hps = {"num-classes": 2, "label-attribute": "shapes-ref", "image-size": 64, "epochs": 1, "head-epochs": 1, "seed": 3}
    tmp = work / "tmp"
    tmp.mkdir()
    warm, warm_dir, _ = run_training(src, work, hps, previous=channel, model_dir=work / "warm", tmp=tmp)
    cold, cold_dir, _ = run_training(src, work, hps, model_dir=work / "cold")
    assert warm.returncode == 0 and cold.returncode == 0, warm.stderr[-2000:] + cold.stderr[-2000:]
    assert "continuing from the previous model (trained on 120 images, with its region head)" in warm.stdout
    warm_iou = json.loads((warm_dir / "model-config.json").read_text())["validation_iou"]
    cold_iou = json.loads((cold_dir / "model-config.json").read_text())["validation_iou"]
    assert warm_iou > 0.7 > cold_iou, (warm_iou, cold_iou)

    other, _, _ = run_training(src, work, {**hps, "width": 8}, previous=channel, model_dir=work / "other", tmp=tmp)
    assert other.returncode == 0 and "another architecture or input: training from scratch" in other.stdout
    assert not list(tmp.glob("previous-model-*")), "the unpacked previous model must not outlive the training job"

    (work / "not-a-model").mkdir()
    (work / "not-a-model" / "notes.txt").write_text("hello")
    bad, _, failure = run_training(src, work, hps, previous=work / "not-a-model", model_dir=work / "bad")
    assert bad.returncode == 1
    assert "model channel" in failure.read_text() and "model-config.json" in failure.read_text()


def test_batch_transform_answers_masks_at_the_images_size_that_find_the_shapes(trained):
    work, src, model_dir, _ = trained
    inference = import_from(src, "inference")
    image_iou = import_from(src, "confidence").image_iou
    names = import_from(src, "confidence").NAMES
    model = inference.model_fn(str(model_dir))
    test = shapes(work / "test-images", 24, seed=2)
    body = "".join(json.dumps({"source-ref": line["source-ref"], "labelloop-id": i}) + "\n" for i, line in enumerate(test))
    reply = inference.output_fn(inference.predict_fn(inference.input_fn(body.encode(), "application/jsonlines"), model),
                                "application/jsonlines")
    answers = [json.loads(text) for text in reply.splitlines()]
    assert len(answers) == len(test)
    ious, square_ious = [], []
    for answer, line in zip(answers, test):
        assert set(answer) == {"mask", "confidence", "confidences"}
        assert tuple(answer["confidences"]) == names
        assert all(0.0 <= value <= 1.0 for value in answer["confidences"].values())
        assert answer["confidence"] == answer["confidences"]["expected-iou"]
        mask = decode(answer)
        assert mask.format == "PNG" and mask.mode == "L" and mask.size == (WIDTH, HEIGHT)
        predicted, truth = np.asarray(mask), true_mask(line["shapes-ref"])
        assert set(np.unique(predicted)) <= {0, 1, 2}
        ious.append(image_iou(predicted, truth))
        if 1 in truth:
            square_ious.append(np.logical_and(predicted == 1, truth == 1).sum() / np.logical_or(predicted == 1, truth == 1).sum())
    assert np.mean(ious) > 0.8, f"mean image IoU {np.mean(ious):.3f}"
    assert np.mean(square_ious) > 0.8, f"squares segmented at IoU {np.mean(square_ious):.3f}"
    assert max(len(text) + 1 for text in reply.splitlines()) <= inference.reply_line_bound(WIDTH, HEIGHT)


def test_a_blank_image_gets_an_empty_mask_and_high_confidence_a_noisy_one_less(trained):
    work, src, model_dir, _ = trained
    inference = import_from(src, "inference")
    model = inference.model_fn(str(model_dir))
    rng = np.random.default_rng(7)
    Image.fromarray(np.clip(rng.normal(60, 20, (HEIGHT, WIDTH)), 0, 255).astype(np.uint8)).save(work / "blank.png")
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH)).astype(np.uint8)).save(work / "static.png")
    blank, static = inference.predict_fn([{"source-ref": str(work / "blank.png")}, {"source-ref": str(work / "static.png")}], model)
    assert not np.asarray(decode(blank)).any()
    assert blank["confidence"] > 0.8 and blank["confidence"] > static["confidence"]


def test_requests_without_an_image_fail_naming_the_line(trained):
    work, src, model_dir, _ = trained
    inference = import_from(src, "inference")
    model = inference.model_fn(str(model_dir))
    body = json.dumps({"source-ref": str(work / "images" / "0.png")}) + '\n{"x": 1}\n'
    with pytest.raises(ValueError, match="request line 2: missing 'source-ref'"):
        inference.predict_fn(inference.input_fn(body, "application/jsonlines"), model)
    with pytest.raises(ValueError, match="request line 1: cannot use image /nowhere.png"):
        inference.predict_fn([{"source-ref": "/nowhere.png"}], model)


def _break(lines: list[dict], tmp_path: Path, how: str) -> None:
    """Line 2 of `lines` made wrong in one way; its mask is `shapes-ref`, its metadata `shapes-metadata`."""
    for line in lines:
        line["shapes-ref"], line["shapes-metadata"] = line.pop("shapes"), line.pop("shapes-metadata")
    line = lines[1]
    if how == "class id":
        save_mask(np.full((HEIGHT, WIDTH), 5, np.uint8), Path(line["shapes-ref"]), palette=False)
    elif how == "size":
        save_mask(np.zeros((10, 10), np.uint8), Path(line["shapes-ref"]), palette=False)
    elif how == "missing mask":
        line["shapes-ref"] = str(tmp_path / "nowhere.png")
    elif how == "no ref":
        del line["shapes-ref"]
    elif how == "bad data URL":
        line["shapes-ref"] = "data:image/png;base64,!!" + "A" * 300
    elif how == "color map":
        line["shapes-metadata"]["internal-color-map"] = {**COLORS, "7": {"class-name": "extra"}}


@pytest.mark.parametrize(
    "how, message",
    [
        ("class id", "has class ids [5] out of range for num-classes=2 (class ids 0..2, 0 the background)"),
        ("size", "is 10x10 but image"),
        ("missing mask", "cannot use mask: cannot read"),
        ("no ref", "missing label attribute 'shapes' (or 'shapes-ref')"),
        ("bad data URL", "cannot use mask: data:image/png;base64,!!AAAA"),
        ("color map", "the mask's metadata: internal-color-map has class 7, out of range for num-classes=2"),
    ],
)
def test_bad_labels_fail_the_job_naming_channel_file_and_line(tmp_path, how, message):
    src = source_dir(tmp_path)
    lines = shapes(tmp_path / "images", 3, seed=4, attribute="shapes")  # the mask found at `shapes-ref`
    _break(lines, tmp_path, how)
    write_channel(tmp_path / "train", lines)
    proc, _, failure = run_training(src, tmp_path, {"num-classes": 2, "label-attribute": "shapes", "epochs": 1})
    assert proc.returncode == 1
    reason = failure.read_text()
    assert "train channel file" in reason and "data.manifest line 2" in reason
    assert message in reason, reason
