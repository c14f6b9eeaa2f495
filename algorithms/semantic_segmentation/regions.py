"""From class probabilities to a mask: what is foreground, and one class per object.

A pixel is foreground when the background is less likely than not (p0 < 0.5), whichever
class is most likely there: a pixel-wise argmax leaves out the pixels whose foreground
probability is split between classes. A foreground pixel keeps its own most likely class when
that class has at least `CONFIDENT` of its foreground probability; the others take the class
with the most probability summed over their 8-connected foreground region. An object the
network is unsure of would otherwise be split between classes, and Ground Truth's image IoU,
per class, pays for every fragment; touching objects told apart with confidence stay apart.
Measured on Fashion-MNIST canvases in docs/benchmarks.md.
"""

from __future__ import annotations

import numpy as np

CONFIDENT = 0.7


def _grow(labels: np.ndarray) -> np.ndarray:
    """Each pixel's largest label in its 3x3 neighbourhood, for (N, H, W) maps (rows, then columns)."""
    rows = labels.copy()
    np.maximum(rows[:, :, 1:], labels[:, :, :-1], out=rows[:, :, 1:])
    np.maximum(rows[:, :, :-1], labels[:, :, 1:], out=rows[:, :, :-1])
    out = rows.copy()
    np.maximum(out[:, 1:], rows[:, :-1], out=out[:, 1:])
    np.maximum(out[:, :-1], rows[:, 1:], out=out[:, :-1])
    return out


def components(foreground: np.ndarray) -> np.ndarray:
    """8-connected regions of boolean (N, H, W) maps: int64 ids, 0 outside; a region's id is the
    largest flat index + 1 of its pixels. Labels spread to neighbours and then jump to the label of
    the pixel they name (pointer jumping), so a region of any length settles in a few dozen steps."""
    inside = foreground.ravel()
    labels = np.where(inside, np.arange(1, inside.size + 1, dtype=np.int64), 0)
    while True:
        grown = (_grow(labels.reshape(foreground.shape)) * foreground).ravel()
        for _ in range(4):
            grown[inside] = grown[grown[inside] - 1]
        if np.array_equal(grown, labels):
            return labels.reshape(foreground.shape)
        labels = grown


def decode(probs: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) class ids from (N, K + 1, H, W) probabilities."""
    foreground = probs[:, 0] < 0.5
    masks = np.zeros(foreground.shape, np.uint8)
    if probs.shape[1] < 2 or not foreground.any():
        return masks
    ids = components(foreground)
    for mask, inside, image_ids, image_probs in zip(masks, foreground, ids, probs):
        if not inside.any():
            continue
        _, region = np.unique(image_ids[inside], return_inverse=True)
        votes = np.stack([np.bincount(region, weights=image_probs[c][inside]) for c in range(1, len(image_probs))], axis=1)
        mask[inside] = (votes.argmax(axis=1) + 1)[region]
        shares = image_probs[1:, inside] / np.maximum(image_probs[1:, inside].sum(axis=0), 1e-12)
        sure = shares.max(axis=0) >= CONFIDENT
        mask[inside] = np.where(sure, shares.argmax(axis=0) + 1, mask[inside])
    return masks
