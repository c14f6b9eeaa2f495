"""`labelloop prepare fashion-mnist-segmentation`: cluttered canvases of Fashion-MNIST items with
their true masks kept as a Ground Truth output manifest of painted PNGs beside the input manifest.

The source is tests/conftest.py's small IDX set of blob-shaped items, so the tests need no download."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelloop import cli, tasks
from labelloop.datasets import PREPARERS, read_label_config
from labelloop.datasets import fashion_mnist_segmentation as fms
from labelloop.datasets.fashion_mnist import CLASS_NAMES
from labelloop.datasets.canvases import INK
from labelloop.tasks.semantic_segmentation import decode_mask
from labelloop.truth import check_truth, read_truth

TASK = tasks.get("semantic-segmentation")


@pytest.fixture(scope="module")
def prepared(blob_fashion_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("fms")
    return out, fms.prepare_fashion_mnist_segmentation(out, source=blob_fashion_source, limit=24, seed=3)


def truth_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / fms.TRUTH_NAME).read_text().splitlines()]


def true_mask(line: dict) -> np.ndarray:
    return decode_mask(TASK.line_label(line, fms.ATTRIBUTE, CLASS_NAMES))


def test_writes_an_unlabeled_manifest_and_the_truth_as_a_ground_truth_segmentation_manifest(prepared):
    out, result = prepared
    assert result.task_type == "semantic-segmentation" and result.count == 24 and result.truth == out / "truth.manifest"
    manifest = [json.loads(line) for line in result.manifest.read_text().splitlines()]
    assert all(set(line) == {"source-ref"} and Path(line["source-ref"]).is_absolute() for line in manifest)
    assert read_label_config(result.label_config) == CLASS_NAMES
    truth = truth_lines(out)
    assert [line["source-ref"] for line in truth] == [line["source-ref"] for line in manifest]
    for line in truth:
        meta = line["label-ref-metadata"]
        assert Path(line["label-ref"]).parent == out / "masks" and Path(line["label-ref"]).is_file()
        assert meta["type"] == "groundtruth/semantic-segmentation" and meta["human-annotated"] == "yes"
        assert meta["internal-color-map"]["0"]["class-name"] == "BACKGROUND"
        assert [meta["internal-color-map"][str(i + 1)]["class-name"] for i in range(10)] == CLASS_NAMES
        assert isinstance(meta["job-name"], str) and meta["creation-date"]
    shown = [set(np.unique(true_mask(line)).tolist()) - {0} for line in truth]
    assert result.class_counts == {name: sum(i + 1 in s for s in shown) for i, name in enumerate(CLASS_NAMES)}


def test_a_mask_is_exactly_the_items_drawn_pixels_one_to_four_items_a_canvas(prepared):
    out, _ = prepared
    counts = []
    for line in truth_lines(out):
        mask, image = true_mask(line), np.asarray(Image.open(line["source-ref"]))
        assert mask.shape == image.shape == (128, 128)
        # An item's pixels are at least INK bright; clutter under it is covered, so only its own show.
        assert (image[mask > 0] >= INK).all()
        counts.append(len(np.unique(mask)) - 1)
        assert (mask > 0).mean() < 0.9
    assert min(counts) >= 1 and max(counts) <= 4 and len(set(counts)) >= 2


def test_without_clutter_the_mask_is_every_non_background_pixel(blob_fashion_source, tmp_path, monkeypatch):
    from labelloop.datasets import canvases

    monkeypatch.setattr(canvases, "FRAGMENTS", (0, 0))
    monkeypatch.setattr(canvases, "BACKGROUND_LEVEL", (0, 0))
    monkeypatch.setattr(canvases, "NOISE_SD", (0.0, 0.0))
    fms.prepare_fashion_mnist_segmentation(tmp_path, source=blob_fashion_source, limit=6, seed=1)
    for line in truth_lines(tmp_path):
        assert np.array_equal(true_mask(line) > 0, np.asarray(Image.open(line["source-ref"])) > 0)


def test_the_truth_serves_simulated_annotators_and_fits_the_manifest(prepared):
    out, result = prepared
    truth = read_truth(result.truth)
    check = check_truth(truth, result.truth, result.manifest.read_text().splitlines(), CLASS_NAMES)
    assert check.covered == check.items == 24 and truth.attribute == "label-ref"
    key = truth_lines(out)[0]["source-ref"]
    value = TASK.truth_value(truth.labels[key], CLASS_NAMES)
    assert np.array_equal(decode_mask(value), true_mask(truth_lines(out)[0]))


def test_same_seed_same_dataset_and_the_cli_prepares_it(blob_fashion_source, tmp_path, capsys):
    def snapshot(folder: Path) -> tuple[str, list[bytes]]:
        return ((folder / "truth.manifest").read_text().replace(str(folder), ""),
                [p.read_bytes() for p in sorted((folder / "masks").glob("*.png"))])

    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        fms.prepare_fashion_mnist_segmentation(tmp_path / name, source=blob_fashion_source, limit=5, seed=seed)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b") != snapshot(tmp_path / "c")
    assert PREPARERS["fashion-mnist-segmentation"] is fms.prepare_fashion_mnist_segmentation
    code = cli.main(["prepare", "fashion-mnist-segmentation", "--out", str(tmp_path / "d"), "--limit", "4",
                     "--source", str(blob_fashion_source)])
    assert code == 0 and "fashion-mnist-segmentation: 4 items" in capsys.readouterr().out
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        fms.prepare_fashion_mnist_segmentation(tmp_path / "e", source=blob_fashion_source, limit=0)
