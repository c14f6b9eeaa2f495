"""`labelloop prepare fashion-mnist-detection`: canvases of Fashion-MNIST items with their true
boxes kept in a Ground Truth output manifest beside the (unlabeled) input manifest.

The source is tests/conftest.py's small IDX set of blob-shaped items, so the tests need no download."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelloop import cli
from labelloop.datasets import PREPARERS, read_label_config
from labelloop.datasets import canvases
from labelloop.datasets import fashion_mnist_detection as fmd
from labelloop.datasets.fashion_mnist import CLASS_NAMES


@pytest.fixture(scope="module")
def prepared(blob_fashion_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("fmd")
    return out, fmd.prepare_fashion_mnist_detection(out, source=blob_fashion_source, limit=60, seed=3)


def truth_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / fmd.TRUTH_NAME).read_text().splitlines()]


def test_writes_an_unlabeled_manifest_a_label_config_and_a_ground_truth_output_manifest(prepared):
    out, result = prepared
    assert result.task_type == "object-detection" and result.count == 60
    assert result.truth == out / "truth.manifest" and result.manifest == out / "manifest.jsonl"
    manifest = [json.loads(line) for line in result.manifest.read_text().splitlines()]
    assert len(manifest) == 60
    assert all(set(line) == {"source-ref"} and Path(line["source-ref"]).is_absolute() for line in manifest)
    assert read_label_config(result.label_config) == CLASS_NAMES
    truth = truth_lines(out)
    assert [line["source-ref"] for line in truth] == [line["source-ref"] for line in manifest]
    for line in truth:
        label, meta = line["label"], line["label-metadata"]
        assert label["image_size"] == [{"width": 128, "height": 128, "depth": 1}]
        assert meta["type"] == "groundtruth/object-detection"
        assert meta["human-annotated"] == "yes"
        assert meta["class-map"] == {str(i): name for i, name in enumerate(CLASS_NAMES)}
        assert meta["objects"] == [{"confidence": 1.0}] * len(label["annotations"])
        assert isinstance(meta["job-name"], str) and meta["creation-date"]
        for box in label["annotations"]:
            assert set(box) == {"class_id", "left", "top", "width", "height"}
            assert all(isinstance(box[key], int) for key in box)
    assert sum(result.class_counts.values()) == sum(len(line["label"]["annotations"]) for line in truth)


def test_canvases_hold_one_to_four_objects_inside_the_image_overlapping_at_most_iou_03(prepared):
    out, _ = prepared
    counts = []
    for line in truth_lines(out):
        boxes = [(b["left"], b["top"], b["width"], b["height"]) for b in line["label"]["annotations"]]
        counts.append(len(boxes))
        for left, top, width, height in boxes:
            assert left >= 0 and top >= 0 and width >= 1 and height >= 1
            assert left + width <= 128 and top + height <= 128
        assert all(canvases.box_iou(a, b) <= canvases.MAX_IOU for a, b in combinations(boxes, 2))
        image = np.asarray(Image.open(line["source-ref"]))
        assert image.shape == (128, 128) and image.dtype == np.uint8
        # Tight: every edge row and column of a box holds a pixel of its object's ink.
        for left, top, width, height in boxes:
            patch = image[top : top + height, left : left + width] >= canvases.INK
            assert patch[0].any() and patch[-1].any() and patch[:, 0].any() and patch[:, -1].any()
    assert min(counts) >= 1 and max(counts) <= 4
    assert len(set(counts)) >= 3  # counts vary
    sides = [max(b["width"], b["height"]) for line in truth_lines(out) for b in line["label"]["annotations"]]
    assert min(sides) < 30 and max(sides) > 45  # several sizes


def test_without_clutter_a_box_is_exactly_the_extent_of_the_objects_pixels(blob_fashion_source, tmp_path, monkeypatch):
    monkeypatch.setattr(canvases, "FRAGMENTS", (0, 0))
    monkeypatch.setattr(canvases, "BACKGROUND_LEVEL", (0, 0))
    monkeypatch.setattr(canvases, "NOISE_SD", (0.0, 0.0))
    monkeypatch.setattr(canvases, "MAX_OBJECTS", 1)
    fmd.prepare_fashion_mnist_detection(tmp_path, source=blob_fashion_source, limit=10, seed=1)
    for line in truth_lines(tmp_path):
        (box,) = line["label"]["annotations"]
        rows, cols = np.nonzero(np.asarray(Image.open(line["source-ref"])))
        assert (box["left"], box["top"]) == (cols.min(), rows.min())
        assert (box["width"], box["height"]) == (cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)


def test_same_seed_same_dataset_other_seed_another(blob_fashion_source, tmp_path):
    def snapshot(folder: Path) -> tuple[str, str, list[bytes]]:
        images = sorted((folder / "images").glob("*.png"))
        return ((folder / "truth.manifest").read_text().replace(str(folder), ""),
                (folder / "manifest.jsonl").read_text().replace(str(folder), ""),
                [p.read_bytes() for p in images])

    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        fmd.prepare_fashion_mnist_detection(tmp_path / name, source=blob_fashion_source, limit=12, seed=seed)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert snapshot(tmp_path / "a")[0] != snapshot(tmp_path / "c")[0]


def test_cli_prepares_it_and_bad_limits_are_refused(blob_fashion_source, tmp_path, capsys):
    assert PREPARERS["fashion-mnist-detection"] is fmd.prepare_fashion_mnist_detection
    code = cli.main(["prepare", "fashion-mnist-detection", "--out", str(tmp_path / "d"), "--limit", "7",
                     "--source", str(blob_fashion_source)])
    assert code == 0
    assert "fashion-mnist-detection: 7 items" in capsys.readouterr().out
    assert len((tmp_path / "d" / "truth.manifest").read_text().splitlines()) == 7
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        fmd.prepare_fashion_mnist_detection(tmp_path / "e", source=blob_fashion_source, limit=0)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fmd.prepare_fashion_mnist_detection(tmp_path / "f", source=tmp_path / "nowhere", limit=3)
