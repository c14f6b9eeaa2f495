"""What tests in several folders share: Fashion-MNIST stand-ins written as the IDX files the
preparers read, so no test downloads anything."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def _write_split(folder: Path, split: str, items: np.ndarray, labels: np.ndarray) -> None:
    _write_idx(folder / f"{split}-images-idx3-ubyte.gz", items, 0x803)
    _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels, 0x801)


@pytest.fixture(scope="session")
def write_fashion_split():
    """write_fashion_split(folder, "train" | "t10k", items (N, 28, 28), labels (N,)): one split's
    image and label files, named as Fashion-MNIST's."""
    return _write_split


@pytest.fixture(scope="session")
def blob_fashion_source(tmp_path_factory) -> Path:
    """40 items (30 train, 10 t10k): bright ellipses of random extent, centred the way
    Fashion-MNIST centres its items, with random classes."""
    folder = tmp_path_factory.mktemp("fashion-blobs")
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:28, 0:28]
    for split, n in (("train", 30), ("t10k", 10)):
        items = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            ry, rx = rng.uniform(5, 13, size=2)
            items[i][((yy - 13.5) / ry) ** 2 + ((xx - 13.5) / rx) ** 2 <= 1] = rng.integers(150, 256)
        _write_split(folder, split, items, rng.integers(0, 10, size=n))
    return folder
