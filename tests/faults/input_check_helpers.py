"""Shared by the input-check fault tests: manifests of images or text files, Bootstrap on them, a mocked bucket."""

import json
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image

from labelloop import steps

BUCKET = "labelloop-faults"
CLASSES = ["a", "b"]
DEPLOYMENT = {
    "Region": "us-east-1",
    "Algorithms": {
        t: {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "/src/sourcedir.tar.gz"}
        for t in ("image-classification", "text-classification")
    },
}


def images(folder: Path, n: int) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(path)
        lines.append({"source-ref": str(path)})
    return lines


def text_files(folder: Path, n: int) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        (folder / f"{i}.txt").write_text(f"text {i}")
        lines.append({"source-ref": str(folder / f"{i}.txt")})
    return lines


def boot(tmp_path, lines, deployment=DEPLOYMENT, task="image-classification", manifest_uri=None, **settings):
    if manifest_uri is None:
        manifest = tmp_path / "manifest.jsonl"
        manifest.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
        manifest_uri = str(manifest)
    out = settings.pop("OutputUri", str(tmp_path / "out"))
    event = {
        "Input": {
            "ManifestUri": manifest_uri, "OutputUri": out, "JobName": "checks",
            "TaskType": task, "LabelAttributeName": "label", "LabelCategories": CLASSES,
            "HumanBatchSize": 5, **settings,
        },
        "ExecutionName": "checks-1",
        "Deployment": deployment,
    }
    return steps.bootstrap(event)


def rejected(tmp_path):
    path = tmp_path / "out" / "input" / "rejected.manifest"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


@pytest.fixture()
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        for i in range(20):
            client.put_object(Bucket=BUCKET, Key=f"img/{i}.png", Body=b"png")
        yield client


def s3_lines(n=20):
    return [{"source-ref": f"s3://{BUCKET}/img/{i}.png"} for i in range(n)]
