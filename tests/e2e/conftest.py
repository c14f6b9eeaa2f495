"""What the image end-to-end tests share: a Fashion-MNIST stand-in small enough to ship with them."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def digits_as_fashion_mnist(tmp_path_factory, write_fashion_split) -> Path:
    """scikit-learn's digits as the IDX files the Fashion-MNIST preparers read: each 8x8 digit grown
    to Fashion-MNIST's 28x28 (centred, 20 px tall), the first 1,500 as `train`, the rest as `t10k`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    items = np.stack([np.pad(np.asarray(Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((20, 20))), 4)
                      for img in digits.images])
    source = tmp_path_factory.mktemp("idx")
    for split, part in (("train", slice(0, 1500)), ("t10k", slice(1500, None))):
        write_fashion_split(source, split, items[part], digits.target[part])
    return source


@pytest.fixture(scope="session")
def training_logs():
    """training_logs(work) -> a local run's training jobs' logs by the name's end (`001-train`, ...)."""
    def read(work: Path) -> dict[str, str]:
        return {path.parent.name[-9:]: path.read_text() for path in (work / "jobs" / "training").glob("*/logs.txt")}
    return read
