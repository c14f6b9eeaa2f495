"""Turning image bytes into the network's input; the same code runs at training and inference.

Every image is decoded with Pillow, converted to the model's colour mode (grayscale "L" or
"RGB", fixed at training time), resized to a square `image_size` x `image_size` with bilinear
resampling (aspect ratio is not kept) and stored as uint8 (C, H, W). The float conversion,
scaling to [0, 1] and per-channel standardisation with the training set's mean and standard
deviation happen in `network.normalise`. Everything inference needs is in `ImageSpec`, which is
saved in the model folder.
"""

from __future__ import annotations

import io
import statistics
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

Image.MAX_IMAGE_PIXELS = 200_000_000  # large photos are fine; decompression bombs are not

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
MIN_SIZE, MAX_SIZE = 16, 64


@dataclass(frozen=True)
class ImageSpec:
    image_size: int
    channels: int  # 1 (grayscale) or 3 (RGB)
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ImageSpec":
        return cls(int(data["image_size"]), int(data["channels"]), tuple(data["mean"]), tuple(data["std"]))


def open_image(data: bytes) -> Image.Image:
    """The image, opened lazily (header read, pixels not yet decoded)."""
    try:
        return Image.open(io.BytesIO(data))
    except Exception as exc:  # Pillow raises several types (UnidentifiedImageError, OSError, SyntaxError)
        raise ValueError(f"not a decodable image ({exc.__class__.__name__}: {exc})") from None


def header(data: bytes) -> tuple[int, int, bool]:
    """(width, height, is_grayscale) of an encoded image, read from its header only."""
    image = open_image(data)
    return image.width, image.height, image.mode in GRAY_MODES


def choose_geometry(headers: Sequence[tuple[int, int, bool]], image_size: int | None, channels: int | None) -> tuple[int, int]:
    """Image size and channel count: as given, or from the training images' headers.

    Auto size: the median of the images' longer sides, kept within [16, 64] (8x8 digits are
    upsampled to 16, 28x28 stays, photos are reduced to 64). Auto channels: 1 when every image
    is grayscale, else 3.
    """
    if image_size is None:
        sides = [max(w, h) for w, h, _ in headers] or [28]
        image_size = int(min(MAX_SIZE, max(MIN_SIZE, round(statistics.median(sides)))))
    if channels is None:
        channels = 1 if headers and all(gray for _, _, gray in headers) else 3
    return image_size, channels


def _to_mode(image: Image.Image, channels: int) -> Image.Image:
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        arr = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if image.mode == "F" and arr.max(initial=0) <= 1.0:
            top = 1.0
        image = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels over white, not whatever colour they happen to hold.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def decode(data: bytes, image_size: int, channels: int) -> np.ndarray:
    """uint8 array (channels, image_size, image_size)."""
    image = open_image(data)
    try:
        if image.format == "JPEG":
            image.draft("L" if channels == 1 else "RGB", (image_size * 2, image_size * 2))
        image = ImageOps.exif_transpose(image) if image.format in ("JPEG", "TIFF", "WEBP") else image
        image = _to_mode(image, channels)
        if image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=3.0)
        arr = np.asarray(image, dtype=np.uint8)
    except ValueError:
        raise
    except Exception as exc:  # truncated or corrupt pixel data surfaces here
        raise ValueError(f"not a decodable image ({exc.__class__.__name__}: {exc})") from None
    if arr.ndim == 2:
        arr = arr[None, :, :]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W), on the [0, 1] scale."""
    means, stds = [], []
    for c in range(images.shape[1]):
        values = images[:, c].astype(np.float64) / 255.0
        means.append(float(values.mean()))
        stds.append(float(max(values.std(), 1e-3)))
    return tuple(means), tuple(stds)
