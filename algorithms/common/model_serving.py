"""What the inference scripts of the image tasks share: reading a trained model's files and the
images a request names, and writing the JSON Lines answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

import jsonlines_protocol
import object_loader

CONFIG_FILE = "model-config.json"
T = TypeVar("T")


def read_config(model_dir: str, task: str) -> tuple[Path, dict[str, Any]]:
    """The model folder and its config, refused when the model was trained for another task."""
    folder = Path(model_dir)
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if config.get("task") != task:
        article = "an" if task[0] in "aeiou" else "a"
        raise ValueError(f"{folder / CONFIG_FILE} is not {article} {task} model")
    return folder, config


def load_weights(net: torch.nn.Module, path: Path) -> torch.nn.Module:
    """`net` with the state dict saved at `path` (tensors only: a model file runs no code)."""
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net


def request_images(records: list[dict[str, Any]], decode: Callable[[bytes], T]) -> list[T]:
    """Each record's `source-ref` image, read in a thread pool and decoded, in order; an error
    names the request line (from 1) and the image."""

    def one(item: tuple[int, dict[str, Any]]) -> T:
        number, record = item
        ref = record.get("source-ref")
        if not isinstance(ref, str) or not ref:
            raise ValueError(f"request line {number}: missing 'source-ref' (the image's s3:// URI or file path)")
        try:
            return decode(object_loader.read_bytes(ref))
        except (OSError, ValueError) as exc:
            raise ValueError(f"request line {number}: cannot use image {ref}: {exc}") from None

    workers = object_loader.workers_for(record.get("source-ref") for record in records)
    return object_loader.map_ordered(one, list(enumerate(records, start=1)), workers)


def json_lines(answers: list[dict[str, Any]], accept: str | None) -> str:
    """One compact JSON line per answer, once `accept` is a type the protocol can answer."""
    jsonlines_protocol.response_content_type(accept)
    return "".join(json.dumps(answer, separators=(",", ":")) + "\n" for answer in answers)
