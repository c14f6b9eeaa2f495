"""A semantic-segmentation benchmark from real Fashion-MNIST pixels: items painted on cluttered canvases.

The canvases are the detection benchmark's (`fashion_mnist_detection`): 128 x 128 grey, noise
and fragments of other items as clutter, 1-4 items each scaled to 20-64 px, their boxes
overlapping by IoU 0.3 at most. Here an item covers what lies under it (a later one hides part of
an earlier one), so every pixel shows one thing, and the true mask is exactly what is shown: an
item's class on its drawn pixels (those at or above `INK`), background elsewhere, clutter
included.

Written into `out`:

    out/images/          the canvases (PNG)
    out/masks/           the true masks, painted as Ground Truth paints them (RGB PNG, background white)
    out/manifest.jsonl   the input manifest: {"source-ref": "/abs/path.png"} a line, no masks
    out/labels.json      Ground Truth label category config (the 10 Fashion-MNIST classes)
    out/truth.manifest   the hidden truth as a Ground Truth output manifest: each input line plus
                         "label-ref" (the mask's absolute path) and "label-ref-metadata"
                         (internal-color-map, type groundtruth/semantic-segmentation, human-annotated yes)

Deterministic given the seed and `limit` (the number of canvases).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from labelloop.datasets.common import LABELS_NAME, MANIFEST_NAME, PreparedDataset, atomic_write_lines, \
    label_config_json, write_images
from labelloop.datasets.fashion_mnist import CLASS_NAMES, DEFAULT_SOURCE, load_fashion_mnist
from labelloop.datasets.fashion_mnist_detection import CANVAS, MAX_IOU, MAX_OBJECTS, MAX_SIDE, MIN_OBJECTS, \
    MIN_SIDE, PLACEMENT_TRIES, _background, _scaled_item, box_iou
from labelloop.tasks.semantic_segmentation import color_map, hex_colors

TASK_TYPE = "semantic-segmentation"
TRUTH_NAME = "truth.manifest"
MASKS_DIR = "masks"
ATTRIBUTE = "label-ref"  # Ground Truth's rule: a mask's attribute ends in -ref
JOB_NAME = "labeling-job/fashion-mnist-segmentation-truth"
CREATION_DATE = "2026-01-01T00:00:00.000000"  # fixed: the same seed gives the same bytes
DEFAULT_COUNT = 5_000


def compose(rng: np.random.Generator, items: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One canvas (uint8, CANVAS x CANVAS) and its class map (0 background, k + 1 class k)."""
    canvas = _background(rng, items)
    mask = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    boxes: list[tuple[int, int, int, int]] = []
    wanted = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    while len(boxes) < wanted:
        index = int(rng.integers(len(items)))
        scaled = _scaled_item(items[index], int(rng.integers(MIN_SIDE, MAX_SIDE + 1)), rng.uniform(0.75, 1.0))
        rows, cols = np.nonzero(scaled)
        if not len(rows):
            continue  # an item too faint to draw: draw another
        top0, left0 = int(rows.min()), int(cols.min())
        box_size = (int(cols.max()) - left0 + 1, int(rows.max()) - top0 + 1)
        placed = None
        for _ in range(PLACEMENT_TRIES):
            y, x = (int(v) for v in rng.integers(0, CANVAS - np.array(scaled.shape) + 1))
            box = (x + left0, y + top0, *box_size)
            if all(box_iou(box, other) <= MAX_IOU for other in boxes):
                placed = (y, x, box)
                break
        if placed is None:
            if boxes:
                break  # the canvas is full enough; fewer objects than drawn is fine
            continue
        y, x, box = placed
        drawn = scaled > 0
        window = (slice(y, y + scaled.shape[0]), slice(x, x + scaled.shape[1]))
        canvas[window][drawn] = scaled[drawn]  # the item covers clutter and earlier items alike
        mask[window][drawn] = int(targets[index]) + 1
        boxes.append(box)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), mask


def truth_line(source_ref: str, mask_ref: str) -> dict:
    """A Ground Truth output-manifest line for a human-annotated mask."""
    return {
        "source-ref": source_ref,
        ATTRIBUTE: mask_ref,
        f"{ATTRIBUTE}-metadata": {
            "internal-color-map": color_map(CLASS_NAMES, 1.0),
            "type": "groundtruth/semantic-segmentation",
            "human-annotated": "yes",
            "creation-date": CREATION_DATE,
            "job-name": JOB_NAME,
        },
    }


def prepare_fashion_mnist_segmentation(
    out: Path,
    source: Path = DEFAULT_SOURCE,
    limit: int | None = None,
    seed: int = 0,
) -> PreparedDataset:
    """Write `limit` canvases (default 5,000) with their hidden true masks into `out`."""
    count = DEFAULT_COUNT if limit is None else limit
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    items, targets = load_fashion_mnist(Path(source))
    rng = np.random.default_rng(seed)
    canvases = np.empty((count, CANVAS, CANVAS), dtype=np.uint8)
    masks = np.empty((count, CANVAS, CANVAS), dtype=np.uint8)
    for i in range(count):
        canvases[i], masks[i] = compose(rng, items, targets)
    out = Path(out)
    paths = write_images(out, canvases)
    colours = np.array([[int(c[k:k + 2], 16) for k in (1, 3, 5)] for c in hex_colors(len(CLASS_NAMES))], np.uint8)
    mask_paths = write_images(out, colours[masks], folder=MASKS_DIR)  # painted as Ground Truth paints them
    lines = [{"source-ref": str(path)} for path in paths]
    truth = out / TRUTH_NAME
    atomic_write_lines(truth, (json.dumps(truth_line(line["source-ref"], str(mask)))
                               for line, mask in zip(lines, mask_paths)))
    atomic_write_lines(out / LABELS_NAME, [json.dumps(label_config_json(CLASS_NAMES), indent=2)])
    # The manifest goes last: it is what a run reads, and it only appears once its truth does.
    atomic_write_lines(out / MANIFEST_NAME, (json.dumps(line) for line in lines))
    # Images showing each class (what a per-class count means for masks).
    shown = np.zeros((count, len(CLASS_NAMES) + 1), dtype=bool)
    shown[np.arange(count)[:, None], masks.reshape(count, -1)] = True
    per_class = shown[:, 1:].sum(axis=0)
    return PreparedDataset(
        manifest=out / MANIFEST_NAME,
        truth=truth,
        label_config=out / LABELS_NAME,
        task_type=TASK_TYPE,
        class_names=list(CLASS_NAMES),
        count=count,
        class_counts={name: int(per_class[i]) for i, name in enumerate(CLASS_NAMES)},
    )
