"""Shared by the algorithm script tests: a source dir extracted, train.py run as SageMaker runs it, a transform."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from labelloop.algorithm_source import TRAIN_PROGRAM, package_source

TRAIN_TIMEOUT = 240


def extract_source(task_type: str, workdir: Path) -> Path:
    archive = package_source(task_type, workdir / "package")
    src = workdir / "src"
    src.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    return src


def import_from(src: Path, module: str) -> ModuleType:
    """Import `module` from an extracted source dir under a unique name, as a serving container
    would (its folder on sys.path), without leaving its top-level modules in sys.modules."""
    local = {p.stem for p in src.glob("*.py")}
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name in local}
    sys.path.insert(0, str(src))
    try:
        alias = f"_labelloop_{module}_{hashlib.md5(str(src).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(alias, src / f"{module}.py")
        assert spec and spec.loader
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[alias] = loaded  # dataclasses look their module up while the class is made
        spec.loader.exec_module(loaded)
        return loaded
    finally:
        sys.path.remove(str(src))
        for name in local:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def write_channel(folder: Path, lines: list[dict[str, Any]], name: str = "data.manifest") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def run_training(
    src: Path,
    workdir: Path,
    hps: dict[str, Any],
    *,
    validation: Path | None = None,
    args: list[str] | None = None,
) -> tuple[subprocess.CompletedProcess, Path, Path]:
    model_dir, failure = workdir / "model", workdir / "output" / "failure"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(
        SM_MODEL_DIR=str(model_dir),
        SM_CHANNEL_TRAIN=str(workdir / "train"),
        SM_CHANNEL_VALIDATION=str(validation if validation is not None else workdir / "validation"),
        SM_HPS=json.dumps(hps),
        SM_NUM_CPUS="1",
        SM_OUTPUT_FAILURE=str(failure),
    )
    proc = subprocess.run(
        [sys.executable, TRAIN_PROGRAM, *(args or [])],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=TRAIN_TIMEOUT,
    )
    return proc, model_dir, failure


def assert_trained(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"train.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def transform(inference: ModuleType, model: Any, lines: list[dict[str, Any]], content_type: str = "application/jsonlines") -> np.ndarray:
    """One batch-transform request: N lines in, N probability rows out (checked)."""
    body = "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")
    output = inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), "application/jsonlines")
    if isinstance(output, tuple):  # (body, content type), as the serving containers take it
        output, answered_as = output
        assert answered_as == "application/jsonlines"
    assert isinstance(output, str)
    out_lines = output.splitlines()
    assert len(out_lines) == len(lines)
    rows = [json.loads(line)["probabilities"] for line in out_lines]
    probs = np.array(rows, dtype=float)
    assert np.all(np.isfinite(probs)) and np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    return probs


def steps_style(hps: dict[str, Any]) -> dict[str, str]:
    """Hyperparameters as the orchestrator sends them: every value JSON-encoded into a string."""
    return {k: json.dumps(v) for k, v in hps.items()}
