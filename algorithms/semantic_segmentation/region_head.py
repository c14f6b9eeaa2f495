"""The segmenter's second look: each object of a predicted mask is named again by a small CNN
that sees it alone, at a fixed scale.

Why: the U-Net outlines objects well (class-agnostic IoU ~0.86 on Fashion-MNIST canvases) but
names them badly: a pixel's class comes from a window that holds part of a 64 px item and all of
a 20 px one, and telling shirts from T-shirts needs the whole item. Here an object is a
connected region of one class in the mask (8-connected); the head gets the square around it
(`CONTEXT` times its longer side, scaled to `crop_net.CROP` pixels) as the image's channels plus
one channel that marks the region itself (so that of two touching items it names the right one),
and answers K class probabilities. The region's class is the one that maximises the head's log
probability plus `MIX` times the log of the U-Net's own share of votes for it (both see things
the other misses), and its pixels' class probabilities become that mix, times their
foreground probability, so that the image confidences read the head's doubt too.

Training regions are the true masks' regions, their outlines grown or shrunk by a pixel or two
and their frames moved and resized a little at random (the predicted regions it will see are
never exact), mirrored at random. Measured in docs/benchmarks.md ("the region head").
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import crop_net
import regions

CONTEXT = 1.25
MIN_PIXELS = 8  # a smaller true region (a sliver an overlap left) teaches nothing about its item
MIX = 0.5
FRAME_JITTER = (0.1, 0.15)  # centre shift (share of the side) and log-size change of training frames
SAMPLE_BUDGET = 40_000  # region visits in training: ~2-3 min on one busy core at width 32
MIN_EPOCHS, MAX_EPOCHS = 8, 60
BATCH = 64


def architecture(channels: int, num_classes: int, width: int) -> dict:
    return {"name": "region-head", "channels": channels, "num_classes": num_classes, "width": width,
            "crop": crop_net.CROP, "context": CONTEXT, "mix": MIX}


class RegionHead(nn.Module):
    """Crops (N, channels + 1, CROP, CROP): the image, then the region's marks -> class logits (N, K)."""

    def __init__(self, channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.features, self.hidden, size = crop_net.trunk(channels + 1, width)
        self.classes = nn.Linear(size, num_classes)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.classes(self.hidden(self.features(crops)))


def build(arch: dict) -> RegionHead:
    if arch.get("name") != "region-head":
        raise ValueError(f"unknown region head architecture {arch.get('name')!r}")
    return RegionHead(int(arch["channels"]), int(arch["num_classes"]), int(arch["width"]))


def auto_epochs(n_regions: int) -> int:
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(SAMPLE_BUDGET / max(1, n_regions))))


