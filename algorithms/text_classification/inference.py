"""Serve the text classifier (SageMaker scikit-learn container handlers; no torch).

Batch transform posts `application/jsonlines` (SplitType=Line, BatchStrategy=MultiRecord): each
line an augmented-manifest line with the text in `source` (or an object named by `source-ref`).
The answer is one `{"probabilities": [p_0, ..., p_{K-1}]}` line per input line, in order, with
probability 0 for classes the training data did not have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np

import jsonlines_protocol
import object_loader
from text_model import MODEL_FILE, TextModel, text_of


def model_fn(model_dir: str) -> TextModel:
    return TextModel.from_state(joblib.load(Path(model_dir) / MODEL_FILE))


def input_fn(request_body: bytes | str, request_content_type: str | None) -> list[dict[str, Any]]:
    return jsonlines_protocol.parse_request(request_body, request_content_type)


def _text(item: tuple[int, dict[str, Any]]) -> str:
    number, record = item
    try:
        return text_of(record)
    except (OSError, ValueError) as exc:
        raise ValueError(f"request line {number}: {exc}") from None


def predict_fn(input_object: list[dict[str, Any]], model: TextModel) -> np.ndarray:
    """Class probabilities, shape (N, K), rows summing to 1."""
    items = list(enumerate(input_object, start=1))
    refs = (record.get("source-ref") for record in input_object if "source" not in record)
    texts = object_loader.map_ordered(_text, items, object_loader.workers_for(refs))
    return model.predict_proba(texts)


def output_fn(prediction: np.ndarray, accept: str | None) -> tuple[str, str]:
    # (body, content type): the scikit-learn container sends a bare string as text/html.
    return jsonlines_protocol.format_response(prediction, accept), jsonlines_protocol.response_content_type(accept)
