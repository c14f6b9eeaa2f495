"""How several people's masks of one image become one, and how simulated people make masks.

Two simulated annotators (`SemanticSegmentation.simulated_annotators`):
- "clicks" (the default), `click_mask`: the worker page's click tool, clicked as the click
  benchmark clicks (`clicks.clicked`), object by object; it counts its clicks, so a
  simulated run's cost is counted in clicks, and its masks are as good as the proposer makes them.
- "painter", `ragged`: the true mask, its boundaries made ragged as often as it errs; no clicks.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from labelloop.tasks.semantic_segmentation import clicks as segmentation_clicks

# The person stops correcting an object once its proposal reaches this IoU with the object, as the
# click benchmark's clicks-spent table counts (docs/few-clicks.md) ...
STOP_IOU = 0.85
# ... or after this many corrective clicks, taking the proposal as it is (the table's 4 + 5).
MOST_CORRECTIVE = 5
SLIP_SHARE = 0.02  # a slipped click lands up to this share of the image's shorter side off (1 px at least)


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


def true_objects(mask: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(class id, object mask) of each object a person would click: each class's connected regions
    (pixels touching at a corner join), largest first."""
    from scipy import ndimage

    found = []
    for class_id in np.unique(mask):
        if class_id == 0:
            continue
        regions, n = ndimage.label(mask == class_id, structure=np.ones((3, 3), bool))
        found += [(int(class_id), regions == k) for k in range(1, n + 1)]
    return sorted(found, key=lambda o: -int(o[1].sum()))  # stable: equal sizes keep class, then scan order


def click_mask(image: np.ndarray, true: np.ndarray, accuracy: float, rng: np.random.Generator,
               stop: float = STOP_IOU, most: int = MOST_CORRECTIVE) -> tuple[np.ndarray, int]:
    """A simulated person's class map made with the click tool, and the clicks it took.

    Each true object (`true_objects`) gets its four extreme points, then corrective clicks until
    its proposal's IoU with it reaches `stop` or `most` corrective clicks are spent. Objects go
    into the map in turn, a later one covering an earlier one, as on the page: largest first, so a
    small object beside a large one is not covered by the large one's spill. Each click, with
    probability 1 − accuracy, slips: it lands up to SLIP_SHARE of the image's side off in each
    direction. `image`: the item's pixels (H, W) or (H, W, 3), the size of `true`."""
    if image.shape[:2] != true.shape:
        raise ValueError(f"the image is {image.shape[1]} x {image.shape[0]} pixels, "
                         f"its true mask {true.shape[1]} x {true.shape[0]}")
    height, width = true.shape
    reach = max(1, round(SLIP_SHARE * min(height, width)))

    def aim(x: int, y: int) -> tuple[int, int]:
        if rng.random() >= 1.0 - accuracy:
            return x, y
        dx, dy = (int(v) for v in rng.integers(-reach, reach + 1, size=2))
        return min(width - 1, max(0, x + dx)), min(height - 1, max(0, y + dy))

    out = np.zeros_like(true)
    spent = 0
    for class_id, truth in true_objects(true):
        taken = None
        for taken in segmentation_clicks.clicked(image, truth, most, aim=aim):
            if segmentation_clicks.iou(taken.mask, truth) >= stop:
                break
        out[taken.mask] = class_id
        spent += taken.clicks
    return out, spent
