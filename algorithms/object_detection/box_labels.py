"""Ground Truth bounding-box labels: reading and checking them.

A label (the value of the label attribute in an augmented-manifest line) is

    {"image_size": [{"width": 640, "height": 480, "depth": 3}],
     "annotations": [{"class_id": 0, "left": 10, "top": 20, "width": 50, "height": 40}, ...]}

in the image's pixels (left/top from the top-left corner). An image with no objects has an empty
`annotations` list. Boxes may stick out of the image by at most `EDGE_SLACK` pixels (annotation
tools round at the border); they are clipped to it. Anything else is a ValueError saying which
annotation and what is wrong, which the channel reader prefixes with the file and line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

EDGE_SLACK = 1.0
BOX_FIELDS = ("left", "top", "width", "height")


@dataclass(frozen=True)
class BoxLabel:
    width: int
    height: int
    depth: int
    boxes: np.ndarray  # (n, 4) float32: left, top, width, height in the image's pixels
    classes: np.ndarray  # (n,) int64


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _size(value: Any) -> tuple[int, int, int]:
    entries = value if isinstance(value, list) else [value]
    if len(entries) != 1 or not isinstance(entries[0], dict):
        raise ValueError(f"'image_size' must be a list of one {{width, height, depth}} object, got {value!r}"[:200])
    entry = entries[0]
    sizes = []
    for name in ("width", "height"):
        number = _number(entry.get(name), f"image_size {name}")
        if number < 1 or not number.is_integer():
            raise ValueError(f"image_size {name} must be a positive integer, got {entry.get(name)!r}")
        sizes.append(int(number))
    depth = entry.get("depth", 3)
    if depth not in (1, 3, 4) or isinstance(depth, bool):
        raise ValueError(f"image_size depth must be 1, 3 or 4, got {depth!r}")
    return sizes[0], sizes[1], int(depth)


def parse_box_label(value: Any, num_classes: int) -> BoxLabel:
    """The checked label; boxes clipped to the image."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a bounding-box label {{image_size, annotations}}, got {str(value)[:80]}")
    if "image_size" not in value:
        raise ValueError("bounding-box label has no 'image_size'")
    width, height, depth = _size(value["image_size"])
    annotations = value.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError(f"'annotations' must be a list (empty for an image with no objects), got {annotations!r}"[:200])
    boxes, classes = [], []
    for index, annotation in enumerate(annotations):
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise ValueError(f"{where} must be an object, got {annotation!r}"[:200])
        class_id = annotation.get("class_id")
        if isinstance(class_id, bool) or not isinstance(class_id, (int, float)) or float(class_id) != int(class_id):
            raise ValueError(f"{where}: class_id must be an integer, got {class_id!r}")
        if not 0 <= int(class_id) < num_classes:
            raise ValueError(f"{where}: class_id {int(class_id)} is out of range for num-classes={num_classes}")
        left, top, w, h = (_number(annotation.get(name), f"{where} {name}") for name in BOX_FIELDS)
        if w <= 0 or h <= 0:
            raise ValueError(f"{where}: width and height must be positive, got {w:g}x{h:g}")
        if left < -EDGE_SLACK or top < -EDGE_SLACK or left + w > width + EDGE_SLACK or top + h > height + EDGE_SLACK:
            raise ValueError(
                f"{where}: box left={left:g} top={top:g} width={w:g} height={h:g} lies outside the "
                f"{width}x{height} image"
            )
        x0, y0 = max(0.0, left), max(0.0, top)
        x1, y1 = min(float(width), left + w), min(float(height), top + h)
        boxes.append((x0, y0, x1 - x0, y1 - y0))
        classes.append(int(class_id))
    return BoxLabel(
        width,
        height,
        depth,
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(classes, dtype=np.int64),
    )