class Objects:
    """The regions of a batch of class-id masks (N, S, S): `ids` (N, S, S) numbers each pixel's
    region (0: background), `owner`, `cls` and `pixels` per region, `frames` (n, 3) the squares
    cut around them (centre x, centre y, side)."""

    def __init__(self, masks: np.ndarray) -> None:
        flat_ids = np.zeros(masks.size, np.int64)
        for c in np.unique(masks[masks > 0]):
            flat_ids += regions.components(masks == c).ravel()  # one class's regions never overlap another's
        found, inverse = np.unique(flat_ids, return_inverse=True)
        has_zero = found.size and found[0] == 0
        region_ids = found[1:] if has_zero else found
        self.ids = (inverse + (0 if has_zero else 1)).reshape(masks.shape).astype(np.int32)  # 1..n, 0 the background
        n, (_, height, width) = len(region_ids), masks.shape
        self.owner = (region_ids - 1) // (height * width)
        self.cls = masks.ravel()[region_ids - 1].astype(np.int64)
        where = np.nonzero(self.ids.ravel())[0]
        label = self.ids.ravel()[where] - 1
        y, x = (where // width) % height, where % width
        self.pixels = np.bincount(label, minlength=n)
        lo_x, hi_x, lo_y, hi_y = (np.full(n, v) for v in (width, -1, height, -1))
        np.minimum.at(lo_x, label, x), np.maximum.at(hi_x, label, x)
        np.minimum.at(lo_y, label, y), np.maximum.at(hi_y, label, y)
        side = np.maximum(np.maximum(hi_x - lo_x + 1, hi_y - lo_y + 1), 2) * CONTEXT
        self.frames = np.stack([(lo_x + hi_x + 1) / 2, (lo_y + hi_y + 1) / 2, side], axis=1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.owner)


def crops(images: torch.Tensor, objects: Objects, which: np.ndarray, frames: np.ndarray | None = None,
          outline: int = 0) -> torch.Tensor:
    """Crops of normalised images (N, C, S, S) around regions `which`: the image's channels and
    the region's marks, grown (outline > 0) or shrunk (< 0) by that many pixels first."""
    owner = torch.from_numpy(objects.owner[which])
    marks = torch.from_numpy(objects.ids[objects.owner[which]] == (which + 1)[:, None, None]).float()[:, None]
    if outline > 0:
        marks = F.max_pool2d(marks, 2 * outline + 1, 1, outline)
    elif outline < 0:
        shrunk = -F.max_pool2d(-marks, -2 * outline + 1, 1, -outline)
        marks = torch.where(shrunk.sum(dim=(1, 2, 3), keepdim=True) > 0, shrunk, marks)
    stacked = torch.cat([images[owner], marks], dim=1)
    frame = torch.from_numpy(objects.frames[which] if frames is None else frames)
    return crop_net.crop(stacked, torch.arange(len(which)), frame)


def training_batch_loss(head: RegionHead, images: torch.Tensor, objects: Objects, which: np.ndarray,
                        rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the head on regions `which`, their outlines and frames perturbed."""
    frames = objects.frames[which].copy()
    frames[:, :2] += rng.uniform(-FRAME_JITTER[0], FRAME_JITTER[0], (len(which), 2)) * frames[:, 2:3]
    frames[:, 2] *= np.exp(rng.uniform(-FRAME_JITTER[1], FRAME_JITTER[1], len(which)))
    x = crops(images, objects, which, frames.astype(np.float32), outline=int(rng.integers(-1, 3)))
    flip = torch.from_numpy(rng.random(len(which)) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    loss = F.cross_entropy(head(x), torch.from_numpy(objects.cls[which] - 1))
    return loss, {"region-class": float(loss.detach())}


def training_objects(masks: np.ndarray) -> tuple[Objects, np.ndarray]:
    """The true masks' regions and which of them are big enough to learn from."""
    objects = Objects(masks)
    return objects, np.nonzero(objects.pixels >= MIN_PIXELS)[0]


@torch.inference_mode()
def relabel(head: RegionHead, images: torch.Tensor, masks: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks (N, S, S) and probabilities (N, K + 1, S, S) after the second look: each region's
    class and its pixels' class probabilities mixed from the head's and the U-Net's."""
    objects = Objects(masks)
    if not len(objects):
        return masks, probs
    head_probs = []
    for start in range(0, len(objects), 4 * BATCH):
        x = crops(images, objects, np.arange(start, min(start + 4 * BATCH, len(objects))))
        head_probs.append(((torch.softmax(head(x), 1) + torch.softmax(head(x.flip(3)), 1)) / 2).numpy())
    k = probs.shape[1] - 1
    inside = objects.ids.ravel() > 0
    label = objects.ids.ravel()[inside] - 1
    flat = np.moveaxis(probs, 1, -1).reshape(-1, k + 1).copy()  # a pixel a row; revised below
    per_pixel = flat[inside]
    votes = np.stack([np.bincount(label, weights=per_pixel[:, c], minlength=len(objects)) for c in range(1, k + 1)], axis=1)
    votes /= np.maximum(votes.sum(axis=1, keepdims=True), 1e-12)
    mixed = np.log(np.concatenate(head_probs) + 1e-6) + MIX * np.log(votes + 1e-6)
    posterior = np.exp(mixed - mixed.max(axis=1, keepdims=True))
    posterior /= posterior.sum(axis=1, keepdims=True)
    out_masks = masks.copy().ravel()
    out_masks[inside] = (posterior.argmax(axis=1) + 1)[label]
    flat[inside, 1:] = posterior[label] * (1.0 - per_pixel[:, :1])
    return out_masks.reshape(masks.shape), np.moveaxis(flat.reshape(probs.shape[0], *probs.shape[2:], k + 1), -1, 1)
