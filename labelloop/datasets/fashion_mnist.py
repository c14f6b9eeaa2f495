"""Fashion-MNIST (70,000 28x28 grayscale images in 10 classes) from its IDX gz files as a
Ground Truth image-classification input manifest."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from labelloop.datasets.common import PreparedDataset, seeded_subset, write_dataset, write_images

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
TASK_TYPE = "image-classification"
SPLITS = ("train", "t10k")  # train (60,000) then test (10,000)
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

# IDX type codes (third byte of the magic number) and the big-endian numpy types they mean.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_HOW_TO_GET = (
    "get it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; installs into "
    f"{DEFAULT_SOURCE}), or pass --source with a folder holding the four files "
    + ", ".join(f"{split}-{kind}-ubyte.gz" for split in SPLITS for kind in ("images-idx3", "labels-idx1"))
    + " (from https://github.com/zalandoresearch/fashion-mnist)"
)


class IdxFormatError(ValueError):
    """An IDX file is malformed or not the kind expected; the message names the file."""


def parse_idx(data: bytes, name: str = "<bytes>", expected_magic: int | None = None) -> np.ndarray:
    """Parse an (uncompressed) IDX file: 2 zero bytes, a type code, the number of dimensions,
    one big-endian uint32 per dimension, then the values in row-major order."""
    if len(data) < 4:
        raise IdxFormatError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise IdxFormatError(
            f"{name}: bad magic number 0x{magic:08x}, expected 0x{expected_magic:08x}; not the IDX file expected"
        )
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise IdxFormatError(f"{name}: bad magic number 0x{magic:08x}; not an IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise IdxFormatError(f"{name}: truncated or invalid header ({ndim} dimensions, {len(data)} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        raise IdxFormatError(
            f"{name}: header says shape {shape} ({expected} bytes of data) but the file holds {actual} bytes"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def read_idx_gz(path: Path, expected_magic: int | None = None) -> np.ndarray:
    """Read a gzip-compressed IDX file."""
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxFormatError(f"{path}: not a readable gzip file ({exc})") from None
    return parse_idx(data, str(path), expected_magic)


def load_fashion_mnist(source: Path = DEFAULT_SOURCE) -> tuple[np.ndarray, np.ndarray]:
    """All images (n, 28, 28) uint8 and labels (n,) uint8: train, then test."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder {source} not found: {_HOW_TO_GET}")
    files = {(split, kind): source / f"{split}-{kind}-ubyte.gz" for split in SPLITS for kind in ("images-idx3", "labels-idx1")}
    missing = [path.name for path in files.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"Fashion-MNIST folder {source} lacks {', '.join(missing)}: {_HOW_TO_GET}")
    all_images, all_labels = [], []
    for split in SPLITS:
        images_path, labels_path = files[(split, "images-idx3")], files[(split, "labels-idx1")]
        images = read_idx_gz(images_path, IMAGES_MAGIC)
        labels = read_idx_gz(labels_path, LABELS_MAGIC)
        if images.shape[1:] != (28, 28):
            raise IdxFormatError(f"{images_path}: images are {images.shape[1:]}, expected 28x28")
        if len(images) != len(labels):
            raise IdxFormatError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
        if len(labels) and int(labels.max()) >= len(CLASS_NAMES):
            raise IdxFormatError(f"{labels_path}: label {int(labels.max())} is out of range 0..{len(CLASS_NAMES) - 1}")
        all_images.append(images)
        all_labels.append(labels)
    return np.concatenate(all_images), np.concatenate(all_labels)


def prepare_fashion_mnist(
    out: Path,
    source: Path = DEFAULT_SOURCE,
    limit: int | None = None,
    seed: int = 0,
) -> PreparedDataset:
    """Write Fashion-MNIST (all 70,000, or a seeded random subset of `limit`) into `out`."""
    images, targets = load_fashion_mnist(Path(source))
    keep = seeded_subset(len(images), limit, seed)
    paths = write_images(Path(out), np.ascontiguousarray(images[keep]))
    lines = [{"source-ref": str(path)} for path in paths]
    labels = [CLASS_NAMES[target] for target in targets[keep]]
    return write_dataset(Path(out), lines, labels, class_names=CLASS_NAMES, task_type=TASK_TYPE)
