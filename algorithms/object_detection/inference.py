"""Serve the object detector (SageMaker PyTorch inference toolkit handlers).

Batch transform posts `application/jsonlines` (SplitType=Line, BatchStrategy=MultiRecord): each
line an augmented-manifest line whose `source-ref` is `s3://...` or a local path. The answer is
one line per input line, in order:

    {"boxes": [{"class_id": 3, "left": 12.5, "top": 40.25, "width": 30.0, "height": 22.75,
                "score": 0.9132}, ...],
     "image_size": [{"width": 128, "height": 128, "depth": 1}]}

Boxes are in the image's own pixels (clipped to it), best score first, at most `max_boxes`
(20 by default) and none scoring under `min_score` (0.05), so a caller can choose its own
cutoff for what counts as the label and still see the weaker boxes it rejected. Coordinates
are rounded to 0.01 px and scores to 1e-4 to keep replies small (under 2 kB a line).
`image_size` is Ground Truth's, so a caller can write a label without opening the image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import centernet
import image_input
import jsonlines_protocol
import model_serving
import refiner

WEIGHTS_FILE = "model.pt"
HEAD_FILE = "box-head.pt"
BATCH = 64


def model_fn(model_dir: str) -> dict[str, Any]:
    folder, config = model_serving.read_config(model_dir, "object-detection")
    net = model_serving.load_weights(centernet.build(config["architecture"]), folder / WEIGHTS_FILE)
    net.eval()
    head = None
    if config.get("box_head"):
        head = model_serving.load_weights(refiner.build(config["box_head"]), folder / HEAD_FILE)
        head.eval()
    return {"net": net, "head": head, "num_classes": int(config["num_classes"]), "input": config["input"], "decode": config["decode"]}


def input_fn(request_body: bytes | str, request_content_type: str | None) -> list[dict[str, Any]]:
    return jsonlines_protocol.parse_request(request_body, request_content_type)


def _answer(boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, size: tuple[int, int, int], side: int) -> dict:
    width, height, depth = size
    sx, sy = width / side, height / side
    out = []
    for (left, top, w, h), class_id, score in zip(boxes.tolist(), classes.tolist(), scores.tolist()):
        x0, y0 = max(0.0, left * sx), max(0.0, top * sy)
        x1, y1 = min(float(width), (left + w) * sx), min(float(height), (top + h) * sy)
        if x1 - x0 < 0.01 or y1 - y0 < 0.01:
            continue  # nothing of it is inside the image
        out.append({
            "class_id": int(class_id),
            "left": round(x0, 2),
            "top": round(y0, 2),
            "width": round(x1 - x0, 2),
            "height": round(y1 - y0, 2),
            "score": round(float(score), 4),
        })
    return {"boxes": out, "image_size": [{"width": width, "height": height, "depth": depth}]}


def _detect(model: dict[str, Any], images: torch.Tensor, settings: dict) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    top_k, min_score, nms_iou = int(settings["max_boxes"]), float(settings["min_score"]), float(settings["nms_iou"])
    outputs = model["net"](images)
    if model["head"] is None:
        return centernet.decode(outputs, top_k=top_k, min_score=min_score, nms_iou=nms_iou)
    # The head may raise a weak peak's score (objectness x its class probability): candidates
    # are every peak whose objectness alone could still reach min_score.
    found = centernet.peaks(outputs, count=3 * top_k, min_objectness=min_score)
    refined = refiner.refine(model["head"], images, [(b, c, o) for b, c, _, o in found], model["num_classes"])
    return [centernet.select(b, c, s, top_k=top_k, min_score=min_score, nms_iou=nms_iou) for b, c, s in refined]


def predict_fn(input_object: list[dict[str, Any]], model: dict[str, Any]) -> list[dict[str, Any]]:
    """One {"boxes": [...], "image_size": [...]} answer per record, in order."""
    if not input_object:
        return []
    spec, settings = model["input"], model["decode"]
    loaded = model_serving.request_images(
        input_object, lambda data: image_input.decode_image(data, spec["image_size"], spec["channels"]))
    answers: list[dict[str, Any]] = []
    with torch.inference_mode():
        for start in range(0, len(loaded), BATCH):
            chunk = loaded[start : start + BATCH]
            pixels = torch.from_numpy(np.stack([pixels for pixels, _ in chunk]))
            images = centernet.normalise(pixels, spec["mean"], spec["std"])
            decoded = _detect(model, images, settings)
            for (boxes, classes, scores), (_, size) in zip(decoded, chunk):
                answers.append(_answer(boxes, classes, scores, size, spec["image_size"]))
    return answers


def output_fn(prediction: list[dict[str, Any]], accept: str | None) -> str:
    return model_serving.json_lines(prediction, accept)
