"""SageMaker script-mode plumbing shared by the training scripts.

- where things are: `model_dir()` (SM_MODEL_DIR), `num_cpus()` (SM_NUM_CPUS);
- failing the way SageMaker expects: `run(main)` calls `main()`, and on an exception writes
  the reason to the failure file (SM_OUTPUT_FAILURE if set, else /opt/ml/output/failure when
  /opt/ml/output exists), prints the traceback and exits with status 1. SageMaker shows the
  failure file's content as the training job's FailureReason;
- `metric(name, value)` prints `name=value`, the form the job's metric regexes match.
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

DEFAULT_FAILURE_FILE = "/opt/ml/output/failure"
DEFAULT_MODEL_DIR = "/opt/ml/model"


def model_dir() -> Path:
    path = Path(os.environ.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def bundle_inference_code(out: Path) -> None:
    """Copy this source dir into `<model>/code/`.

    SageMaker's PyTorch 2.x inference containers (TorchServe) load `code/inference.py` from
    model.tar.gz rather than downloading SAGEMAKER_SUBMIT_DIRECTORY, so the model carries its
    code; the scikit-learn container reads either.
    """
    import shutil

    source = Path(__file__).resolve().parent
    target = out / "code"
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.py")):
        shutil.copyfile(path, target / path.name)


def num_cpus() -> int:
    value = os.environ.get("SM_NUM_CPUS")
    try:
        return max(1, int(value)) if value else max(1, os.cpu_count() or 1)
    except ValueError:
        return max(1, os.cpu_count() or 1)


def failure_file() -> Path | None:
    configured = os.environ.get("SM_OUTPUT_FAILURE")
    if configured:
        return Path(configured)
    default = Path(DEFAULT_FAILURE_FILE)
    return default if default.parent.is_dir() else None


def write_failure(message: str) -> None:
    path = failure_file()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # FailureReason is capped at 1,024 characters; keep the start, which names the problem.
        path.write_text(message[:1000] + ("\n" if not message.endswith("\n") else ""), encoding="utf-8")
    except OSError as exc:
        print(f"cannot write failure file {path}: {exc}", file=sys.stderr)


def seed_python(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np  # noqa: PLC0415

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


def log(message: str) -> None:
    print(message, flush=True)


def metric(name: str, value: float) -> None:
    print(f"{name}={value:.4f}", flush=True)


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def run(main: Callable[[], None]) -> None:
    """Run a training entry point; any exception becomes a failure file and exit status 1."""
    try:
        main()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001  (the job must fail with a reason, whatever happened)
        traceback.print_exc()
        reason = str(exc) or exc.__class__.__name__
        if not isinstance(exc, ValueError):  # ours are ValueErrors with a full sentence; others need their type
            reason = f"{exc.__class__.__name__}: {reason}"
        write_failure(reason)
        print(f"training failed: {reason}", file=sys.stderr, flush=True)
        sys.exit(1)


def finish_model(out: Path, config_file: str, config: dict, seconds: float) -> None:
    """Write the model's config beside its weights, bundle the inference code, and say so."""
    import json

    (out / config_file).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    bundle_inference_code(out)
    log(f"model written to {out} in {seconds:.1f}s")


def entry_point(train: Callable[[dict], None], specs: list, argv: list[str] | None) -> None:
    """A training script's main: hyperparameters from the command line (or SM_HPS), failures as SageMaker expects."""
    import hyperparameters as hp

    run(lambda: train(hp.parse(specs, sys.argv[1:] if argv is None else argv)))
