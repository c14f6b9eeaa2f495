"""Serve the image classifier (SageMaker PyTorch inference toolkit handlers).

Batch transform posts `application/jsonlines` (SplitType=Line, BatchStrategy=MultiRecord): each
line an augmented-manifest line whose `source-ref` is `s3://...` or a local path. The answer is
one `{"probabilities": [p_0, ..., p_{K-1}]}` line per input line, in order: the softmax of the
logits divided by the temperature fitted at training time. Images are fetched and decoded in a
thread pool and preprocessed exactly as in training (`preprocess.decode`, `network.normaliser`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import jsonlines_protocol
import model_serving
import preprocess
import temperature_scaling
from network import build, fuse_for_inference, normaliser

WEIGHTS_FILE = "model.pt"
BATCH = 256


def model_fn(model_dir: str) -> dict[str, Any]:
    folder, config = model_serving.read_config(model_dir, "image-classification")
    net = model_serving.load_weights(build(config["architecture"]), folder / WEIGHTS_FILE)
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


def predict_fn(input_object: list[dict[str, Any]], model: dict[str, Any]) -> np.ndarray:
    """Class probabilities, shape (N, K), float64, rows summing to 1."""
    spec: preprocess.ImageSpec = model["spec"]
    k = model["num_classes"]
    if not input_object:
        return np.zeros((0, k))
    images = model_serving.request_images(input_object, lambda data: preprocess.decode(data, spec.image_size, spec.channels))
    logits = []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            batch = torch.from_numpy(np.stack(images[start : start + BATCH]))
            logits.append(model["net"](model["normalise"](batch)).float().numpy())
    return temperature_scaling.softmax(np.concatenate(logits), model["temperature"])


def output_fn(prediction: np.ndarray, accept: str | None) -> str:
    return jsonlines_protocol.format_response(prediction, accept)
