"""How much to trust a predicted mask: Ground Truth's image IoU, and the image-confidence
candidates the inference script answers for it.

Ground Truth scores a semantic-segmentation label by the mean, over the classes present in either
mask (background excluded), of each class's IoU (`image_iou`). The candidates estimate that
number for a prediction without its reference. Each is computed at the network's resolution
from the class probabilities (K + 1, S, S) of the image (`plain`) and of its horizontal mirror
(mirrored back, `mirrored`), and their mean (`probs`), from which `regions.decode` makes the
mask. A pixel's probability below is that of the class the mask gives it:

- `foreground-probability`: the mean pixel probability over the mask's foreground (over all
  pixels when it has none);
- `softmin-pixels`: a soft minimum of the pixel probabilities (temperature `SOFTMIN_T`; Lad &
  Mueller 2023 found it best at flagging bad segmentation labels);
- `softmin-classes`: a soft minimum over the mask's classes of their mean pixel probability;
- `expected-iou`: the per-class IoU the probabilities expect of the prediction (expected
  intersection over expected union), averaged over the predicted classes, and over the classes
  predicted nowhere but probable somewhere (an expected IoU of 0, weighted by how probable);
- `flip-agreement`: `image_iou` of the masks predicted for the image and for its mirror
  (test-time augmentation);
- `expected-iou-x-flip`: the product of the last two.

`DEFAULT` is the one answered as the image's confidence (chosen in bench/segmenter_study.py).
"""

from __future__ import annotations

import numpy as np

import regions

DEFAULT = "expected-iou"
SOFTMIN_T = 0.1
NAMES = ("foreground-probability", "softmin-pixels", "softmin-classes", "expected-iou", "flip-agreement", "expected-iou-x-flip")


def image_iou(predicted: np.ndarray, reference: np.ndarray) -> float:
    """Ground Truth's IoU of two class-id masks: per class present in either (0, the background,
    excluded), intersection over union, averaged; two masks of background only agree fully."""
    classes = np.union1d(np.unique(predicted), np.unique(reference))
    classes = classes[classes > 0]
    if not len(classes):
        return 1.0
    values = []
    for c in classes:
        p, r = predicted == c, reference == c
        values.append(np.logical_and(p, r).sum() / np.logical_or(p, r).sum())
    return float(np.mean(values))


def _softmin(values: np.ndarray) -> float:
    weights = np.exp(-(values - values.min()) / SOFTMIN_T)
    return float((values * weights).sum() / weights.sum())


def _expected_iou(probs: np.ndarray, predicted: np.ndarray) -> float:
    scores, weights = [], []
    for c in range(1, probs.shape[0]):
        mine = predicted == c
        if mine.any():
            inter = float(probs[c][mine].sum())
            scores.append(inter / (float(mine.sum()) + float(probs[c][~mine].sum())))
            weights.append(1.0)
        else:
            # Predicted nowhere (under 0.5 everywhere): if the class is there after all, its IoU is 0.
            weights.append(min(1.0, 2.0 * float(probs[c].max(initial=0.0))))
            scores.append(0.0)
    if not (predicted > 0).any():  # the empty mask: as good as no class is anywhere probable
        return 1.0 - float(probs[1:].max(initial=0.0))
    return float(np.dot(scores, weights) / sum(weights))


def assess(plain: np.ndarray, mirrored: np.ndarray, second_look=None) -> tuple[np.ndarray, list[dict[str, float]]]:
    """For a batch (N, K + 1, S, S) of both: the masks (uint8 class ids, N x S x S) and, per
    image, every candidate's value, each in [0, 1]. `second_look(masks, probs)`, when given,
    returns them revised (the region head's classes) before the candidates are computed."""
    probs = (plain + mirrored) / 2
    masks = regions.decode(probs)
    if second_look is not None:
        masks, probs = second_look(masks, probs)
    flips = [image_iou(a, b) for a, b in zip(regions.decode(plain), regions.decode(mirrored))]
    return masks, [_candidates(p, m, flip) for p, m, flip in zip(probs, masks, flips)]


def _candidates(probs: np.ndarray, predicted: np.ndarray, flip: float) -> dict[str, float]:
    mine = np.take_along_axis(probs, predicted[None].astype(np.int64), axis=0)[0]
    foreground = predicted > 0
    per_class = [float(mine[predicted == c].mean()) for c in np.unique(predicted[foreground])]
    expected = _expected_iou(probs, predicted)
    values = {
        "foreground-probability": float(mine[foreground].mean()) if foreground.any() else float(mine.mean()),
        "softmin-pixels": _softmin(mine.ravel().astype(np.float64)),
        "softmin-classes": _softmin(np.array(per_class)) if per_class else float(mine.mean()),
        "expected-iou": expected,
        "flip-agreement": flip,
        "expected-iou-x-flip": expected * flip,
    }
    return {name: min(1.0, max(0.0, value)) for name, value in values.items()}
