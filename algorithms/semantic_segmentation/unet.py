"""A small U-Net (Ronneberger et al., 2015) for semantic segmentation at low cost.

The encoder starts at stride 2 (full-resolution convolutions are most of a U-Net's cost, and
objects of 20+ px lose little at half resolution) and goes down to stride 16, whose receptive
field spans most of a 128x128 input; the decoder comes back to stride 2 through skip
connections, and the class logits are upsampled bilinearly to the input's size. About 0.3 M
parameters at width 16: it trains on one CPU core in minutes on a few hundred images.

The loss is pixel cross-entropy, background pixels weighted down (`background_weight`), plus a
soft Dice term over the foreground classes: Ground Truth scores a mask by its per-class IoU, and
on a canvas that is nine tenths background plain cross-entropy mostly teaches what is
background, not which class an object is (on Fashion-MNIST canvases a weight of 0.25 doubled
the pixels given their right class: docs/benchmarks.md). `probabilities` undoes the weighting's
bias toward the foreground, so the answered probabilities, and the confidences made of them,
estimate the real odds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NAME = "unet-small"


def architecture(channels: int, num_classes: int, image_size: int, width: int) -> dict:
    """`num_classes` foreground classes; the network has one more output, the background (class 0)."""
    if image_size % 16:
        raise ValueError(f"image-size must be a multiple of 16, got {image_size}")
    return {"name": NAME, "channels": channels, "num_classes": num_classes, "image_size": image_size, "width": width}


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.level2 = nn.Sequential(_block(channels, w, 2), _block(w, w))
        self.level4 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))
        self.level8 = nn.Sequential(_block(2 * w, 3 * w, 2), _block(3 * w, 3 * w))
        self.level16 = nn.Sequential(_block(3 * w, 4 * w, 2), _block(4 * w, 4 * w))
        self.up8 = _block(7 * w, 3 * w)
        self.up4 = _block(5 * w, 2 * w)
        self.up2 = _block(3 * w, w)
        self.head = nn.Conv2d(w, num_classes + 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s2 = self.level2(x)
        s4 = self.level4(s2)
        s8 = self.level8(s4)
        s16 = self.level16(s8)

        def up(low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            return torch.cat([F.interpolate(low, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1)

        d2 = self.up2(up(self.up4(up(self.up8(up(s16, s8)), s4)), s2))
        return F.interpolate(self.head(d2), size=x.shape[-2:], mode="bilinear", align_corners=False)


def build(arch: dict) -> UNet:
    if arch.get("name") != NAME:
        raise ValueError(f"unknown segmentation architecture {arch.get('name')!r}")
    return UNet(int(arch["channels"]), int(arch["num_classes"]), int(arch["width"]))


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8-valued (N, C, S, S) pixels -> standardised floats, with the training set's statistics."""
    m = torch.tensor(mean, dtype=torch.float32, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=torch.float32, device=x.device)[None, :, None, None]
    return (x.to(torch.float32) / 255.0 - m) / s


def probabilities(logits: torch.Tensor, background_weight: float) -> torch.Tensor:
    """Class probabilities (N, K + 1, H, W), the background's given back the odds that weighting it
    down in training took away (the prior correction for a weighted loss)."""
    shift = torch.zeros(logits.shape[1], device=logits.device)
    shift[0] = -math.log(background_weight)
    return torch.softmax(logits.float() + shift[None, :, None, None], dim=1)


def loss(logits: torch.Tensor, target: torch.Tensor, background_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy plus soft Dice (1 - Dice per foreground class over the batch, averaged over
    the classes the batch holds: an absent class's Dice would only punish any probability for it,
    which cross-entropy does already)."""
    weight = torch.ones(logits.shape[1], device=logits.device)
    weight[0] = background_weight
    ce = F.cross_entropy(logits, target, weight=weight)
    probs = torch.softmax(logits.float(), dim=1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    truth = onehot.sum(dim=(0, 2, 3))
    present = truth > 0
    dice = (1.0 - (2.0 * inter + 1.0) / (probs.sum(dim=(0, 2, 3)) + truth + 1.0))[present]
    dice = dice.mean() if len(dice) else ce.new_zeros(())
    return ce + dice, {"ce": float(ce.detach()), "dice": float(dice.detach())}
