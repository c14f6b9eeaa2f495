"""A second look at one object: its square surroundings cut out of the image, scaled to a small
fixed size, and a small CNN over them. The detector's box head and the segmenter's region head
are both built on it; at a fixed size every object is seen at the same scale, whatever its size
in the image, which is what naming its class needs most."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CROP = 28  # Fashion-MNIST's own size; larger crops cost more than they tell on items this small


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def trunk(channels: int, width: int) -> tuple[nn.Sequential, nn.Sequential, int]:
    """Convolutions over a (N, channels, CROP, CROP) crop and a hidden layer: (features, hidden,
    the hidden layer's size). Heads keep them as their `features` and `hidden` attributes."""
    w = width
    features = nn.Sequential(
        _conv(channels, w), _conv(w, w), nn.MaxPool2d(2),
        _conv(w, 2 * w), _conv(2 * w, 2 * w), nn.MaxPool2d(2),
        _conv(2 * w, 4 * w), nn.AdaptiveAvgPool2d(3),
    )
    hidden = nn.Sequential(nn.Flatten(), nn.Linear(36 * w, 8 * w), nn.ReLU(inplace=True), nn.Dropout(0.3))
    return features, hidden, 8 * w


def crop(images: torch.Tensor, owner: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """Bilinear crops (n, C, CROP, CROP) of square images (N, C, S, S) at frames (n, 3: centre x,
    centre y, side, in pixels) of images `owner`; outside the image, its edge pixels repeat."""
    if not len(frame):
        return images.new_zeros((0, images.shape[1], CROP, CROP))
    size = images.shape[-1]
    theta = torch.zeros((len(frame), 2, 3), dtype=images.dtype)
    theta[:, 0, 0] = frame[:, 2] / size
    theta[:, 1, 1] = frame[:, 2] / size
    theta[:, 0, 2] = 2 * frame[:, 0] / size - 1
    theta[:, 1, 2] = 2 * frame[:, 1] / size - 1
    grid = F.affine_grid(theta, [len(frame), images.shape[1], CROP, CROP], align_corners=False)
    return F.grid_sample(images[owner], grid, mode="bilinear", padding_mode="border", align_corners=False)
