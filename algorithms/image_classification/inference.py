"""Serve the image classifier (SageMaker PyTorch inference toolkit handlers).

Batch transform posts `application/jsonlines` (SplitType=Line, BatchStrategy=MultiRecord): each
line an augmented-manifest line whose `source-ref` is `s3://...` or a local path. The answer is
one `{"probabilities": [p_0, ..., p_{K-1}]}` line per input line, in order: the softmax of the
logits divided by the temperature fitted at training time. Images are fetched and decoded in a
thread pool and preprocessed exactly as in training (`preprocess.decode`, `network.normaliser`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

import jsonlines_protocol
import object_loader
import preprocess
import temperature_scaling
from network import build, fuse_for_inference, normaliser

CONFIG_FILE = "model-config.json"
WEIGHTS_FILE = "model.pt"
BATCH = 256


def model_fn(model_dir: str) -> dict[str, Any]:
    folder = Path(model_dir)
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if config.get("task") != "image-classification":
        raise ValueError(f"{folder / CONFIG_FILE} is not an image-classification model")
    net = build(config["architecture"])
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    spec = preprocess.ImageSpec.from_json(config["image"])
    return {
        "net": fuse_for_inference(net),
        "spec": spec,
        "normalise": normaliser(spec.mean, spec.std),
        "temperature": float(config.get("temperature") or 1.0),
        "num_classes": int(config["num_classes"]),
    }


def input_fn(request_body: bytes | str, request_content_type: str | None) -> list[dict[str, Any]]:
    return jsonlines_protocol.parse_request(request_body, request_content_type)


def _load(item: tuple[int, dict[str, Any]], spec: preprocess.ImageSpec) -> np.ndarray:
    number, record = item
    ref = record.get("source-ref")
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"request line {number}: missing 'source-ref' (the image's s3:// URI or file path)")
    try:
        return preprocess.decode(object_loader.read_bytes(ref), spec.image_size, spec.channels)
    except (OSError, ValueError) as exc:
        raise ValueError(f"request line {number}: cannot use image {ref}: {exc}") from None


def predict_fn(input_object: list[dict[str, Any]], model: dict[str, Any]) -> np.ndarray:
    """Class probabilities, shape (N, K), float64, rows summing to 1."""
    spec: preprocess.ImageSpec = model["spec"]
    k = model["num_classes"]
    if not input_object:
        return np.zeros((0, k))
    workers = object_loader.workers_for(record.get("source-ref") for record in input_object)
    images = object_loader.map_ordered(lambda item: _load(item, spec), list(enumerate(input_object, start=1)), workers)
    logits = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            batch = torch.from_numpy(np.stack(images[start : start + BATCH]))
            logits.append(model["net"](model["normalise"](batch)).float().numpy())
    return temperature_scaling.softmax(np.concatenate(logits), model["temperature"])


def output_fn(prediction: np.ndarray, accept: str | None) -> str:
    return jsonlines_protocol.format_response(prediction, accept)
