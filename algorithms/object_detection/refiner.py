"""The detector's second stage: each candidate box is cut out of the image, scaled to a small
square and looked at again, by a network that names its class (or "no object") and moves its
edges (as R-CNN's box head does, on pixels rather than shared features).

Why a second look: in the first stage, a box's class comes from one cell of a stride-4 map, so a
20 px item and a 64 px one are seen at different scales with different context, and telling
shirts from T-shirts there is what costs most of the per-image IoU. A crop scaled to a fixed
size sees every item at the same scale, and the head that learns from it is small enough to
train in about a minute on a few thousand boxes.

A crop is the square around the box's centre whose side is `CONTEXT` times the box's longer
side (the item's outline and aspect ratio stay visible). Training crops are the true boxes moved
and resized at random (so that the head learns to correct the first stage's boxes) and random
boxes that overlap no object (the class "no object", so that clutter loses its score).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import crop_net
from crop_net import CROP, crop  # noqa: F401  (part of this module's interface)

CONTEXT = 1.25
DELTA_SCALE = 0.1  # edge moves are learned in units of a tenth of the crop's side
POSITIVE_JITTER = (0.15, 0.2)  # centre shift and log-size change, as shares of the box
NEGATIVES_PER_IMAGE = 2


def architecture(channels: int, num_classes: int, width: int) -> dict:
    return {"name": "crop-head", "channels": channels, "num_classes": num_classes, "width": width, "crop": CROP, "context": CONTEXT}


class CropHead(nn.Module):
    """Crops (N, C, CROP, CROP) -> class logits (N, K + 1; the last is "no object") and edge
    moves (N, 4: left, top, right, bottom, in DELTA_SCALE units of the crop's side)."""

    def __init__(self, channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.features, self.hidden, size = crop_net.trunk(channels, width)
        self.classes = nn.Linear(size, num_classes + 1)
        self.edges = nn.Linear(size, 4)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.hidden(self.features(crops))
        return self.classes(h), self.edges(h)


def build(arch: dict) -> CropHead:
    if arch.get("name") != "crop-head":
        raise ValueError(f"unknown box head architecture {arch.get('name')!r}")
    return CropHead(int(arch["channels"]), int(arch["num_classes"]), int(arch["width"]))


def frames(boxes: torch.Tensor) -> torch.Tensor:
    """(n, 4) boxes (left, top, width, height) -> their crops' (centre x, centre y, side)."""
    cx = boxes[:, 0] + boxes[:, 2] / 2
    cy = boxes[:, 1] + boxes[:, 3] / 2
    side = torch.maximum(boxes[:, 2], boxes[:, 3]).clamp(min=2.0) * CONTEXT
    return torch.stack([cx, cy, side], dim=1)


def apply_edges(boxes: torch.Tensor, frame: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Boxes moved by predicted edge moves; never narrower than a pixel."""
    side = frame[:, 2:3] * DELTA_SCALE
    x0 = boxes[:, 0] + edges[:, 0] * side[:, 0]
    y0 = boxes[:, 1] + edges[:, 1] * side[:, 0]
    x1 = boxes[:, 0] + boxes[:, 2] + edges[:, 2] * side[:, 0]
    y1 = boxes[:, 1] + boxes[:, 3] + edges[:, 3] * side[:, 0]
    x1, y1 = torch.maximum(x1, x0 + 1.0), torch.maximum(y1, y0 + 1.0)
    return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=1)


def _iou_one(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    if not len(others):
        return np.zeros(0)
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    y1 = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / np.maximum(box[2] * box[3] + others[:, 2] * others[:, 3] - inter, 1e-9)


def samples(boxes: list[np.ndarray], classes: list[np.ndarray], size: int, num_classes: int, rng: np.random.Generator,
            copies: int = 2):
    """Training proposals for a batch: (owner, proposal boxes, class targets, edge targets, is-object)."""
    owner, props, cls, edges, positive = [], [], [], [], []
    for i, (image_boxes, image_classes) in enumerate(zip(boxes, classes)):
        for box, k in zip(image_boxes, image_classes):
            for _ in range(copies):
                shift = rng.uniform(-POSITIVE_JITTER[0], POSITIVE_JITTER[0], 2) * box[2:]
                scale = np.exp(rng.uniform(-POSITIVE_JITTER[1], POSITIVE_JITTER[1], 2))
                w, h = box[2] * scale[0], box[3] * scale[1]
                cx, cy = box[0] + box[2] / 2 + shift[0], box[1] + box[3] / 2 + shift[1]
                p = np.array([cx - w / 2, cy - h / 2, w, h], np.float32)
                side = max(w, h) * CONTEXT * DELTA_SCALE
                target = np.array([box[0] - p[0], box[1] - p[1], box[0] + box[2] - p[0] - p[2], box[1] + box[3] - p[1] - p[3]]) / side
                owner.append(i), props.append(p), cls.append(int(k)), edges.append(target), positive.append(1.0)
        made = 0
        for _ in range(20 * NEGATIVES_PER_IMAGE):
            if made == NEGATIVES_PER_IMAGE:
                break
            w, h = rng.uniform(0.1, 0.5, 2) * size
            p = np.array([rng.uniform(-0.1 * w, size - 0.9 * w), rng.uniform(-0.1 * h, size - 0.9 * h), w, h], np.float32)
            if np.all(_iou_one(p, image_boxes) < 0.25):
                owner.append(i), props.append(p), cls.append(num_classes), edges.append(np.zeros(4)), positive.append(0.0)
                made += 1
    return (torch.tensor(owner, dtype=torch.long), torch.tensor(np.array(props), dtype=torch.float32).reshape(-1, 4),
            torch.tensor(cls, dtype=torch.long), torch.tensor(np.array(edges), dtype=torch.float32).reshape(-1, 4),
            torch.tensor(positive, dtype=torch.float32))


def loss(head: CropHead, images: torch.Tensor, batch) -> tuple[torch.Tensor, dict[str, float]]:
    owner, props, cls, edges, positive = batch
    logits, moves = head(crop(images, owner, frames(props)))
    class_loss = F.cross_entropy(logits, cls)
    edge_loss = (F.smooth_l1_loss(moves, edges, reduction="none").sum(1) * positive).sum() / positive.sum().clamp(min=1.0)
    return class_loss + edge_loss, {"head-class": float(class_loss.detach()), "head-edges": float(edge_loss.detach())}


@torch.inference_mode()
def refine(head: CropHead, images: torch.Tensor, detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]], num_classes: int):
    """First-stage (boxes, classes, objectness) per image -> refined (boxes, classes, scores):
    the head's edges and class; a box's score is its objectness times the head's probability of
    that class (so "no object" and class doubt both lower it)."""
    owner = torch.tensor([i for i, (b, _, _) in enumerate(detections) for _ in range(len(b))], dtype=torch.long)
    if not len(owner):
        return [(b, c, s) for b, c, s in detections]
    boxes = torch.from_numpy(np.concatenate([b for b, _, _ in detections]).astype(np.float32))
    objectness = torch.from_numpy(np.concatenate([s for _, _, s in detections]).astype(np.float32))
    frame = frames(boxes)
    logits, moves = head(crop(images, owner, frame))
    probs = torch.softmax(logits, dim=1)[:, :num_classes]
    best, cls = probs.max(dim=1)
    moved = apply_edges(boxes, frame, moves)
    out, start = [], 0
    for b, _, _ in detections:
        end = start + len(b)
        out.append((moved[start:end].numpy(), cls[start:end].numpy().astype(np.int64), (objectness[start:end] * best[start:end]).numpy()))
        start = end
    return out
