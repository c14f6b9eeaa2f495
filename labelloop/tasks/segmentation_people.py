"""How several people's masks of one image become one, and how a simulated painter errs."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def vote(masks: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    """Per-pixel majority of several workers' masks, ties to the lowest class id (background first:
    a pixel half the workers leave out stays out). Confidence: the winners' mean share of the votes
    over the pixels any worker gave a class (1 when none did)."""
    stack = np.stack(masks)
    classes = np.unique(stack)
    counts = np.stack([(stack == c).sum(axis=0) for c in classes])
    winner = classes[counts.argmax(axis=0)]  # argmax takes the first, lowest, class of a tie
    painted = (stack != 0).any(axis=0)
    if not painted.any():
        return winner.astype(np.uint8), 1.0
    share = counts.max(axis=0)[painted] / len(masks)
    return winner.astype(np.uint8), round(float(share.mean()), 2)


def ragged(mask: np.ndarray, flip: float, rng: np.random.Generator) -> np.ndarray:
    """A careless painter's mask: each pixel on a class boundary takes its neighbour's class with
    probability `flip`, so regions erode and dilate at random by about a pixel."""
    out = mask.copy()
    if flip <= 0:
        return out
    padded = np.pad(mask, 1, mode="edge")
    h, w = mask.shape
    for n in rng.permutation(4):
        dy, dx = ((-1, 0), (1, 0), (0, -1), (0, 1))[n]
        neighbour = padded[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
        change = (neighbour != mask) & (out == mask) & (rng.random(mask.shape) < flip)
        out[change] = neighbour[change]
    return out
