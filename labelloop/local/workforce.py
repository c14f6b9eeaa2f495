"""Local binding for Ground Truth labeling jobs: a workforce that answers here.

`SimulatedWorkforce` stands in for people in benchmarks and tests: each simulated annotator
answers from the true labels (kept outside the manifest) with a configurable accuracy, and
each item's answers are consolidated by majority vote, as Ground Truth's consolidation does
for classification. It writes Ground Truth's output layout:
`<S3OutputPath>/<job-name>/manifests/output/output.manifest` plus the raw worker answers.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from labelloop.config import parse_label_category_config
from labelloop.local.sagemaker_jobs import LocalJobError
from labelloop.manifest import TASK_TYPES, creation_date, item_key

ACCOUNT = "123456789012"


class WorkforceError(LocalJobError):
    """The local workforce cannot serve a labeling job request."""


@dataclass
class SimulatedWorkforce:
    truth: dict[str, str]  # item key -> true class name
    accuracy: float = 1.0  # chance each simulated annotator answers correctly
    seed: int = 0
    answered: int = 0  # items given a consolidated label, over the whole run
    jobs: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not 0.0 < self.accuracy <= 1.0:
            raise ValueError(f"annotator accuracy must be in (0, 1], got {self.accuracy}")

    def run_labeling_job(self, params: dict[str, Any], task_type: str | None = None) -> dict[str, Any]:
        name = params["LabelingJobName"]
        attribute = params["LabelAttributeName"]
        manifest = _local(params["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"])
        config_uri = params["LabelCategoryConfigS3Uri"]
        classes = parse_label_category_config(json.loads(_local(config_uri).read_text()), config_uri)
        index = {c: i for i, c in enumerate(classes)}
        workers = int(params["HumanTaskConfig"].get("NumberOfHumanWorkersPerDataObject", 1))
        job_root = _local(params["OutputConfig"]["S3OutputPath"]) / name
        out_path = job_root / "manifests" / "output" / "output.manifest"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([self.seed, sum(name.encode())])
        task = task_type or _task_type(params)
        started = datetime.now(timezone.utc)
        labeled = failed = 0
        responses = []
        partial = out_path.with_name(f".{out_path.name}.partial")  # a crash never leaves half a manifest
        with open(partial, "w", encoding="utf-8") as out:
            for text in manifest.read_text(encoding="utf-8").splitlines():
                if not text.strip():
                    continue
                line = json.loads(text)
                true = self.truth.get(item_key(line))
                if true is None or true not in index:
                    failed += 1
                    line[f"{attribute}-metadata"] = failure_metadata(
                        "ClientError: no annotator could label this object", name, task
                    )
                    out.write(json.dumps(line) + "\n")
                    continue
                votes = [self._answer(index[true], len(classes), rng) for _ in range(workers)]
                winner, confidence = consolidate(votes, workers, rng)
                responses.append({"key": item_key(line), "answers": votes})
                line[attribute] = winner
                line[f"{attribute}-metadata"] = human_label_metadata(classes[winner], confidence, name, task)
                out.write(json.dumps(line) + "\n")
                labeled += 1
        os.replace(partial, out_path)
        answers = job_root / "annotations" / "worker-response" / "responses.jsonl"
        answers.parent.mkdir(parents=True, exist_ok=True)
        answers.write_text("".join(json.dumps(r) + "\n" for r in responses))
        with self._lock:
            self.answered += labeled
        describe = describe_labeling_job(params, labeled=labeled, failed=failed, started=started, output=out_path)
        with self._lock:
            self.jobs.append(describe)
        return describe

    def _answer(self, true: int, n_classes: int, rng: np.random.Generator) -> int:
        if self.accuracy >= 1.0 or rng.random() < self.accuracy:
            return true
        wrong = int(rng.integers(n_classes - 1))
        return wrong + (wrong >= true)


# Shared by every local workforce (simulated annotators, people on the local worker page), so
# their output manifests are alike line for line.


def consolidate(votes: list[int], workers: int, rng: np.random.Generator) -> tuple[int, float]:
    """(class index, confidence) for one item's answers: majority vote, ties broken by `rng`."""
    winner, count = _majority(votes, rng)
    return winner, (round(count / workers * 0.95 + 0.04, 2) if workers > 1 else 0.95)


def human_label_metadata(class_name: str, confidence: float, job_name: str, task: str) -> dict[str, Any]:
    """The `<attribute>-metadata` Ground Truth writes beside a consolidated human label."""
    return {
        "class-name": class_name,
        "confidence": confidence,
        "type": TASK_TYPES[task],
        "job-name": f"labeling-job/{job_name}",
        "human-annotated": "yes",
        "creation-date": creation_date(),
    }


def failure_metadata(reason: str, job_name: str, task: str) -> dict[str, Any]:
    """The `<attribute>-metadata` Ground Truth writes for an object it could not label."""
    return {"failure-reason": reason, "job-name": f"labeling-job/{job_name}", "type": TASK_TYPES[task]}


def describe_labeling_job(
    params: dict[str, Any], *, labeled: int, failed: int, started: datetime, output: Path
) -> dict[str, Any]:
    """DescribeLabelingJob's answer for a completed local labeling job."""
    name = params["LabelingJobName"]
    return {
        "LabelingJobName": name,
        "LabelingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:labeling-job/{name.lower()}",
        "LabelingJobStatus": "Completed",
        "LabelAttributeName": params["LabelAttributeName"],
        "LabelCounters": {
            "TotalLabeled": labeled,
            "HumanLabeled": labeled,
            "MachineLabeled": 0,
            "FailedNonRetryableError": failed,
            "Unlabeled": 0,
        },
        "CreationTime": started.isoformat(),
        "LastModifiedTime": datetime.now(timezone.utc).isoformat(),
        "LabelingJobOutput": {"OutputDatasetS3Uri": str(output)},
        "InputConfig": params["InputConfig"],
        "OutputConfig": params["OutputConfig"],
        "HumanTaskConfig": params["HumanTaskConfig"],
    }


def _majority(votes: list[int], rng: np.random.Generator) -> tuple[int, int]:
    counts = Counter(votes).most_common()
    top = counts[0][1]
    tied = sorted(v for v, c in counts if c == top)
    return int(tied[int(rng.integers(len(tied)))]), top


def _task_type(params: dict[str, Any]) -> str:
    pre = params["HumanTaskConfig"].get("PreHumanTaskLambdaArn", "")
    return "text-classification" if "Text" in pre else "image-classification"


def _local(uri: str) -> Path:
    if uri.startswith("s3://"):
        raise WorkforceError(f"the local workforce reads local paths, got {uri}")
    return Path(uri)
