"""Where each artifact of a run lives under the output URI, and what its jobs are called.

One place for names, so the handlers, the local engine and the report agree.
"""

from __future__ import annotations

from labelloop.storage import join


def iteration_dir(output_uri: str, iteration: int) -> str:
    return join(output_uri, "iterations", f"{iteration:03d}")


def ledger_uri(output_uri: str, iteration: int, stage: str) -> str:
    """stage: 'input' (after bootstrap), 'human' (after merging human labels), 'auto' (after gating)."""
    return join(iteration_dir(output_uri, iteration), f"ledger-{stage}.jsonl")


def job_name(job: str, run_id: str, iteration: int, kind: str) -> str:
    # SageMaker names: at most 63 characters; job is at most 32, run_id 8.
    return f"{job}-{run_id}-{iteration:03d}-{kind}"


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


def rejected_uri(output_uri: str) -> str:
    return join(output_uri, "input", "rejected.manifest")


def output_manifest_uri(output_uri: str) -> str:
    return join(output_uri, "output", "output.manifest")


def summary_uri(output_uri: str) -> str:
    return join(output_uri, "output", "summary.json")


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
