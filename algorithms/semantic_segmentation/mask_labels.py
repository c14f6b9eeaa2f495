"""Ground Truth semantic-segmentation labels: reading and checking them.

A labeled line names its mask beside its image, and may describe the classes:

    {"source-ref": "s3://bucket/img.png",
     "label-ref": "s3://bucket/masks/img.png",
     "label-ref-metadata": {"internal-color-map": {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
                                                   "1": {"class-name": "shirt", "hex-color": "#2ca02c"}}, ...}}

The mask's reference is an s3:// URI, a file path or a data: URL holding the PNG (labelloop's
training channels carry masks inline). The label attribute is `label-ref` here, as Ground Truth
names it; given as `label`, the mask is read from `label` or else `label-ref` (and the metadata
from `<key>-metadata` or `label-metadata`).

Class ids follow Ground Truth: 0 is the background and the label categories are 1..K, so
`num-classes` is K (the label category config's length) and the network has K + 1 outputs. The
mask is a PNG the size of the image: one channel (mode L or P) whose pixel value is the class
id, or RGB(A) whose colours are the metadata's `hex-color`s (each colour then maps to its
class). Anything else is a ValueError saying what is wrong, which the training script prefixes
with the channel, file and line.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = 200_000_000


def mask_keys(label_attribute: str) -> tuple[str, ...]:
    """The keys that may name a line's mask, in order: the attribute itself (Ground Truth's
    LabelAttributeName of a segmentation job ends in `-ref`) and, when it does not end so, `<attr>-ref`."""
    return (label_attribute,) if label_attribute.endswith("-ref") else (label_attribute, f"{label_attribute}-ref")


def metadata_of(line: dict[str, Any], key: str) -> Any:
    """The metadata beside the mask named by `key`: `<key>-metadata`, else (`<attr>-ref`) `<attr>-metadata`."""
    for name in (f"{key}-metadata", f"{key.removesuffix('-ref')}-metadata"):
        if name in line:
            return line[name]
    return None


def parse_mask_ref(value: Any, num_classes: int) -> str:
    """The mask's reference, as `manifest_channels.read_channel`'s `parse`."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected the mask's s3:// URI, file path or data: URL, got {str(value)[:80]!r}")
    return value


def color_map(metadata: Any, num_classes: int) -> dict[int, str | None]:
    """Class id -> hex colour (None when it has none) from the line's metadata; {} without one."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be an object, got {str(metadata)[:80]}")
    entries = metadata.get("internal-color-map")
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise ValueError(f"internal-color-map must be an object keyed by class id, got {str(entries)[:80]}")
    out: dict[int, str | None] = {}
    for key, entry in entries.items():
        if not str(key).isdigit():
            raise ValueError(f"internal-color-map key {key!r} is not a class id")
        if int(key) > num_classes:
            raise ValueError(
                f"internal-color-map has class {int(key)}, out of range for num-classes={num_classes} "
                f"(class ids 0..{num_classes}, 0 the background)"
            )
        color = entry.get("hex-color") if isinstance(entry, dict) else None
        out[int(key)] = color.lower() if isinstance(color, str) else None
    return out


def _from_colors(rgb: np.ndarray, colors: dict[int, str | None]) -> np.ndarray:
    by_color = {}
    for class_id, color in colors.items():
        if color and len(color) == 7 and color.startswith("#"):
            by_color[int(color[1:], 16)] = class_id
    if not by_color:
        raise ValueError("is an RGB image but the metadata's internal-color-map gives no hex-color to read it by")
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    values, inverse = np.unique(packed, return_inverse=True)
    unknown = [f"#{v:06x}" for v in values if int(v) not in by_color]
    if unknown:
        raise ValueError(f"has colours not in the internal-color-map: {', '.join(unknown[:5])}")
    lookup = np.array([by_color[int(v)] for v in values], dtype=np.uint8)
    return lookup[inverse].reshape(packed.shape)


def decode_mask(data: bytes, num_classes: int, colors: dict[int, str | None]) -> np.ndarray:
    """The mask's class ids, uint8 (height, width), checked to lie in 0..num_classes."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # Pillow raises several types for undecodable or truncated data
        raise ValueError(f"is not a decodable image ({exc.__class__.__name__}: {exc})") from None
    if image.mode in ("L", "P"):
        ids = np.asarray(image, dtype=np.uint8)
    elif image.mode in ("RGB", "RGBA"):
        ids = _from_colors(np.asarray(image.convert("RGB")), colors)
    else:
        raise ValueError(f"is a mode {image.mode} image; expected a one-channel PNG (mode L or P) whose pixel values are class ids")
    top = int(ids.max(initial=0))
    if top > num_classes:
        bad = sorted(int(v) for v in np.unique(ids) if v > num_classes)
        raise ValueError(
            f"has class ids {bad[:5]} out of range for num-classes={num_classes} (class ids 0..{num_classes}, 0 the background)"
        )
    return ids


def resize_mask(ids: np.ndarray, size: int) -> np.ndarray:
    """The class ids at size x size (nearest neighbour: no class is invented at a border)."""
    if ids.shape == (size, size):
        return ids
    return np.asarray(Image.fromarray(ids, "L").resize((size, size), Image.Resampling.NEAREST), dtype=np.uint8)
