"""Cluttered 128 x 128 canvases of Fashion-MNIST items: what the detection and segmentation
benchmarks share.

Each canvas is a random grey level with pixel noise and a few small fragments (at most 10 px) cut
from other items, then 1-4 items, each scaled to a random side of 20-64 px and placed so that no
two items' boxes overlap by more than IoU 0.3. How an item is drawn (over the clutter or covering
it) and what truth is kept is each benchmark's own; the random draws, and so the bytes for a seed,
are the same for both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

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
from labelloop.datasets.fashion_mnist import CLASS_NAMES

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


class Placement(NamedTuple):
    """An item placed on a canvas: its pixels (0 where not drawn) go at rows y.., columns x..."""

    index: int  # into the items
    scaled: np.ndarray
    y: int
    x: int
    box: tuple[int, int, int, int]  # left, top, width, height of the drawn pixels on the canvas


def canvas_count(limit: int | None, default: int) -> int:
    count = default if limit is None else limit
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return count


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (left, top, width, height) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def scaled_item(item: np.ndarray, side: int, brightness: float) -> np.ndarray:
    """The item scaled to side x side, dimmed by `brightness`, faint pixels set to 0."""
    scaled = np.asarray(Image.fromarray(item).resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)
    scaled = np.clip(scaled * brightness, 0, 255).astype(np.uint8)
    scaled[scaled < INK] = 0
    return scaled


def background(rng: np.random.Generator, items: np.ndarray) -> np.ndarray:
    """A float canvas: grey level, noise and fragments of items (clutter that is no object)."""
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


def placements(rng: np.random.Generator, items: np.ndarray) -> Iterator[Placement]:
    """The items of one canvas, drawn after its `background`; the caller draws each as it comes.

    Drawing takes no random numbers, so the draws (and the bytes for a seed) do not depend on how
    a caller draws."""
    boxes: list[tuple[int, int, int, int]] = []
    wanted = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    while len(boxes) < wanted:
        index = int(rng.integers(len(items)))
        scaled = scaled_item(items[index], int(rng.integers(MIN_SIDE, MAX_SIDE + 1)), rng.uniform(0.75, 1.0))
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
                placed = Placement(index, scaled, y, x, box)
                break
        if placed is None:
            if boxes:
                return  # the canvas is full enough; fewer objects than drawn is fine
            continue
        boxes.append(placed.box)
        yield placed


def finish(canvas: np.ndarray) -> np.ndarray:
    """The float canvas as uint8 pixels."""
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def write_prepared(out: Path, canvases: np.ndarray, truth_name: str, truth_line: Callable[[int, str], dict],
                   task_type: str, class_counts: dict[str, int]) -> PreparedDataset:
    """Write the canvases, their hidden truth (`truth_line(i, source_ref)` for canvas i), the label
    config and the input manifest into `out`."""
    paths = write_images(out, canvases)
    lines = [{"source-ref": str(path)} for path in paths]
    truth = out / truth_name
    atomic_write_lines(truth, (json.dumps(truth_line(i, line["source-ref"])) for i, line in enumerate(lines)))
    atomic_write_lines(out / LABELS_NAME, [json.dumps(label_config_json(CLASS_NAMES), indent=2)])
    # The manifest goes last: it is what a run reads, and it only appears once its truth does.
    atomic_write_lines(out / MANIFEST_NAME, (json.dumps(line) for line in lines))
    return PreparedDataset(
        manifest=out / MANIFEST_NAME,
        truth=truth,
        label_config=out / LABELS_NAME,
        task_type=task_type,
        class_names=list(CLASS_NAMES),
        count=len(canvases),
        class_counts=class_counts,
    )
