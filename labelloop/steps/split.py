"""SplitValidation: this iteration's train/validation channels and the unlabeled items' transform input."""

from __future__ import annotations

import json
from typing import Any

from labelloop import aws_limits, layout, ledger, storage, tasks
from labelloop.config import JobSettings
from labelloop.contracts import IterationPlan


def split_validation(event: dict[str, Any]) -> dict[str, Any]:
    """Write this iteration's train/validation channels and the unlabeled items' transform input."""
    config, state = event["config"], event["state"]
    settings = JobSettings.parse(config["Settings"])
    attribute, seed = settings.label_attribute, settings.seed
    it = state["Iteration"]
    paths = layout.IterationPaths(settings.output_uri, it)
    provisional = settings.scope.provisional
    retired = retired_right = 0
    n_classes = len(config["ClassNames"])
    reply = tasks.get(settings.task_type).reply_line_bytes(n_classes)  # the padding keeps replies within limits
    with (
        storage.LineWriter(paths.train_manifest) as train,
        storage.LineWriter(paths.validation_manifest) as validation,
        storage.LineWriter(paths.unlabeled_manifest) as unlabeled,
    ):
        for record in storage.iter_json_lines(state["LedgerUri"]):
            label = record["label"]
            if label is None or (provisional and ledger.is_provisional(label)):
                # Job scope: an auto-label is provisional, judged again by every new model.
                unlabeled.write(aws_limits.transform_line(ledger.job_line(record), n_classes, reply))
            elif label["human"]:  # auto-labels never train: the model would learn its own mistakes
                target = validation if ledger.split_of(record) == ledger.VALIDATION else train
                line = ledger.channel_line(record, attribute)  # validation: also batch transform's input
                target.write(aws_limits.transform_line(line, n_classes, reply) if target is validation else line)
                verdict = ledger.verdict_of(record)
                if verdict is not None:
                    retired += 1
                    retired_right += verdict["correct"]
    name = lambda kind: layout.job_name(settings.job_name, config["RunId"], it, kind)  # noqa: E731
    hyperparameters = {
        "label-attribute": attribute,
        "num-classes": len(config["ClassNames"]),
        "seed": seed + it,
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": config["SourceDirUri"],
    }
    # Pre-labeling: the first iteration is judged with the model the user gave, not trained.
    initial = settings.initial_model_artifacts
    given = initial if (initial and it == 1) else ""
    previous = model_to_continue(settings.task_type, state.get("ModelArtifacts"), initial)
    return IterationPlan.model_validate({
        "Train": not given,
        "GivenModelArtifacts": given,
        "TrainingJobName": name("train"),
        "ModelName": name("model"),
        "TrainCount": train.count,
        "ValidationCount": validation.count,
        "UnlabeledCount": unlabeled.count,
        # Verdicts of retired validation items, which the cumulative scope carries over.
        "RetiredValidation": {"Count": retired, "Correct": retired_right},
        "TrainingChannels": training_channels(paths, previous),
        "ModelOutputUri": paths.model_output,
        # SageMaker's script-mode convention: every hyperparameter value is a JSON-encoded string.
        "HyperParameters": {k: json.dumps(v) for k, v in hyperparameters.items()},
        "ValidationTransform": {
            "JobName": name("infer-val"),
            "InputUri": paths.validation_channel,
            "OutputUri": paths.validation_predictions,
        },
        "UnlabeledTransform": {
            "JobName": name("infer-unl"),
            "InputUri": paths.unlabeled_input,
            "OutputUri": paths.unlabeled_predictions,
        },
    }).dump()


def model_to_continue(task_type: str, previous: str | None, given: str | None) -> str | None:
    """The model this iteration's training starts from: the previous iteration's, for task types
    that continue training, and only one this loop trained (a given model may have been trained on
    items that now validate)."""
    if not previous or previous == given or not tasks.get(task_type).continues_training:
        return None
    return previous


def training_channels(paths: layout.IterationPaths, previous_model: str | None) -> list[dict[str, Any]]:
    """The training job's InputDataConfig: the human labels to train on, the validation labels it
    reports on, and, for task types that continue training, the previous iteration's model."""
    channels = [("train", paths.train_channel, "application/jsonlines"),
                ("validation", paths.validation_channel, "application/jsonlines")]
    if previous_model:
        channels.append(("model", previous_model, "application/x-tar"))
    return [{
        "ChannelName": name,
        "ContentType": content_type,
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}},
    } for name, uri, content_type in channels]
