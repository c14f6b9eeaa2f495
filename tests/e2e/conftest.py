"""What the image end-to-end tests share: a Fashion-MNIST stand-in small enough to ship with them."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def digits_as_fashion_mnist(tmp_path_factory) -> Path:
    """scikit-learn's digits as the IDX files the Fashion-MNIST preparers read: each 8x8 digit grown
    to Fashion-MNIST's 28x28 (centred, 20 px tall), the first 1,500 as `train`, the rest as `t10k`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    items = np.stack([np.pad(np.asarray(Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((20, 20))), 4)
                      for img in digits.images])
    source = tmp_path_factory.mktemp("idx")
    for split, part in (("train", slice(0, 1500)), ("t10k", slice(1500, None))):
        _idx(source / f"{split}-images-idx3-ubyte.gz", items[part], 0x803)
        _idx(source / f"{split}-labels-idx1-ubyte.gz", digits.target[part], 0x801)
    return source


@pytest.fixture(scope="session")
def training_logs():
    """training_logs(work) -> a local run's training jobs' logs by the name's end (`001-train`, ...)."""
    def read(work: Path) -> dict[str, str]:
        return {path.parent.name[-9:]: path.read_text() for path in (work / "jobs" / "training").glob("*/logs.txt")}
    return read
