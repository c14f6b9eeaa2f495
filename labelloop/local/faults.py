"""Fault injection for the local engine: make jobs and steps fail the way they fail on AWS.

A `FaultPlan` says what goes wrong; `install(engine, plan)` wires it into one `LocalEngine`
without changing how the engine runs anything else:

- SageMaker training / transform jobs: the engine's `LocalSageMaker` instance gets wrapped
  `create_training_job` / `create_transform_job`. A matching job answers `Failed` (as
  DescribeTrainingJob / DescribeTransformJob would, so the state ends with States.TaskFailed),
  or, for `malformed_transform`, `Completed` with an output that breaks the algorithm contract
  (the wrong number of class probabilities), which the next Lambda step rejects with
  AlgorithmOutputError.
- Labeling jobs: the workforce is wrapped. The n-th job can answer `Failed` (no labels written),
  and every job can answer only a share of its items (the rest are missing from its output
  manifest, as objects Ground Truth could not label).
- SageMaker Create* answers: for a matching training or transform job the answer is lost after
  the job was created (a 500 InternalFailure; the state's next try finds the name taken), or the
  request is refused with a ValidationException (never worth another try).
- Lambda steps: a handler raises `ThrottlingException` a given number of times before running,
  which the ASL's Retry must absorb.

Every injected fault is appended to `plan.injected`. `labels_lost(output_dir, attribute)`
compares the human labels the workforce wrote (its output manifests under `labeling/`) with the
run's final or partial output manifest.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from labelloop import layout
from labelloop.manifest import ID_KEY, item_key


class ThrottlingException(Exception):
    """What an AWS API answers when called too often; the ASL retries it (class name matched)."""


@dataclass
class FaultPlan:
    fail_training: str | None = None  # job-name substring, e.g. "-001-train"
    fail_transform: str | None = None  # e.g. "-001-infer-val"
    malformed_transform: str | None = None  # e.g. "-001-infer-val": output with the wrong probability count
    fail_labeling_job: int | None = None  # 1-based: this labeling job of the run answers Failed
    labeling_answer_share: float | None = None  # each labeling job answers only this share of its items
    throttle: dict[str, int] = field(default_factory=dict)  # Lambda state name -> times to raise first
    lose_response: str | None = None  # job-name substring: created, then its Create* answer is lost (once)
    refuse_create: str | None = None  # job-name substring: refused with a ValidationException
    injected: list[dict[str, Any]] = field(default_factory=list)

    def note(self, kind: str, target: str, detail: str = "") -> None:
        self.injected.append({"kind": kind, "target": target, "detail": detail, "time": _now()})


def install(engine: Any, plan: FaultPlan) -> FaultPlan:
    """Wire `plan` into a LocalEngine (its SageMaker binding, workforce and Lambda handlers)."""
    sm = engine.sagemaker
    real_training, real_transform = _refusing(sm.create_training_job, "TrainingJobName", plan), _refusing(
        sm.create_transform_job, "TransformJobName", plan
    )

    def create_training_job(params: dict[str, Any]) -> dict[str, Any]:
        name = params["TrainingJobName"]
        if plan.fail_training and plan.fail_training in name:
            sm.validate("CreateTrainingJob", params)
            plan.note("training-job-failed", name)
            return {
                "TrainingJobName": name,
                "TrainingJobArn": sm.arn("training-job", name),
                "TrainingJobStatus": "Failed",
                "SecondaryStatus": "Failed",
                "FailureReason": "AlgorithmError: injected fault (labelloop.local.faults)",
            }
        return real_training(params)

    def create_transform_job(params: dict[str, Any]) -> dict[str, Any]:
        name = params["TransformJobName"]
        if plan.fail_transform and plan.fail_transform in name:
            sm.validate("CreateTransformJob", params)
            plan.note("transform-job-failed", name)
            return _transform_describe(sm, params, "Failed", "ClientError: injected fault (labelloop.local.faults)")
        if plan.malformed_transform and plan.malformed_transform in name:
            sm.validate("CreateTransformJob", params)
            _write_malformed_output(params)
            plan.note("malformed-algorithm-output", name, "one probability per item instead of one per class")
            return _transform_describe(sm, params, "Completed")
        return real_transform(params)

    sm.create_training_job = create_training_job  # instance attributes shadow the methods
    sm.create_transform_job = create_transform_job
    engine.workforce = FaultyWorkforce(engine.workforce, plan)
    for state, times in plan.throttle.items():
        key = f"labelloop-{state}"
        engine._handlers[key] = _throttled(engine._handlers[key], state, plan)
    return plan


def _refusing(create: Callable, name_key: str, plan: FaultPlan) -> Callable:
    """A Create* whose answer the plan loses (once per job) or which it refuses."""

    def wrapped(params: dict[str, Any]) -> dict[str, Any]:
        from labelloop.local.sagemaker_jobs import LocalJobError, ResponseLostError

        name = params[name_key]
        if plan.refuse_create and plan.refuse_create in name:
            plan.note("create-refused", name)
            raise LocalJobError(
                f"1 validation error detected: Value '{name}' failed to satisfy constraint "
                "(Service: AmazonSageMaker; Status Code: 400; Error Code: ValidationException)"
            )
        result = create(params)
        if plan.lose_response and plan.lose_response in name and not any(f["target"] == name for f in plan.injected):
            plan.note("create-response-lost", name)
            raise ResponseLostError(result)
        return result

    return wrapped


def _throttled(handler: Callable, state: str, plan: FaultPlan) -> Callable:
    def wrapped(event, context):
        if plan.throttle.get(state, 0) > 0:
            plan.throttle[state] -= 1
            plan.note("lambda-throttled", state)
            raise ThrottlingException(f"Rate exceeded (injected into {state})")
        return handler(event, context)

    return wrapped


class FaultyWorkforce:
    """A workforce whose jobs fail or answer only part of their items, as the plan says."""

    def __init__(self, inner: Any, plan: FaultPlan):
        self.inner, self.plan, self.jobs_started = inner, plan, 0

    @property
    def answered(self) -> int:
        return self.inner.answered

    def __getattr__(self, name: str) -> Any:  # start/close/jobs/... of the real workforce
        return getattr(self.inner, name)

    def run_labeling_job(self, params: dict[str, Any]) -> dict[str, Any]:
        self.jobs_started += 1
        name = params["LabelingJobName"]
        if self.plan.fail_labeling_job == self.jobs_started:
            self.plan.note("labeling-job-failed", name)
            now = datetime.now(timezone.utc).isoformat()
            return {
                "LabelingJobName": name,
                "LabelingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{name.lower()}",
                "LabelingJobStatus": "Failed",
                "FailureReason": "ClientError: injected fault (labelloop.local.faults): the workforce stopped",
                "LabelAttributeName": params["LabelAttributeName"],
                "LabelCounters": {"TotalLabeled": 0, "HumanLabeled": 0, "MachineLabeled": 0,
                                  "FailedNonRetryableError": 0, "Unlabeled": 0},
                "CreationTime": now,
                "LastModifiedTime": now,
                "InputConfig": params["InputConfig"],
                "OutputConfig": params["OutputConfig"],
                "HumanTaskConfig": params["HumanTaskConfig"],
            }
        share = self.plan.labeling_answer_share
        if share is None:
            return self.inner.run_labeling_job(params)
        # Answer only the first share of the items: the rest are absent from the output manifest.
        source = Path(params["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"])
        lines = [l for l in source.read_text(encoding="utf-8").splitlines() if l.strip()]
        keep = lines[: int(len(lines) * share)]
        partial = Path(params["OutputConfig"]["S3OutputPath"]) / name / "faults" / "answered-input.manifest"
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text("".join(l + "\n" for l in keep), encoding="utf-8")
        self.plan.note("labeling-job-partial", name, f"answered {len(keep)} of {len(lines)} items")
        trimmed = json.loads(json.dumps(params))
        trimmed["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] = str(partial)
        return self.inner.run_labeling_job(trimmed)


def _transform_describe(sm: Any, params: dict[str, Any], status: str, reason: str | None = None) -> dict[str, Any]:
    now = _now()
    describe = {
        "TransformJobName": params["TransformJobName"],
        "TransformJobArn": sm.arn("transform-job", params["TransformJobName"]),
        "ModelName": params["ModelName"],
        "TransformInput": params["TransformInput"],
        "TransformOutput": params["TransformOutput"],
        "TransformJobStatus": status,
        "CreationTime": now,
        "TransformStartTime": now,
        "TransformEndTime": now,
    }
    if reason:
        describe["FailureReason"] = reason
    return describe


def _write_malformed_output(params: dict[str, Any]) -> None:
    """What a broken algorithm writes: each input line joined with ONE probability, not one per class."""
    src = Path(params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
    dst = Path(params["TransformOutput"]["S3OutputPath"])
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("."))
    for f in files:
        rel = f.name if src.is_file() else str(f.relative_to(src))
        out = dst / f"{rel}.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(f, encoding="utf-8") as inp, open(out, "w", encoding="utf-8") as w:
            for text in inp:
                if text.strip():
                    w.write(json.dumps({**json.loads(text), "SageMakerOutput": {"probabilities": [1.0]}}) + "\n")


# ---------------------------------------------------------------- accounting


def workforce_labels(output_dir: Path | str, attribute: str) -> dict[str, int]:
    """{item key: class index} of every human label a labeling job wrote under `labeling/`."""
    labels: dict[str, int] = {}
    for path in sorted(Path(layout.labeling_dir(str(output_dir))).glob("*/manifests/output/output.manifest")):
        for text in path.read_text(encoding="utf-8").splitlines():
            if text.strip():
                line = json.loads(text)
                if attribute in line:
                    labels[item_key({k: v for k, v in line.items() if k != ID_KEY})] = line[attribute]
    return labels


def labels_lost(output_dir: Path | str, attribute: str) -> dict[str, Any]:
    """Human labels the workforce wrote that the run's (final or partial) output manifest lacks.

    A label counts as kept when the output line of the same item carries the same class and
    says `human-annotated: yes`.
    """
    given = workforce_labels(output_dir, attribute)
    manifest = Path(layout.output_manifest_uri(str(output_dir)))
    final: dict[str, dict] = {}
    if manifest.exists():
        for text in manifest.read_text(encoding="utf-8").splitlines():
            if text.strip():
                line = json.loads(text)
                final[item_key(line)] = line
    lost = [
        key for key, cls in given.items()
        if not (key in final and final[key].get(attribute) == cls
                and (final[key].get(f"{attribute}-metadata") or {}).get("human-annotated") == "yes")
    ]
    return {"given": len(given), "lost": len(lost), "lost_items": lost[:20], "output_manifest": manifest.exists()}


def labels_corrupted(output_dir: Path | str, attribute: str) -> dict[str, Any]:
    """Human labels kept under another class name: the output's `class-name` is not the one people chose.

    A label stored as a class number keeps its number when the categories are reordered, and
    silently changes name; `labels_lost` (which compares numbers) cannot see that.
    """
    chosen: dict[str, str] = {}
    for path in sorted(Path(layout.labeling_dir(str(output_dir))).glob("*/manifests/output/output.manifest")):
        for text in path.read_text(encoding="utf-8").splitlines():
            line = json.loads(text) if text.strip() else {}
            name = (line.get(f"{attribute}-metadata") or {}).get("class-name")
            if attribute in line and name is not None:
                chosen[item_key({k: v for k, v in line.items() if k != ID_KEY})] = name
    manifest = Path(layout.output_manifest_uri(str(output_dir)))
    corrupted = []
    if manifest.exists():
        for text in manifest.read_text(encoding="utf-8").splitlines():
            line = json.loads(text) if text.strip() else {}
            key = item_key(line) if line else None
            meta = line.get(f"{attribute}-metadata") or {}
            if key in chosen and meta.get("human-annotated") == "yes" and meta.get("class-name") != chosen[key]:
                corrupted.append(key)
    return {"given": len(chosen), "corrupted": len(corrupted), "corrupted_items": corrupted[:20]}


# ---------------------------------------------------------------- test inputs


def write_undecodable_png(path: Path | str, size: int = 8) -> Path:
    """A PNG whose header and chunk checksums are valid (Pillow's verify() passes) but whose
    pixel data is not a zlib stream, so decoding it fails: a file that passes Bootstrap's cheap
    image check and breaks the algorithm, e.g. to make a training job fail for real."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path = Path(path)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", b"this is not zlib data")
        + chunk(b"IEND", b"")
    )
    return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
