"""Where each artifact of a run lives under the output URI, and what its jobs are called.

One place for names, so the handlers, the local engine and the report agree.
"""

from __future__ import annotations

import re

from labelloop.storage import join


def iterations_root(output_uri: str) -> str:
    """The folder holding one folder per iteration (`iteration_dir`)."""
    return join(output_uri, "iterations")


def iteration_dir(output_uri: str, iteration: int) -> str:
    return join(iterations_root(output_uri), f"{iteration:03d}")


def iteration_of_dir(name: str) -> int | None:
    """The iteration an `iteration_dir` is for, from its last path part; None for another folder."""
    name = name.rstrip("/").rsplit("/", 1)[-1]
    return int(name) if len(name) >= 3 and name.isascii() and name.isdigit() else None


def ledger_uri(output_uri: str, iteration: int, stage: str) -> str:
    """stage: 'input' (after bootstrap), 'human' (after merging human labels), 'auto' (after gating)."""
    return join(iteration_dir(output_uri, iteration), f"ledger-{stage}.jsonl")


def job_name(job: str, run_id: str, iteration: int, kind: str) -> str:
    # SageMaker names: at most 63 characters; job is at most 32, run_id 8.
    return f"{job}-{run_id}-{iteration:03d}-{kind}"


# The end of a `job_name`: the iteration (3 digits or more), then the kind (letters and hyphens).
_JOB_NAME_END = re.compile(r"-(\d{3,})-([a-z][a-z-]*)$")


def parse_job_name(name: str) -> tuple[int, str] | None:
    """(iteration, kind) of a name `job_name` built, also as label metadata writes it
    ("labeling-job/<name>"); None for a name it did not build."""
    match = _JOB_NAME_END.search(name)
    return (int(match.group(1)), match.group(2)) if match else None


def human_batch_uri(output_uri: str, iteration: int) -> str:
    """The input manifest of the labeling job that answers before `iteration` trains."""
    return join(iteration_dir(output_uri, iteration), "human-input.manifest")


def labeling_dir(output_uri: str) -> str:
    """Where labeling jobs write (Ground Truth adds <job-name>/manifests/output/...)."""
    return join(output_uri, "labeling")


def calibration_uri(output_uri: str, iteration: int) -> str:
    return join(iteration_dir(output_uri, iteration), "calibration.json")


class IterationPaths:
    """An iteration's channels, transform inputs and outputs, and model folder."""

    def __init__(self, output_uri: str, iteration: int):
        base = iteration_dir(output_uri, iteration)
        self.train_channel = join(base, "channels", "train")
        self.validation_channel = join(base, "channels", "validation")
        self.train_manifest = join(self.train_channel, "train.manifest")
        self.validation_manifest = join(self.validation_channel, "validation.manifest")
        self.unlabeled_input = join(base, "transform-input", "unlabeled")
        self.unlabeled_manifest = join(self.unlabeled_input, "unlabeled.manifest")
        self.model_output = join(base, "model")
        self.validation_predictions = join(base, "inference", "validation")
        self.unlabeled_predictions = join(base, "inference", "unlabeled")


def label_config_uri(output_uri: str) -> str:
    return join(output_uri, "config", "label-categories.json")


def ui_template_uri(output_uri: str) -> str:
    return join(output_uri, "config", "task-template.liquid.html")


def settings_uri(output_uri: str) -> str:
    return join(output_uri, "config", "settings.json")


def manifest_fingerprint_uri(output_uri: str) -> str:
    """Size, line count and SHA-256 of the input manifest the run labeled (a resume checks them)."""
    return join(output_uri, "config", "input-manifest.json")


def artifact_paths(output_uri: str) -> list[str]:
    """What a run writes (or replaces) under its output location: no input may live there."""
    return [
        join(output_uri, "config"), iterations_root(output_uri), labeling_dir(output_uri),
        join(output_uri, "output"), local_work_dir(output_uri), report_dir(output_uri), rejected_uri(output_uri),
    ]


def rejected_uri(output_uri: str) -> str:
    return join(output_uri, "input", "rejected.manifest")


def output_manifest_uri(output_uri: str) -> str:
    return join(output_uri, "output", "output.manifest")


def output_files_uri(output_uri: str) -> str:
    """Where label files the output manifest names go (a mask PNG an item), beside the manifest."""
    return join(output_uri, "output", "annotations")


def summary_uri(output_uri: str) -> str:
    return join(output_uri, "output", "summary.json")


def evaluation_uri(output_uri: str) -> str:
    """The auto-labels scored against true labels (`labelloop run --truth` writes it)."""
    return join(output_uri, "output", "evaluation.json")


def staged_manifest_uri(output_uri: str) -> str:
    """Where `labelloop run` copies an s3:// input manifest before the offline engine starts."""
    return join(output_uri, "input", "source.manifest")


def local_work_dir(output_uri: str) -> str:
    """The local engine's own files (job processes, execution history): `labelloop run` only."""
    return join(output_uri, "work")


def local_outcome_uri(output_uri: str) -> str:
    """How the last `labelloop run` on this output ended (`labelloop status` reads it)."""
    return join(local_work_dir(output_uri), "outcome.json")


def report_dir(output_uri: str) -> str:
    """Where `labelloop report` writes report.html and its plots."""
    return join(output_uri, "report")


def metrics_uri(output_uri: str, iteration: int) -> str:
    return join(iteration_dir(output_uri, iteration), "metrics.json")


def lock_uri(output_uri: str) -> str:
    return join(output_uri, "config", "lock.json")


_STAGES = ("input", "human", "auto")


def ledgers(uris: list[str]) -> list[tuple[int, str, str]]:
    """(iteration, stage, uri) of every ledger among `uris`, oldest first."""
    found = []
    for uri in uris:
        parts = uri.rstrip("/").split("/")
        name = parts[-1]
        if name.startswith("ledger-") and name.endswith(".jsonl") and parts[-2].isdigit():
            stage = name[len("ledger-"):-len(".jsonl")]
            if stage in _STAGES:
                found.append((int(parts[-2]), stage, uri))
    return sorted(found, key=lambda f: (f[0], _STAGES.index(f[1])))


def labeling_output_suffix(iteration: int) -> str:
    """How a labeling job's output manifest path ends, whatever run named the job."""
    return f"-{iteration:03d}-label/manifests/output/output.manifest"
