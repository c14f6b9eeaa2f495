"""How long and at what pace the training scripts train: the auto epoch count and the one-cycle
learning-rate schedule they share."""

from __future__ import annotations

import math


def auto_epochs(n: int, batch_size: int, *, target_steps: int, min_epochs: int, max_epochs: int, sample_budget: int) -> int:
    """Epochs that give about `target_steps` optimiser steps (within [min_epochs, max_epochs]),
    cut so that training visits not many more than `sample_budget` images in all (at least 3 epochs)."""
    steps_per_epoch = max(1, n // batch_size)
    epochs = min(max_epochs, max(min_epochs, math.ceil(target_steps / steps_per_epoch)))
    return max(3, min(epochs, math.ceil(sample_budget / max(1, n))))


def one_cycle(total_steps: int, warmup_share: float):
    """Learning-rate factor per step: linear warm-up from 1/25 over the first `warmup_share` of
    the steps, then cosine decay to ~0. Works for any number of steps, even 1."""
    warmup = max(1, int(warmup_share * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return 0.04 + 0.96 * step / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 1e-3 + (1.0 - 1e-3) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
