"""Decoding an image for a network that takes square inputs (detection, segmentation)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

Image.MAX_IMAGE_PIXELS = 200_000_000  # large photos are fine; decompression bombs are not


def decode_image(data: bytes, image_size: int, channels: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    """uint8 (channels, image_size, image_size), stretched to the square (aspect not kept; labels
    are scaled per axis), and the image's own (width, height, depth)."""
    try:
        image = Image.open(io.BytesIO(data))
        image = ImageOps.exif_transpose(image) if image.format in ("JPEG", "TIFF", "WEBP") else image
        depth = 1 if image.mode in ("1", "L", "I", "I;16", "F") else (4 if "A" in image.mode else 3)
        size = (image.width, image.height, depth)
        if image.mode in ("I", "I;16", "F"):
            arr = np.asarray(image, dtype=np.float32)
            image = Image.fromarray(np.clip(arr * (255.0 / max(1.0, float(arr.max(initial=0)))), 0, 255).astype(np.uint8))
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (image_size, image_size):
            image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
        arr = np.asarray(image, dtype=np.uint8)
    except Exception as exc:  # Pillow raises several types for undecodable or truncated data
        raise ValueError(f"not a decodable image ({exc.__class__.__name__}: {exc})") from None
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr), size
