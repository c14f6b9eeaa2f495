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

from collections import Counter
from pathlib import Path

import numpy as np

from labelloop.datasets.canvases import CANVAS, background, canvas_count, finish, placements, write_prepared
from labelloop.datasets.common import PreparedDataset
from labelloop.datasets.fashion_mnist import CLASS_NAMES, DEFAULT_SOURCE, load_fashion_mnist

TASK_TYPE = "object-detection"
TRUTH_NAME = "truth.manifest"
ATTRIBUTE = "label"
JOB_NAME = "labeling-job/fashion-mnist-detection-truth"
CREATION_DATE = "2026-01-01T00:00:00.000000"  # fixed: the same seed gives the same bytes
DEFAULT_COUNT = 5_000


def compose(rng: np.random.Generator, items: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """One canvas (uint8, CANVAS x CANVAS) and its Ground Truth annotations."""
    canvas = background(rng, items)
    annotations: list[dict] = []
    for p in placements(rng, items):
        region = canvas[p.y : p.y + p.scaled.shape[0], p.x : p.x + p.scaled.shape[1]]
        np.maximum(region, p.scaled, out=region, where=p.scaled > 0)
        left, top, width, height = p.box
        annotations.append({"class_id": int(targets[p.index]), "left": left, "top": top, "width": width, "height": height})
    return finish(canvas), annotations


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
    count = canvas_count(limit, DEFAULT_COUNT)
    items, targets = load_fashion_mnist(Path(source))
    rng = np.random.default_rng(seed)
    canvases, all_annotations = [], []
    for _ in range(count):
        canvas, annotations = compose(rng, items, targets)
        canvases.append(canvas)
        all_annotations.append(annotations)
    per_class = Counter(a["class_id"] for annotations in all_annotations for a in annotations)
    return write_prepared(Path(out), np.stack(canvases), TRUTH_NAME,
                          lambda i, source_ref: truth_line(source_ref, all_annotations[i]), TASK_TYPE,
                          {name: per_class.get(i, 0) for i, name in enumerate(CLASS_NAMES)})
