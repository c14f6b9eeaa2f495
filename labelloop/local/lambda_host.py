"""The Lambda side of the local engine: the handlers of `functions/` imported and called in-process,
with the context Powertools reads, and moto's own log kept off the terminal."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from labelloop.local.sagemaker_jobs import ACCOUNT

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = REPO / "functions"
REGION = "us-east-1"

# Lambda Task state → handler module in functions/ (also the SAM template's function names).
FUNCTIONS = {
    "Bootstrap": "bootstrap",
    "SampleForHumans": "sample_for_humans",
    "MergeHumanLabels": "merge_human_labels",
    "SplitValidation": "split_validation",
    "CalibrateThreshold": "calibrate_threshold",
    "GateAndRoute": "gate_and_route",
    "ExportOutput": "export_output",
}


class EngineError(RuntimeError):
    """The local engine could not run the state machine (not: the execution failed)."""


@dataclass
class LambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 1024
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def function_arn(state: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:labelloop-{state}"


def load_handlers() -> dict[str, Callable]:
    """Import each handler module from functions/ the way Lambda would (its folder on sys.path)."""
    if not FUNCTIONS_DIR.is_dir():
        raise EngineError(f"{FUNCTIONS_DIR} not found: install labelloop from a checkout (pip install -e .)")
    if str(FUNCTIONS_DIR) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS_DIR))
    handlers = {}
    for state, module in FUNCTIONS.items():
        spec = importlib.util.spec_from_file_location(f"labelloop_functions.{module}", FUNCTIONS_DIR / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        handlers[f"labelloop-{state}"] = mod.lambda_handler
    return handlers


@contextlib.contextmanager
def engine_log(path: Path, echo: bool):
    """moto's interpreter logs every failed state with the whole failure event (a few KB of JSON):
    to a file beside the run, and to stderr only when asked (--debug)."""
    log = logging.getLogger("moto")
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")]
    if echo:
        handlers.append(logging.StreamHandler(sys.stderr))
    propagate = log.propagate
    log.propagate = False
    for handler in handlers:
        log.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
        log.propagate = propagate
