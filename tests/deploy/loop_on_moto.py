"""Run the real state machine as the stack deploys it, against S3 (moto), capturing what it sends.

The definition is substituted with template.yaml's DefinitionSubstitutions (resolved by
`template_model.Resolver`), the execution input is built by `labelloop start`'s own code from the
template's Outputs, and the local engine (moto's ASL interpreter + the real handlers in
functions/) runs it with every URI an s3:// URI in the stack's data bucket. SageMaker is the one
fake: each request body is recorded as the state machine built it, and the job is answered the
way SageMaker would (artifacts written to S3, a Describe*-shaped result).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import tarfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from unittest import mock

from template_model import ACCOUNT, REGION, Resolver

CLASSES = ["neg", "pos"]
ATTRIBUTE = "sentiment"
ITEMS = 400
HUMAN_BATCH = 160  # half of the first batch validates: 80 items, enough for a threshold at 90 % / 90 %


def truth_of(line: dict[str, Any]) -> int:
    return int(line["source"].rsplit(" ", 1)[1] == "pos")


def probabilities(line: dict[str, Any]) -> list[float]:
    """Confident and right about nine items in ten; unsure and wrong about the tenth."""
    true = truth_of(line)
    number = int(line["source"].split()[1])
    p_true = 0.4 if number % 10 == 0 else 0.97
    return [p_true, 1 - p_true] if true == 0 else [1 - p_true, p_true]


@dataclass
class Run:
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (action, request body)
    steps: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (Lambda state, result)
    status: str = ""
    error: str | None = None
    cause: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    status_text: str = ""
    emf: list[dict[str, Any]] = field(default_factory=list)  # Powertools EMF blobs the handlers printed
    objects: dict[str, bytes] = field(default_factory=dict)  # s3://... -> bytes, everything the run left
    execution_input: dict[str, Any] = field(default_factory=dict)
    resolver: Resolver | None = None

    def bodies(self, action: str) -> list[dict[str, Any]]:
        return [body for a, body in self.requests if a == action]


def _s3():
    import boto3

    return boto3.client("s3", region_name=REGION)


def _read_lines(uri: str) -> list[dict[str, Any]]:
    bucket, key = uri[5:].split("/", 1)
    text = _s3().get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _list(prefix_uri: str) -> list[str]:
    bucket, key = prefix_uri[5:].split("/", 1)
    pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
    return [f"s3://{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", [])]


def _put(uri: str, body: bytes) -> None:
    bucket, key = uri[5:].split("/", 1)
    _s3().put_object(Bucket=bucket, Key=key, Body=body)


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


class FakeSageMaker:
    """Answers the state machine's SageMaker requests the way the service would, on moto S3."""

    def __init__(self, run: Run, fail_training: bool = False, lose_response: str | None = None):
        self.run = run
        self.fail_training = fail_training
        self.lose_response = lose_response  # job-name substring: created, but the first answer is lost
        self.lock = threading.Lock()

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"

    def __call__(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        from labelloop.local.sagemaker_jobs import NAME_KEYS, ResponseLostError

        with self.lock:
            self.run.requests.append((action, json.loads(json.dumps(params))))
        result = getattr(self, action)(params)
        if self.lose_response and self.lose_response in params[NAME_KEYS[action]]:
            self.lose_response = None  # once
            raise ResponseLostError(result)
        return result

    def createTrainingJob(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["TrainingJobName"]
        if self.fail_training:
            return {
                "TrainingJobName": name,
                "TrainingJobArn": self.arn("training-job", name),
                "TrainingJobStatus": "Failed",
                "FailureReason": "AlgorithmError: fake failure",
            }
        for channel in p["InputDataConfig"]:
            assert _list(channel["DataSource"]["S3DataSource"]["S3Uri"]), (
                f"training channel {channel['ChannelName']} is empty"
            )
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            data = b'{"fake": "model"}'
            info = tarfile.TarInfo("model.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        artifacts = _join(p["OutputDataConfig"]["S3OutputPath"], name, "output", "model.tar.gz")
        _put(artifacts, buffer.getvalue())
        return {
            "TrainingJobName": name,
            "TrainingJobArn": self.arn("training-job", name),
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": artifacts},
            "FinalMetricDataList": [{"MetricName": "validation:accuracy", "Value": 0.9}],
        }

    def createModel(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ModelArn": self.arn("model", p["ModelName"])}

    def createTransformJob(self, p: dict[str, Any]) -> dict[str, Any]:
        name = p["TransformJobName"]
        out = p["TransformOutput"]["S3OutputPath"]
        for uri in _list(p["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]):
            lines = [{**line, "SageMakerOutput": {"probabilities": probabilities(line)}} for line in _read_lines(uri)]
            _put(_join(out, uri.rsplit("/", 1)[1] + ".out"), "".join(json.dumps(x) + "\n" for x in lines).encode())
        return {
            "TransformJobName": name,
            "TransformJobArn": self.arn("transform-job", name),
            "TransformJobStatus": "Completed",
        }

    def createLabelingJob(self, p: dict[str, Any]) -> dict[str, Any]:
        name, attribute = p["LabelingJobName"], p["LabelAttributeName"]
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
        answered = []
        for line in _read_lines(p["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]):
            label = truth_of(line)
            answered.append(
                {
                    **line,
                    attribute: label,
                    f"{attribute}-metadata": {
                        "class-name": CLASSES[label],
                        "confidence": 0.95,
                        "type": "groundtruth/text-classification",
                        "job-name": f"labeling-job/{name}",
                        "human-annotated": "yes",
                        "creation-date": now,
                    },
                }
            )
        manifest = _join(p["OutputConfig"]["S3OutputPath"], name, "manifests", "output", "output.manifest")
        _put(manifest, "".join(json.dumps(x) + "\n" for x in answered).encode())
        return {
            "LabelingJobName": name,
            "LabelingJobArn": self.arn("labeling-job", name),
            "LabelingJobStatus": "Completed",
            "LabelCounters": {
                "TotalLabeled": len(answered),
                "HumanLabeled": len(answered),
                "MachineLabeled": 0,
                "FailedNonRetryableError": 0,
                "Unlabeled": 0,
            },
            "LabelingJobOutput": {"OutputDatasetS3Uri": manifest},
        }


def start_args(**overrides: Any) -> argparse.Namespace:
    """The Namespace `labelloop start` parses, for the fixture's job."""
    values = dict(
        stack="labelloop-test",
        region=REGION,
        manifest=None,
        task_type="text-classification",
        label_attribute=ATTRIBUTE,
        labels=",".join(CLASSES),
        label_config=None,
        job_name="labelloop-contract",
        output=None,
        human_batch_size=HUMAN_BATCH,
        human_budget=None,
        max_human_cost=None,
        target_accuracy=0.9,
        confidence=0.9,
        workers_per_object=None,
        setting=[("MaxIterations", 3)],
        execution_name=None,
        dry_run=False,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


def run_loop(
    workdir: Path,
    *,
    settings: list[tuple[str, Any]] | None = None,
    name: str = "contract-run",
    fail_training: bool = False,
    lose_response: str | None = None,
) -> Run:
    """One execution, start to end, in a fresh moto account."""
    import boto3
    from moto import mock_aws

    from labelloop import aws_cli
    from labelloop.local.engine import LocalEngine

    run = Run(resolver=Resolver())
    resolver = run.resolver
    bucket = resolver.data_bucket()
    fake = FakeSageMaker(run, fail_training, lose_response)

    class StackEngine(LocalEngine):
        def substitutions(self) -> dict[str, str]:
            return resolver.substitutions()

        def algorithms(self, task_type: str | None = None) -> dict[str, dict[str, str]]:
            return json.loads(resolver.function_environment()["LABELLOOP_ALGORITHMS"])  # the stack's: every type

        def _run_sagemaker(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
            return fake(action, params)

    emf = io.StringIO()
    env = {"AWS_DEFAULT_REGION": REGION, "POWERTOOLS_METRICS_DISABLED": "false", "POWERTOOLS_DEV": "false"}
    with mock.patch.dict(os.environ, env), mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=bucket)
        manifest = f"s3://{bucket}/input/reviews.manifest"
        lines = [{"source": f"review {i} {CLASSES[i % 2]}"} for i in range(ITEMS)]
        _put(manifest, "".join(json.dumps(x) + "\n" for x in lines).encode())
        # The uploaded algorithm sources the template points at (prepare-deploy's job).
        for key in ("ImageClassificationSourceDirUri", "TextClassificationSourceDirUri", "ObjectDetectionSourceDirUri",
                    "SemanticSegmentationSourceDirUri"):
            _put(resolver.params[key], gzip.compress(b""))
        initial = dict(settings or []).get("InitialModelArtifacts")
        if initial:
            _put(initial, gzip.compress(b""))

        args = start_args(manifest=manifest, setting=[("MaxIterations", 3), *(settings or [])])
        run.execution_input = aws_cli.execution_input(args, resolver.outputs(), datetime.now(timezone.utc))
        engine = StackEngine(workdir, workforce=None, on_step=lambda state, result: run.steps.append((state, result)))
        with contextlib.redirect_stdout(emf):
            result = engine.run(run.execution_input, name=name, timeout_seconds=120)
        run.status, run.error, run.cause, run.history = result.status, result.error, result.cause, result.history

        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        arn = sfn.list_executions(stateMachineArn=machine)["executions"][0]["executionArn"]
        text = io.StringIO()
        aws_cli.cmd_status(argparse.Namespace(execution_arn=arn, region=None), out=text)
        run.status_text = text.getvalue()
        for uri in _list(f"s3://{bucket}/"):
            b, k = uri[5:].split("/", 1)
            run.objects[uri] = s3.get_object(Bucket=b, Key=k)["Body"].read()
    for line in emf.getvalue().splitlines():
        if line.startswith("{") and '"_aws"' in line:
            run.emf.append(json.loads(line))
    return run
