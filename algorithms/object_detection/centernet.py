"""A small anchor-free detector in the CenterNet manner (Zhou et al., "Objects as Points", 2019).

The network maps a square image to maps at 1/4 of its side: an objectness heatmap whose peaks
are object centres, class logits, the box size there (log of width and height in map cells)
and the sub-cell offset of the centre. Training targets are Gaussians around each centre
(elliptical, spread with the box, as in TTFNet) for the penalty-reduced focal loss; classes are
trained with cross-entropy on the cells near each centre (weighted by its Gaussian), sizes and
offsets at the centre cells. One objectness map for all classes (rather than CenterNet's map per
class) lets every box teach localisation, which matters with tens of boxes a class; a box's
score is its objectness times its class probability, so class doubt lowers it too. Decoding
keeps local maxima (3x3 max pooling), the best peaks, and drops a box overlapping a stronger one
(any class): a duplicate would cost an unmatched box in Ground Truth's per-image IoU.

This is the first stage: `peaks` proposes boxes by objectness, and refiner.py's second look
names their classes and moves their edges (`decode` is the first stage alone, as trained without
the box head).

The backbone is a 4-level encoder (strides 2-16) with a two-step top-down path back to stride 4:
its receptive field spans ~100 px at 128x128, enough for objects up to half the image, and it
trains on one CPU core in minutes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STRIDE = 4
PRIOR = 0.1  # initial heatmap probability: keeps the focal loss of the first steps sane
GAUSSIAN_ALPHA = 0.54  # TTFNet's share of the box the Gaussian spreads over


def architecture(channels: int, num_classes: int, image_size: int, width: int) -> dict:
    if image_size % 16:
        raise ValueError(f"image-size must be a multiple of 16, got {image_size}")
    return {"name": "centernet-small", "channels": channels, "num_classes": num_classes, "image_size": image_size, "width": width}


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CenterNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        self.stem = _block(channels, w, 2)  # /2
        self.level4 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))  # /4
        self.level8 = nn.Sequential(_block(2 * w, 3 * w, 2), _block(3 * w, 3 * w))  # /8
        self.level16 = nn.Sequential(_block(3 * w, 4 * w, 2), _block(4 * w, 4 * w))  # /16
        self.lateral8 = nn.Conv2d(3 * w, 4 * w, 1)
        self.lateral4 = nn.Conv2d(2 * w, 4 * w, 1)
        self.smooth8 = _block(4 * w, 4 * w)
        self.smooth4 = _block(4 * w, 2 * w)
        self.heat = nn.Conv2d(2 * w, 1, 1)
        # Telling the classes apart is the hard part on small sets: the class head gets its own layer.
        self.classes = nn.Sequential(_block(2 * w, 2 * w), nn.Conv2d(2 * w, num_classes, 1))
        self.size = nn.Conv2d(2 * w, 2, 1)
        self.offset = nn.Conv2d(2 * w, 2, 1)
        nn.init.constant_(self.heat.bias, -math.log((1 - PRIOR) / PRIOR))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c4 = self.level4(self.stem(x))
        c8 = self.level8(c4)
        c16 = self.level16(c8)
        p8 = self.smooth8(self.lateral8(c8) + F.interpolate(c16, scale_factor=2.0, mode="nearest"))
        p4 = self.smooth4(self.lateral4(c4) + F.interpolate(p8, scale_factor=2.0, mode="nearest"))
        return self.heat(p4), self.classes(p4), self.size(p4), self.offset(p4)


def build(arch: dict) -> CenterNet:
    if arch.get("name") != "centernet-small":
        raise ValueError(f"unknown detector architecture {arch.get('name')!r}")
    return CenterNet(int(arch["channels"]), int(arch["num_classes"]), int(arch["width"]))


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8-valued (N, C, S, S) pixels -> standardised floats, with the training set's statistics."""
    m = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    return (x.to(torch.float32) / 255.0 - m) / s


CLASS_AREA = 0.3  # cells where a box's Gaussian is at least this teach its class


