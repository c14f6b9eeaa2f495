"""scikit-learn's 8x8 handwritten digits (1,797 images, bundled with scikit-learn) as a
Ground Truth image-classification input manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labelloop.datasets.common import PreparedDataset, seeded_subset, write_dataset, write_images

CLASS_NAMES = [str(digit) for digit in range(10)]
TASK_TYPE = "image-classification"


def prepare_digits(out: Path, limit: int | None = None, seed: int = 0) -> PreparedDataset:
    """Write the digits (all, or a seeded random subset of `limit`) into `out` as 8x8 PNGs."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are counts 0..16; stretch them to the full 0..255 grayscale range.
    images = np.rint(np.asarray(digits.images, dtype=np.float64) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    targets = np.asarray(digits.target, dtype=np.int64)
    keep = seeded_subset(len(images), limit, seed)
    paths = write_images(Path(out), images[keep])
    lines = [{"source-ref": str(path)} for path in paths]
    labels = [CLASS_NAMES[target] for target in targets[keep]]
    return write_dataset(Path(out), lines, labels, class_names=CLASS_NAMES, task_type=TASK_TYPE)
