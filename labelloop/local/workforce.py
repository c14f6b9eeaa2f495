"""Local binding for Ground Truth labeling jobs: a workforce that answers here.

`SimulatedWorkforce` stands in for people in benchmarks and tests: each simulated annotator
answers from the true labels (kept outside the manifest) with a configurable accuracy, and
each item's answers are consolidated by majority vote, as Ground Truth's consolidation does
for classification. A task type may have several kinds of simulated annotator (`annotator`:
masks clicked with the click tool or painted); one that counts its clicks has them written in
the line's metadata as `labelloop-clicks` (all workers' clicks on the item), where the merge
step counts them. It writes Ground Truth's output layout:
`<S3OutputPath>/<job-name>/manifests/output/output.manifest` plus the raw worker answers.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from labelloop.config import parse_label_category_config
from labelloop.local.sagemaker_jobs import LocalJobError
from labelloop import storage, tasks
from labelloop.manifest import CLICKS_KEY, ID_KEY, item_key
from labelloop.storage import atomic_file, json_lines

ACCOUNT = "123456789012"


class WorkforceError(LocalJobError):
    """The local workforce cannot serve a labeling job request."""


@dataclass
class SimulatedWorkforce:
    truth: dict[str, str]  # item key -> true class name
    accuracy: float = 1.0  # chance each simulated annotator answers correctly
    seed: int = 0
    annotator: str | None = None  # the task type's kind of simulated annotator; None: its default
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
        workers = int(params["HumanTaskConfig"].get("NumberOfHumanWorkersPerDataObject", 1))
        job_root = _local(params["OutputConfig"]["S3OutputPath"]) / name
        out_path = job_root / "manifests" / "output" / "output.manifest"
        out_path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([self.seed, sum(name.encode())])
        task = tasks.get(task_type) if task_type else task_of(params)
        if self.annotator is not None and self.annotator not in task.simulated_annotators:
            kinds = ", ".join(task.simulated_annotators) or "one kind only"
            raise WorkforceError(f"{task.name} has no simulated annotator {self.annotator!r} ({kinds})")
        started = datetime.now(timezone.utc)
        labeled = failed = 0
        responses = []
        files = str(job_root / "annotations" / "consolidated-annotation" / "output")  # label files, as Ground Truth's
        with atomic_file(out_path, "w") as out:  # a crash never leaves half a manifest
            for number, line in json_lines(manifest.read_text(encoding="utf-8").splitlines(), str(manifest)):
                true = self.truth.get(item_key(line))
                true = task.truth_value(true, classes) if true is not None else None
                if true is None:
                    failed += 1
                    line[f"{attribute}-metadata"] = task.failure_metadata(
                        "ClientError: no annotator could label this object", name
                    )
                    out.write(json.dumps(line) + "\n")
                    continue
                item = functools.cache(functools.partial(_item_bytes, line))  # read once, if a worker looks
                try:
                    answers = [task.simulate(true, classes, self.accuracy, rng, item=item, annotator=self.annotator)
                               for _ in range(workers)]
                except ValueError as exc:
                    raise WorkforceError(f"{name}: item {item_key(line)[:200]}: {exc}") from None
                votes = [a.value for a in answers]
                winner, confidence = task.consolidate(votes, workers, rng)
                clicks = [a.clicks for a in answers if a.clicks is not None]
                responses.append({"key": item_key(line), "answers": votes, **({"clicks": clicks} if clicks else {})})
                line[attribute] = task.line_value(winner, classes, folder=files, name=str(line.get(ID_KEY, number)))
                line[f"{attribute}-metadata"] = task.human_metadata(winner, confidence, classes, name)
                if clicks:
                    line[f"{attribute}-metadata"][CLICKS_KEY] = sum(clicks)
                out.write(json.dumps(line) + "\n")
                labeled += 1
        with atomic_file(job_root / "annotations" / "worker-response" / "responses.jsonl", "w") as answers:
            answers.write("".join(json.dumps(r) + "\n" for r in responses))
        with self._lock:
            self.answered += labeled
        describe = describe_labeling_job(params, labeled=labeled, failed=failed, started=started, output=out_path)
        with self._lock:
            self.jobs.append(describe)
        return describe


# Shared by every local workforce (simulated annotators, people on the local worker page), so
# their output manifests are alike line for line.


def task_of(params: dict[str, Any]) -> "tasks.TaskType":
    """The task type a labeling job request is for: the one whose built-in pre-annotation Lambda it names."""
    try:
        return tasks.by_pre_lambda(params["HumanTaskConfig"].get("PreHumanTaskLambdaArn", ""))
    except ValueError as exc:
        raise WorkforceError(str(exc)) from None


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


def _item_bytes(line: dict[str, Any]) -> bytes:
    """What a person looks at: the file `source-ref` names, or the `source` text."""
    if isinstance(line.get("source-ref"), str):
        return storage.read_bytes(line["source-ref"])
    return str(line.get("source", "")).encode("utf-8")


def _local(uri: str) -> Path:
    if uri.startswith("s3://"):
        raise WorkforceError(f"the local workforce reads local paths, got {uri}")
    return Path(uri)
