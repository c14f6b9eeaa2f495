"""Shared by the run report's tests: files written in the loop's layout, iteration metrics, embedded images."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (dict, list)) and path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in data))


def metrics(it: int, human: int, human_new: int, auto: int, auto_new: int, remaining: int, threshold, acc, stop=None) -> dict:
    return {"Iteration": it, "HumanLabeled": human, "HumanLabeledThisIteration": human_new, "HumanCost": human * 0.2,
            "AutoLabeled": auto, "AutoLabeledThisIteration": auto_new, "Remaining": remaining, "Threshold": threshold,
            "CalibrationMethod": "lower-bound", "LowerBound": None if threshold is None else 0.951,
            "Support": 0 if threshold is None else 40, "ValidationAccuracy": acc, "ValidationCount": 10,
            "ValidationRetired": 0, "TrainCount": 10, "NextHumanBatch": 0 if stop else 4, "StopReason": stop}


def embedded_images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]
