"""A semantic-segmentation benchmark from real Fashion-MNIST pixels: items painted on cluttered canvases.

The canvases are the detection benchmark's (`canvases`, shared with it): 128 x 128 grey, noise
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

from pathlib import Path

import numpy as np

from labelloop.datasets.canvases import CANVAS, background, canvas_count, finish, placements, write_prepared
from labelloop.datasets.common import PreparedDataset, write_images
from labelloop.datasets.fashion_mnist import CLASS_NAMES, DEFAULT_SOURCE, load_fashion_mnist
from labelloop.tasks.semantic_segmentation import color_map, rgb_palette

TASK_TYPE = "semantic-segmentation"
TRUTH_NAME = "truth.manifest"
MASKS_DIR = "masks"
ATTRIBUTE = "label-ref"  # Ground Truth's rule: a mask's attribute ends in -ref
JOB_NAME = "labeling-job/fashion-mnist-segmentation-truth"
CREATION_DATE = "2026-01-01T00:00:00.000000"  # fixed: the same seed gives the same bytes
DEFAULT_COUNT = 5_000


def compose(rng: np.random.Generator, items: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One canvas (uint8, CANVAS x CANVAS) and its class map (0 background, k + 1 class k)."""
    canvas = background(rng, items)
    mask = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    for p in placements(rng, items):
        drawn = p.scaled > 0
        window = (slice(p.y, p.y + p.scaled.shape[0]), slice(p.x, p.x + p.scaled.shape[1]))
        canvas[window][drawn] = p.scaled[drawn]  # the item covers clutter and earlier items alike
        mask[window][drawn] = int(targets[p.index]) + 1
    return finish(canvas), mask


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
    count = canvas_count(limit, DEFAULT_COUNT)
    items, targets = load_fashion_mnist(Path(source))
    rng = np.random.default_rng(seed)
    canvases = np.empty((count, CANVAS, CANVAS), dtype=np.uint8)
    masks = np.empty((count, CANVAS, CANVAS), dtype=np.uint8)
    for i in range(count):
        canvases[i], masks[i] = compose(rng, items, targets)
    out = Path(out)
    # Painted as Ground Truth paints them.
    mask_paths = write_images(out, rgb_palette(len(CLASS_NAMES))[masks], folder=MASKS_DIR)
    # Images showing each class (what a per-class count means for masks).
    shown = np.zeros((count, len(CLASS_NAMES) + 1), dtype=bool)
    shown[np.arange(count)[:, None], masks.reshape(count, -1)] = True
    per_class = shown[:, 1:].sum(axis=0)
    return write_prepared(out, canvases, TRUTH_NAME, lambda i, source_ref: truth_line(source_ref, str(mask_paths[i])),
                          TASK_TYPE, {name: int(per_class[i]) for i, name in enumerate(CLASS_NAMES)})
