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
from scipy import ndimage

CONFIDENT = 0.7


# scipy ships in SageMaker's PyTorch training and inference containers (both install it with numpy).
_EIGHT_CONNECTED = np.zeros((3, 3, 3), bool)
_EIGHT_CONNECTED[1] = True  # neighbours within one image of the stack, never across images


def components(foreground: np.ndarray) -> np.ndarray:
    """8-connected regions of boolean (N, H, W) maps: int64 ids, 0 outside; a region's id is the
    largest flat index + 1 of its pixels, so an id also says which image and pixel it comes from."""
    labels, count = ndimage.label(foreground, structure=_EIGHT_CONNECTED)
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    last = np.zeros(count + 1, np.int64)
    np.maximum.at(last, flat[where], where)
    out = np.zeros(flat.size, np.int64)
    out[where] = last[flat[where]] + 1
    return out.reshape(foreground.shape)


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