def targets(boxes: list[np.ndarray], classes: list[np.ndarray], map_size: int) -> dict[str, torch.Tensor]:
    """Training targets for boxes given as (left, top, width, height) in map cells: objectness
    heat (N, 1, S, S), class per cell (N, S, S; -1 where none) and its weight, size and offset
    (N, 2, S, S) and the centre mask (N, S, S)."""
    n = len(boxes)
    heat = np.zeros((n, 1, map_size, map_size), np.float32)
    cls = np.full((n, map_size, map_size), -1, np.int64)
    weight = np.zeros((n, map_size, map_size), np.float32)
    size = np.zeros((n, 2, map_size, map_size), np.float32)
    offset = np.zeros((n, 2, map_size, map_size), np.float32)
    mask = np.zeros((n, map_size, map_size), np.float32)
    grid = np.arange(map_size, dtype=np.float32)
    for i, (image_boxes, image_classes) in enumerate(zip(boxes, classes)):
        # Larger boxes first, so a small box's centre written later wins a shared cell.
        for j in np.argsort(-(image_boxes[:, 2] * image_boxes[:, 3]), kind="stable"):
            left, top, w, h = (float(v) for v in image_boxes[j])
            cx, cy = left + w / 2, top + h / 2
            ix, iy = min(map_size - 1, max(0, int(cx))), min(map_size - 1, max(0, int(cy)))
            sx, sy = max(0.5, GAUSSIAN_ALPHA * w / 6), max(0.5, GAUSSIAN_ALPHA * h / 6)
            g = np.exp(-((grid[None, :] - ix) ** 2) / (2 * sx * sx) - ((grid[:, None] - iy) ** 2) / (2 * sy * sy))
            np.maximum(heat[i, 0], g, out=heat[i, 0])
            stronger = (g > weight[i]) & (g >= CLASS_AREA)
            cls[i][stronger] = int(image_classes[j])
            weight[i][stronger] = g[stronger]
            size[i, :, iy, ix] = (math.log(max(w, 1e-2)), math.log(max(h, 1e-2)))
            offset[i, :, iy, ix] = (cx - ix, cy - iy)
            mask[i, iy, ix] = 1.0
    arrays = {"heat": heat, "cls": cls, "weight": weight, "size": size, "offset": offset, "mask": mask}
    return {key: torch.from_numpy(value) for key, value in arrays.items()}


def loss(outputs: tuple[torch.Tensor, ...], t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    heat_logits, class_logits, size_p, offset_p = outputs
    p = torch.sigmoid(heat_logits).clamp(1e-4, 1 - 1e-4)
    pos = t["heat"].eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - t["heat"]) ** 4 * (1 - pos)).sum()
    focal = (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)
    ce = F.cross_entropy(class_logits, t["cls"].clamp(min=0), reduction="none")
    class_loss = (ce * t["weight"]).sum() / t["weight"].sum().clamp(min=1e-6)
    m = t["mask"][:, None]
    centres = t["mask"].sum().clamp(min=1.0)
    size_loss = (F.l1_loss(size_p, t["size"], reduction="none") * m).sum() / (2 * centres)
    offset_loss = (F.l1_loss(offset_p, t["offset"], reduction="none") * m).sum() / (2 * centres)
    total = focal + class_loss + size_loss + offset_loss
    parts = {"focal": focal, "class": class_loss, "size": size_loss, "offset": offset_loss}
    return total, {key: float(value.detach()) for key, value in parts.items()}


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[0] + box[2], others[:, 0] + others[:, 2])
    y1 = np.minimum(box[1] + box[3], others[:, 1] + others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = box[2] * box[3] + others[:, 2] * others[:, 3] - inter
    return inter / np.maximum(union, 1e-9)


def peaks(outputs: tuple[torch.Tensor, ...], *, count: int, min_objectness: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per image, up to `count` local maxima of the objectness map at least `min_objectness`:
    boxes (n, 4) as (left, top, width, height) in input pixels, the first stage's classes and
    class probabilities, and the objectness; strongest first."""
    heat_logits, class_logits, size_p, offset_p = outputs
    heat = torch.sigmoid(heat_logits.float())
    maxima = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    n, _, s, _ = heat.shape
    objectness, index = maxima.reshape(n, -1).topk(min(s * s, count), dim=1)
    results = []
    for i in range(n):
        keep = objectness[i] >= min_objectness
        ys, xs, obj = index[i][keep] // s, index[i][keep] % s, objectness[i][keep]
        probs = torch.softmax(class_logits[i, :, ys, xs].float(), dim=0)
        best, cls = probs.max(dim=0)
        wh = torch.exp(size_p[i, :, ys, xs].float().clamp(max=math.log(4 * s))).T
        off = offset_p[i, :, ys, xs].float().T
        cx, cy = xs.float() + off[:, 0], ys.float() + off[:, 1]
        boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, wh[:, 0], wh[:, 1]], dim=1) * STRIDE
        results.append((boxes.numpy().reshape(-1, 4), cls.numpy().astype(np.int64), best.numpy(), obj.numpy()))
    return results


def select(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, *, top_k: int, min_score: float, nms_iou: float):
    """The boxes scoring at least `min_score`, best first, without any box overlapping a stronger
    one (of any class) by more than `nms_iou`; at most `top_k`."""
    order = [j for j in np.argsort(-scores, kind="stable") if scores[j] >= min_score]
    chosen: list[int] = []
    for j in order:
        if len(chosen) >= top_k:
            break
        if chosen and np.any(_iou(boxes[j], boxes[np.array(chosen)]) > nms_iou):
            continue
        chosen.append(j)
    idx = np.array(chosen, dtype=np.int64)
    return boxes[idx].reshape(-1, 4), classes[idx], scores[idx]


def decode(
    outputs: tuple[torch.Tensor, ...],
    *,
    top_k: int,
    min_score: float,
    nms_iou: float,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: boxes (n, 4) as (left, top, width, height) in input pixels, classes and scores
    (objectness times class probability), best first; at most `top_k`, none under `min_score`."""
    out = []
    for boxes, classes, probs, objectness in peaks(outputs, count=3 * top_k, min_objectness=min_score):
        out.append(select(boxes, classes, objectness * probs, top_k=top_k, min_score=min_score, nms_iou=nms_iou))
    return out
