"""Serve the semantic segmenter (SageMaker PyTorch inference toolkit handlers).

Batch transform posts `application/jsonlines` (SplitType=Line, BatchStrategy=MultiRecord): each
line an augmented-manifest line whose `source-ref` is `s3://...` or a local path. The answer is
one line per input line, in order:

    {"mask": "<base64 of a PNG>", "confidence": 0.8731,
     "confidences": {"foreground-probability": 0.95, "softmin-pixels": 0.41, ...}}

The mask is a one-channel (mode L) PNG at the image's own width x height whose pixel value is the
class id (0 the background, 1..K the label categories). The network sees the image and its
horizontal mirror (test-time augmentation); the mask is made from their mean class
probabilities (`regions.decode`: foreground where the background is under 0.5, one class an
object), each object's class looked at again by the region head when the model has one
(`region_head.relabel`), and upsampled to the image's size. `confidence` is the candidate
`confidence.DEFAULT`; `confidences` holds every candidate (`confidence.NAMES`), rounded to 1e-4.

Size: a mask's PNG grows with its image and the length of its class boundaries, not with K. A
128x128 mask of a few objects takes a few hundred bytes; `reply_line_bound(width, height)` is the
most any mask can take (the PNG of incompressible class ids), 22.8 kB for a 128x128 image.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from typing import Any

import numpy as np
import torch
from PIL import Image

import confidence
import image_input
import jsonlines_protocol
import model_serving
import region_head
import unet

WEIGHTS_FILE = "model.pt"
HEAD_FILE = "region-head.pt"
BATCH = 32
FRAME_BYTES = 400  # the reply line without its mask: the keys, the confidences and the newline


def reply_line_bound(width: int, height: int) -> int:
    """The longest reply line for a width x height image, whatever its mask: deflate stores what
    it cannot compress, a few bytes a 64 kB block more (zlib's deflateBound), so the PNG is at most
    its W x H class ids, a filter byte a row, that and its chunk headers (under 1/64 more), base64-encoded."""
    raw = (width + 1) * height
    return 4 * math.ceil((raw + raw // 64 + 256) / 3) + FRAME_BYTES


def model_fn(model_dir: str) -> dict[str, Any]:
    folder, config = model_serving.read_config(model_dir, "semantic-segmentation")
    net = model_serving.load_weights(unet.build(config["architecture"]), folder / WEIGHTS_FILE)
    head = None
    if config.get("region_head"):  # models trained without it answer from the U-Net alone
        head = model_serving.load_weights(region_head.build(config["region_head"]), folder / HEAD_FILE).eval()
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return {"net": net.to(device).eval(), "head": head, "input": config["input"], "device": device,
            "background_weight": float(config.get("background_weight", 1.0))}


def input_fn(request_body: bytes | str, request_content_type: str | None) -> list[dict[str, Any]]:
    return jsonlines_protocol.parse_request(request_body, request_content_type)


def full_size_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """The S x S mask at width x height: each class's region upsampled bilinearly (smooth borders,
    not the staircase of nearest neighbour), the pixel going to the class that covers it most."""
    if mask.shape == (height, width):
        return mask
    best = np.full((height, width), -1.0, np.float32)
    out = np.zeros((height, width), np.uint8)
    for c in np.unique(mask):  # one class at a time: a large photo's planes would not fit in memory together
        plane = np.asarray(Image.fromarray((mask == c).astype(np.float32), "F").resize((width, height), Image.Resampling.BILINEAR))
        better = plane > best
        best[better], out[better] = plane[better], c
    return out


def encode_mask(mask: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(mask, "L").save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _answer(mask: np.ndarray, values: dict[str, float], size: tuple[int, int, int]) -> dict[str, Any]:
    values = {name: round(value, 4) for name, value in values.items()}
    width, height, _ = size
    return {"mask": encode_mask(full_size_mask(mask, width, height)), "confidence": values[confidence.DEFAULT], "confidences": values}


def predict_fn(input_object: list[dict[str, Any]], model: dict[str, Any]) -> list[dict[str, Any]]:
    """One {"mask", "confidence", "confidences"} answer per record, in order."""
    if not input_object:
        return []
    spec, net, device = model["input"], model["net"], model["device"]
    loaded = model_serving.request_images(
        input_object, lambda data: image_input.decode_image(data, spec["image_size"], spec["channels"]))
    answers: list[dict[str, Any]] = []
    with torch.inference_mode():
        for start in range(0, len(loaded), BATCH):
            chunk = loaded[start : start + BATCH]
            x = unet.normalise(torch.from_numpy(np.stack([pixels for pixels, _ in chunk])).to(device), spec["mean"], spec["std"])
            plain = unet.probabilities(net(x), model["background_weight"])
            mirrored = unet.probabilities(net(x.flip(3)), model["background_weight"]).flip(3)
            second_look = None
            if model["head"] is not None:
                second_look = functools.partial(region_head.relabel, model["head"], x.cpu())
            masks, values = confidence.assess(plain.cpu().numpy(), mirrored.cpu().numpy(), second_look)
            answers.extend(_answer(mask, v, size) for mask, v, (_, size) in zip(masks, values, chunk))
    return answers


def output_fn(prediction: list[dict[str, Any]], accept: str | None) -> str:
    return model_serving.json_lines(prediction, accept)
