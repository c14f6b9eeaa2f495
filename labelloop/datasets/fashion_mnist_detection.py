"""A bounding-box benchmark from real Fashion-MNIST pixels: items placed on cluttered canvases.

Each 128x128 grayscale canvas holds 1-4 Fashion-MNIST items, each scaled to a random side of
20-64 px, placed so that no two items' boxes overlap by more than IoU 0.3. The background is a
random grey level with pixel noise and a few small fragments (at most 10 px) cut from other
items: clutter that looks like clothing but is no object. An item's box is the tight box of its
own drawn pixels (those at or above `INK`; fainter pixels of the scaled item are not drawn), in
Ground Truth's convention: `left`/`top` of the first pixel column/row, `width`/`height` in
whole pixels.

Written into `out`:

    out/images/          the canvases (PNG)
    out/manifest.jsonl   the input manifest: {"source-ref": "/abs/path.png"} a line, no boxes
    out/labels.json      Ground Truth label category config (the 10 Fashion-MNIST classes)
    out/truth.manifest   the hidden truth as a Ground Truth output manifest: each input line plus
                         "label" (image_size + annotations) and "label-metadata" (objects,
                         class-map, type groundtruth/object-detection, human-annotated yes)

Deterministic given the seed and `limit` (the number of canvases).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from labelloop.datasets.common import (
    LABELS_NAME,
    MANIFEST_NAME,
    PreparedDataset,
    atomic_write_lines,
    label_config_json,
    write_images,
)
from labelloop.datasets.fashion_mnist import CLASS_NAMES, DEFAULT_SOURCE, load_fashion_mnist

TASK_TYPE = "object-detection"
TRUTH_NAME = "truth.manifest"
ATTRIBUTE = "label"
JOB_NAME = "labeling-job/fashion-mnist-detection-truth"
CREATION_DATE = "2026-01-01T00:00:00.000000"  # fixed: the same seed gives the same bytes
DEFAULT_COUNT = 5_000

CANVAS = 128
MIN_OBJECTS, MAX_OBJECTS = 1, 4
MIN_SIDE, MAX_SIDE = 20, 64
MAX_IOU = 0.3
INK = 48  # pixels of a scaled item at least this bright are drawn, and bound its box
PLACEMENT_TRIES = 60
FRAGMENTS = (3, 8)  # per canvas, inclusive
FRAGMENT_SIDE = (5, 10)
BACKGROUND_LEVEL = (0, 35)
NOISE_SD = (3.0, 12.0)


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (left, top, width, height) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def _scaled_item(item: np.ndarray, side: int, brightness: float) -> np.ndarray:
    """The item scaled to side x side, dimmed by `brightness`, faint pixels set to 0."""
    scaled = np.asarray(Image.fromarray(item).resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)
    scaled = np.clip(scaled * brightness, 0, 255).astype(np.uint8)
    scaled[scaled < INK] = 0
    return scaled


def _background(rng: np.random.Generator, items: np.ndarray) -> np.ndarray:
    level = rng.uniform(*BACKGROUND_LEVEL)
    canvas = level + rng.normal(0.0, rng.uniform(*NOISE_SD), size=(CANVAS, CANVAS))
    canvas = np.clip(canvas, 0, 255)
    for _ in range(int(rng.integers(FRAGMENTS[0], FRAGMENTS[1] + 1))):
        source = items[int(rng.integers(len(items)))]
        side = int(rng.integers(FRAGMENT_SIDE[0], FRAGMENT_SIDE[1] + 1))
        y, x = (int(v) for v in rng.integers(4, 28 - side - 4 + 1, size=2))
        patch = source[y : y + side, x : x + side].astype(np.float64) * rng.uniform(0.4, 0.9)
        py, px = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
        region = canvas[py : py + side, px : px + side]
        np.maximum(region, patch, out=region)
    return canvas


def compose(rng: np.random.Generator, items: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """One canvas (uint8, CANVAS x CANVAS) and its Ground Truth annotations."""
    canvas = _background(rng, items)
    annotations: list[dict] = []
    boxes: list[tuple[int, int, int, int]] = []
    wanted = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    while len(boxes) < wanted:
        index = int(rng.integers(len(items)))
        scaled = _scaled_item(items[index], int(rng.integers(MIN_SIDE, MAX_SIDE + 1)), rng.uniform(0.75, 1.0))
        rows, cols = np.nonzero(scaled)
        if not len(rows):
            continue  # an item too faint to draw: draw another
        top0, left0 = int(rows.min()), int(cols.min())
        height, width = int(rows.max()) - top0 + 1, int(cols.max()) - left0 + 1
        placed = None
        for _ in range(PLACEMENT_TRIES):
            y, x = (int(v) for v in rng.integers(0, CANVAS - np.array(scaled.shape) + 1))
            box = (x + left0, y + top0, width, height)
            if all(box_iou(box, other) <= MAX_IOU for other in boxes):
                placed = (y, x, box)
                break
        if placed is None:
            if boxes:
                break  # the canvas is full enough; fewer objects than drawn is fine
            continue
        y, x, box = placed
        region = canvas[y : y + scaled.shape[0], x : x + scaled.shape[1]]
        np.maximum(region, scaled, out=region, where=scaled > 0)
        boxes.append(box)
        annotations.append({"class_id": int(targets[index]), "left": box[0], "top": box[1], "width": box[2], "height": box[3]})
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), annotations


def truth_line(source_ref: str, annotations: list[dict]) -> dict:
    """A Ground Truth output-manifest line for a human-annotated bounding-box label."""
    return {
        "source-ref": source_ref,
        ATTRIBUTE: {"image_size": [{"width": CANVAS, "height": CANVAS, "depth": 1}], "annotations": annotations},
        f"{ATTRIBUTE}-metadata": {
            "objects": [{"confidence": 1.0} for _ in annotations],
            "class-map": {str(i): name for i, name in enumerate(CLASS_NAMES)},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": CREATION_DATE,
            "job-name": JOB_NAME,
        },
    }


def prepare_fashion_mnist_detection(
    out: Path,
    source: Path = DEFAULT_SOURCE,
    limit: int | None = None,
    seed: int = 0,
) -> PreparedDataset:
    """Write `limit` canvases (default 5,000) with their hidden true boxes into `out`."""
    count = DEFAULT_COUNT if limit is None else limit
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    items, targets = load_fashion_mnist(Path(source))
    rng = np.random.default_rng(seed)
    canvases, all_annotations = [], []
    for _ in range(count):
        canvas, annotations = compose(rng, items, targets)
        canvases.append(canvas)
        all_annotations.append(annotations)
    out = Path(out)
    paths = write_images(out, np.stack(canvases))
    lines = [{"source-ref": str(path)} for path in paths]
    truth = out / TRUTH_NAME
    atomic_write_lines(truth, (json.dumps(truth_line(line["source-ref"], a)) for line, a in zip(lines, all_annotations)))
    atomic_write_lines(out / LABELS_NAME, [json.dumps(label_config_json(CLASS_NAMES), indent=2)])
    # The manifest goes last: it is what a run reads, and it only appears once its truth does.
    atomic_write_lines(out / MANIFEST_NAME, (json.dumps(line) for line in lines))
    per_class = Counter(a["class_id"] for annotations in all_annotations for a in annotations)
    return PreparedDataset(
        manifest=out / MANIFEST_NAME,
        truth=truth,
        label_config=out / LABELS_NAME,
        task_type=TASK_TYPE,
        class_names=list(CLASS_NAMES),
        count=count,
        class_counts={name: per_class.get(i, 0) for i, name in enumerate(CLASS_NAMES)},
    )
