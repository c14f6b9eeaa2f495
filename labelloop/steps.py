"""The loop's Lambda steps as plain functions: event dict in, result dict out.

Each function is one Task state of `statemachine/active_learning.asl.json`; the handlers in
`functions/` wrap them with Powertools and nothing else. They read and write artifacts by URI
(see `labelloop.storage`), so they run the same in Lambda against S3 and in the local engine
against a folder. Manifests are streamed; only per-batch data (a human batch, the unlabeled
items' predictions) is held in memory.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

import numpy as np

from labelloop import input_checks, layout, ledger, locks, storage
from labelloop.calibration import calibrate_threshold as calibrate
from labelloop.calibration import worst_case_tail
from labelloop.config import (
    ConfigurationError,
    JobSettings,
    label_category_config,
    parse_label_category_config,
)
from labelloop.ground_truth import built_in_lambda_arns, task_title, task_ui_template
from labelloop.manifest import (
    ID_KEY,
    Label,
    ManifestError,
    creation_date,
    item_key,
    iter_json_lines,
    output_line,
    parse_line,
)
from labelloop.selection import STRATEGIES, select_for_humans, shadow_route

# Ground Truth fails a job when more than 10 % of its input objects are invalid.
MAX_REJECTED_SHARE = 0.10


class InputManifestError(ValueError):
    """The input manifest cannot be used (empty, or too many invalid lines)."""


class LabelingOutputError(ValueError):
    """A labeling job's output manifest has a line the loop cannot use."""


class AlgorithmOutputError(ValueError):
    """A batch transform's output is missing items or is not what the algorithm contract says."""


# ---------------------------------------------------------------- Bootstrap


def bootstrap(event: dict[str, Any]) -> dict[str, Any]:
    """Check the settings, read the input manifest into the first ledger, write the job's config.

    An output location that already holds a run of the same manifest is resumed: its newest
    ledger (every label paid for) is carried on, answers of a labeling job that finished after
    the last merge are merged, and a routed batch nobody answered is sent again.
    """
    # input_checks: MinimumItems is read (and, if JobSettings lacks it, taken out) before parsing.
    raw_settings, minimum_items = input_checks.split_settings(event.get("Input"))
    settings = JobSettings.parse(raw_settings)
    deployment = event.get("Deployment") or {}
    execution_name = event.get("ExecutionName") or "local"
    class_names = _class_names(settings)
    algorithm = (deployment.get("Algorithms") or {}).get(settings.task_type)
    if not algorithm or not all(algorithm.get(k) for k in ("TrainingImage", "InferenceImage", "SourceDirUri")):
        raise ConfigurationError(
            f"this deployment has no algorithm for task type {settings.task_type!r} "
            "(deploy with the parameters `labelloop prepare-deploy` prints)"
        )
    _check_within_deployment(settings, deployment)
    region = deployment.get("Region", "us-east-1")
    pre_lambda, acs_lambda = built_in_lambda_arns(region, settings.task_type)

    out = settings.output_uri
    previous = storage.read_json(layout.settings_uri(out)) if storage.exists(layout.settings_uri(out)) else None
    if previous is not None:
        _check_same_job(previous, settings, class_names)
    locks.acquire(layout.lock_uri(out), execution_name, event.get("ExecutionArn"))
    storage.write_json(layout.settings_uri(out), settings.to_json())
    storage.write_json(layout.label_config_uri(out), label_category_config(class_names))
    storage.write_text(layout.ui_template_uri(out), task_ui_template(settings.task_type))

    config = {
        "Settings": settings.to_json(),
        "RunId": settings.run_id(execution_name),
        "ClassNames": class_names,
        "LabelCategoryConfigUri": layout.label_config_uri(out),
        "UiTemplateUri": layout.ui_template_uri(out),
        "TrainingImage": algorithm["TrainingImage"],
        "InferenceImage": algorithm["InferenceImage"],
        "SourceDirUri": algorithm["SourceDirUri"],
        "TrainingInstanceType": deployment.get("TrainingInstanceType", "ml.m5.xlarge"),
        "TransformInstanceType": deployment.get("TransformInstanceType", "ml.m5.xlarge"),
        "PreHumanTaskLambdaArn": pre_lambda,
        "AnnotationConsolidationLambdaArn": acs_lambda,
        "TaskTitle": task_title(settings.task_type),
        "TaskDescription": f"Choose one of {len(class_names)} categories",
        "MaxConcurrentTaskCount": min(1000, settings.human_batch_size),
    }
    if previous is not None:
        state = _resume_state(config, settings)
        if state is not None:
            return {"config": config, "state": state}

    ledger_uri = layout.ledger_uri(out, 0, "input")
    checks = input_checks.InputChecks(settings, deployment, minimum_items)  # input_checks: per line and per job
    counts = _write_input_ledger(settings, class_names, ledger_uri, checks)
    state = {
        "Iteration": 1,
        "LedgerUri": ledger_uri,
        "Total": counts["total"],
        "Rejected": counts["rejected"],
        "PreLabeled": counts["labeled"],
        "HumanLabeled": 0,
        "AutoLabeled": 0,
        "Remaining": counts["total"] - counts["labeled"],
        "HumanBatch": {"Count": 0},
        "RetrainFirst": False,
        "ModelArtifacts": None,
        "StopReason": None,
        "Resumed": False,
    }
    return {"config": config, "state": state}


def _check_within_deployment(settings: JobSettings, deployment: dict[str, Any]) -> None:
    """On AWS the roles only reach the stack's bucket and job-name prefix: say so before any job starts."""
    prefix, bucket = deployment.get("JobNamePrefix"), deployment.get("DataBucket")
    if prefix and not settings.job_name.lower().startswith(prefix.lower()):
        raise ConfigurationError(f"JobName {settings.job_name!r} must start with this stack's job-name prefix {prefix!r}")
    if bucket:
        uris = {
            "ManifestUri": settings.manifest_uri,
            "OutputUri": settings.output_uri,
            "LabelCategoryConfigUri": settings.label_category_config_uri,
            "InitialModelArtifacts": settings.initial_model_artifacts,
        }
        for name, uri in uris.items():
            if uri and not uri.startswith(f"s3://{bucket}/"):
                raise ConfigurationError(f"{name} {uri!r} is outside this stack's data bucket s3://{bucket}/")


def _check_same_job(previous: dict, settings: JobSettings, class_names: list[str]) -> None:
    """A run may resume with new budgets, never with a different dataset or label set."""
    now = settings.to_json()
    for key in ("ManifestUri", "TaskType", "LabelAttributeName"):
        if previous.get(key) != now[key]:
            raise ConfigurationError(
                f"{settings.output_uri} holds a run with {key}={previous.get(key)!r}, not {now[key]!r}: "
                "choose another output location"
            )
    old_classes = previous.get("LabelCategories") or None
    if old_classes and old_classes != class_names:
        raise ConfigurationError(f"{settings.output_uri} holds a run with label categories {old_classes}, not {class_names}")


def _resume_state(config: dict[str, Any], settings: JobSettings) -> dict[str, Any] | None:
    """The state to go on from, rebuilt from what the earlier run wrote; None if it wrote no ledger."""
    out = settings.output_uri
    found = layout.ledgers(storage.list_objects(storage.join(out, "iterations")))
    if not found:
        return None
    iteration, stage, ledger_uri = found[-1]
    next_iteration = iteration + 1 if stage != "input" else 1
    # A routed batch for the next iteration: merge its answers if its labeling job finished.
    batch_uri = storage.join(layout.iteration_dir(out, next_iteration), "human-input.manifest")
    pending = storage.exists(batch_uri)
    answered = None
    if pending:
        outputs = [
            u for u in storage.list_objects(storage.join(out, "labeling"))
            if u.endswith(layout.labeling_output_suffix(next_iteration))
        ]
        answered = outputs[-1] if outputs else None
    total = pre = human = auto = 0
    for record in storage.iter_json_lines(ledger_uri):
        total += 1
        label = ledger.label_of(record)
        if label is not None:
            pre += label.iteration == 0
            human += label.human and label.iteration > 0
            auto += not label.human and label.iteration > 0
    state = {
        "Iteration": next_iteration,
        "LedgerUri": ledger_uri,
        "Total": total,
        "Rejected": sum(1 for _ in storage.iter_lines(layout.rejected_uri(out))) if storage.exists(layout.rejected_uri(out)) else 0,
        "PreLabeled": pre,
        "HumanLabeled": human,
        "AutoLabeled": auto,
        "Remaining": total - pre - human - auto,
        "HumanBatch": {"Count": 0},
        # The last gate held its batch back to retrain first: do that, as it would have.
        "RetrainFirst": not pending and stage == "auto" and bool(_stored_metrics(out, iteration).get("RetrainFirst")),
        "ModelArtifacts": None,
        "StopReason": None,
        "Resumed": True,
    }
    if pending:
        count = sum(1 for _ in storage.iter_lines(batch_uri))
        state["HumanBatch"] = {
            "Count": count,
            "ManifestUri": batch_uri,
            "OutputUri": storage.join(out, "labeling"),
            "LabelingJobName": layout.job_name(settings.job_name, config["RunId"], next_iteration, "label"),
        }
        if answered:
            # Paid-for answers that the crash kept from being merged: merge them now, and let the
            # loop carry on from the next step with nothing sent to humans twice.
            state = merge_human_labels({"config": config, "state": state, "labeling": {"OutputManifestUri": answered}})
            state["Iteration"] = next_iteration + 1
    return state


def _stored_metrics(out: str, iteration: int) -> dict[str, Any]:
    uri = layout.metrics_uri(out, iteration)
    return storage.read_json(uri) if storage.exists(uri) else {}


def _class_names(settings: JobSettings) -> list[str]:
    if settings.label_categories:
        return list(settings.label_categories)
    uri = settings.label_category_config_uri
    try:
        data = storage.read_json(uri)
    except FileNotFoundError:
        raise ConfigurationError(f"label category config {uri} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"label category config {uri} is not JSON ({exc.msg})") from None
    return parse_label_category_config(data, uri)


def _write_input_ledger(
    settings: JobSettings, class_names: list[str], ledger_uri: str, checks: "input_checks.InputChecks | None" = None
) -> dict[str, int]:
    attribute = settings.label_attribute
    seen: dict[int, int] = {}  # 8-byte digest of each item key -> its line: flat memory for a million lines
    total = rejected = labeled = lines = 0
    try:
        source_lines = storage.iter_lines(settings.manifest_uri)
        with storage.LineWriter(ledger_uri) as out, storage.LineWriter(layout.rejected_uri(settings.output_uri)) as bad:
            for number, text in iter_json_lines(source_lines):
                lines += 1
                try:
                    line = parse_line(text, number)
                    key = item_key(line)
                    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
                    if digest in seen:
                        raise ManifestError(f"line {number}: duplicate of line {seen[digest]} ({key[:80]})")
                    seen[digest] = number
                    label = _existing_label(line, attribute, class_names, number, settings.job_name)
                    if checks is not None:  # input_checks: the referenced object exists, is readable, decodes
                        checks.check_line(line, number)
                except ManifestError as exc:
                    rejected += 1
                    bad.write({"line": number, "reason": str(exc), "text": text[:10_000]})
                    continue
                source = {k: v for k, v in line.items() if k not in (attribute, f"{attribute}-metadata")}
                out.write(ledger.new_record(total, source, label))
                labeled += label is not None
                total += 1
    except FileNotFoundError:
        raise InputManifestError(f"input manifest {settings.manifest_uri} does not exist") from None
    if lines == 0:
        raise InputManifestError(f"input manifest {settings.manifest_uri} is empty")
    if rejected > MAX_REJECTED_SHARE * lines:
        raise InputManifestError(
            f"{rejected} of {lines} lines of {settings.manifest_uri} are invalid (more than 10 %); "
            f"see {layout.rejected_uri(settings.output_uri)} for each line and its problem"
        )
    if checks is not None:  # input_checks: too few valid items fails the job before anyone is paid
        checks.check_job(total, layout.rejected_uri(settings.output_uri))
    return {"total": total, "rejected": rejected, "labeled": labeled}


def _existing_label(line: dict, attribute: str, class_names: list[str], number: int, job: str) -> Label | None:
    """A label the input line already carries is kept as it is, never re-labeled."""
    if attribute not in line:
        return None
    value = line[attribute]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(class_names):
        raise ManifestError(
            f"line {number}: existing label {attribute}={value!r} is not a class index in 0..{len(class_names) - 1}"
        )
    meta = line.get(f"{attribute}-metadata") or {}
    return Label(
        class_id=value,
        confidence=float(meta.get("confidence", 1.0)),
        human=meta.get("human-annotated", "yes") == "yes",
        job_name=str(meta.get("job-name", job)),
        created=str(meta.get("creation-date", creation_date())),
        iteration=0,
    )


# ---------------------------------------------------------------- SampleForHumans

ROLE_KEY = "labelloop-role"  # carried in the human batch manifest: why an item was picked


def sample_for_humans(event: dict[str, Any]) -> dict[str, Any]:
    """The first human batch: a seeded random sample of the unlabeled items.

    With the adaptive validation policy part of it (all of it when starting from a given
    model) is drawn as validation; the rest trains the first model.
    """
    config, state = event["config"], event["state"]
    if state["HumanBatch"]["Count"] or state.get("RetrainFirst"):
        # A resumed run re-sends the batch its predecessor routed and nobody answered, or first
        # trains the model its predecessor's last gate called for.
        return state
    settings = JobSettings.parse(config["Settings"])
    want = _human_batch_limit(settings, state, state["Remaining"])
    rng = np.random.default_rng([settings.seed, state["Iteration"]])
    picks = rng.choice(state["Remaining"], size=want, replace=False).tolist() if want else []
    if settings.validation_policy == "adaptive":
        n_val = want if settings.initial_model_artifacts else min(settings.validation_size_for(state["Total"]), want // 2)
    else:
        n_val = 0
    roles = {position: (ledger.VALIDATION if k < n_val else ledger.TRAIN) for k, position in enumerate(picks)}
    chosen: dict[int, str] = {}
    unlabeled = 0
    for record in storage.iter_json_lines(state["LedgerUri"]):
        if record["label"] is None:
            if unlabeled in roles:
                chosen[record["id"]] = roles[unlabeled]
            unlabeled += 1
    return {**state, "HumanBatch": _write_human_batch(config, state["Iteration"], state["LedgerUri"], chosen)}


def _human_batch_limit(settings: JobSettings, state: dict[str, Any], candidates: int) -> int:
    limit = settings.human_label_limit()
    left = candidates if limit is None else max(0, limit - state["HumanLabeled"])
    return max(0, min(settings.human_batch_size, left, candidates))


GUESS_KEY = "labelloop-guess"  # the model's guess, shown to people on the local worker page


def _write_human_batch(
    config: dict, iteration: int, ledger_uri: str, chosen: dict[int, str], guesses: dict[int, dict] | None = None
) -> dict[str, Any]:
    """Write the labeling job's input manifest for the chosen items ({id: role})."""
    guesses = guesses or {}
    if not chosen:
        return {"Count": 0}
    settings = config["Settings"]
    out = settings["OutputUri"]
    batch_uri = storage.join(layout.iteration_dir(out, iteration), "human-input.manifest")
    with storage.LineWriter(batch_uri) as writer:
        for record in storage.iter_json_lines(ledger_uri):
            if record["id"] in chosen:
                line = {**ledger.job_line(record), ROLE_KEY: chosen[record["id"]]}
                if record["id"] in guesses:
                    line[GUESS_KEY] = guesses[record["id"]]
                writer.write(line)
    return {
        "Count": writer.count,
        "ManifestUri": batch_uri,
        "OutputUri": storage.join(out, "labeling"),
        "LabelingJobName": layout.job_name(settings["JobName"], config["RunId"], iteration, "label"),
    }


# ---------------------------------------------------------------- MergeHumanLabels


def merge_human_labels(event: dict[str, Any]) -> dict[str, Any]:
    """Add the labeling job's answers to the ledger. Items it did not label stay unlabeled."""
    config, state, labeling = event["config"], event["state"], event["labeling"]
    attribute = config["Settings"]["LabelAttributeName"]
    n_classes = len(config["ClassNames"])
    batch = {line[ID_KEY]: line.get(ROLE_KEY, ledger.TRAIN) for line in storage.iter_json_lines(state["HumanBatch"]["ManifestUri"])}
    batch_ids = set(batch)
    output_uri = labeling["OutputManifestUri"]
    answers: dict[int, Label] = {}
    for number, text in iter_json_lines(storage.iter_lines(output_uri)):
        line = json.loads(text)
        item_id = line.get(ID_KEY)
        if item_id not in batch_ids:
            raise LabelingOutputError(f"{output_uri} line {number}: item {item_id!r} was not in this batch")
        if item_id in answers:
            raise LabelingOutputError(f"{output_uri} line {number}: item {item_id} answered twice")
        if attribute not in line:
            continue  # Ground Truth lists objects it failed to label without the attribute
        value, meta = line[attribute], line.get(f"{attribute}-metadata") or {}
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < n_classes:
            raise LabelingOutputError(f"{output_uri} line {number}: label {value!r} is not a class index")
        answers[item_id] = Label(
            class_id=value,
            confidence=float(meta.get("confidence", 1.0)),
            human=True,
            job_name=str(meta.get("job-name", state["HumanBatch"]["LabelingJobName"])),
            created=str(meta.get("creation-date", creation_date())),
            iteration=state["Iteration"],
        )
    splits = _assign_splits(JobSettings.parse(config["Settings"]), state, answers, batch)
    new_uri = layout.ledger_uri(config["Settings"]["OutputUri"], state["Iteration"], "human")
    remaining = _rewrite_ledger(state["LedgerUri"], new_uri, answers, splits)["remaining"]
    return {
        **state,
        "LedgerUri": new_uri,
        "HumanLabeled": state["HumanLabeled"] + len(answers),
        "HumanLabeledThisIteration": len(answers),
        "Remaining": remaining,
        "HumanBatch": {"Count": 0},
    }


def _assign_splits(settings: JobSettings, state: dict, answers: dict[int, Label], batch: dict[int, str]) -> dict[int, str]:
    """Which new human labels validate and which train, per the validation policy."""
    if settings.validation_policy == "adaptive":
        return {i: batch[i] for i in answers}
    if settings.validation_policy == "ground-truth":
        share = settings.validation_share(state["Total"])
        return {i: ledger.VALIDATION if ledger.is_validation(i, settings.seed, share) else ledger.TRAIN for i in answers}
    # frozen-first: the first share of the first batch, in batch order, never refreshed.
    first = state["Iteration"] == 1
    n_val = int(np.ceil(settings.validation_share(state["Total"]) * len(answers))) if first else 0
    ordered = [i for i in batch if i in answers]
    return {i: ledger.VALIDATION if k < n_val else ledger.TRAIN for k, i in enumerate(ordered)}


def _rewrite_ledger(
    src: str,
    dst: str,
    new_labels: "dict[int, Label] | _AutoLabels",
    splits: dict[int, str] | None = None,
    regate: bool = False,
    verdicts: dict[int, dict] | None = None,
) -> dict[str, int]:
    """Stream the ledger into a new file with new labels applied; counts what changed.

    remaining: items without a label; auto: auto-labels this job made, now; new_auto: of them,
    items unlabeled before; withdrawn / relabeled: provisional auto-labels dropped / changed class.
    """
    counts = dict.fromkeys(("remaining", "auto", "new_auto", "withdrawn", "relabeled"), 0)
    with storage.LineWriter(dst) as writer:
        before = storage.iter_json_lines(src)
        for old, record in ledger.apply_labels(before, new_labels, splits, regate, verdicts):
            label, previous = record["label"], old["label"]
            counts["remaining"] += label is None
            own = ledger.is_provisional(label)
            counts["auto"] += own
            counts["new_auto"] += own and previous is None
            if ledger.is_provisional(previous):
                counts["withdrawn"] += label is None
                counts["relabeled"] += label is not None and label["class"] != previous["class"]
            writer.write(record)
    return counts


# ---------------------------------------------------------------- SplitValidation


def split_validation(event: dict[str, Any]) -> dict[str, Any]:
    """Write this iteration's train/validation channels and the unlabeled items' transform input."""
    config, state = event["config"], event["state"]
    settings = config["Settings"]
    attribute, seed = settings["LabelAttributeName"], settings["Seed"]
    it = state["Iteration"]
    base = layout.iteration_dir(settings["OutputUri"], it)
    uris = {
        "train": storage.join(base, "channels", "train", "train.manifest"),
        "validation": storage.join(base, "channels", "validation", "validation.manifest"),
        "unlabeled": storage.join(base, "transform-input", "unlabeled", "unlabeled.manifest"),
    }
    job_scope = settings.get("CalibrationScope") == "job"
    retired = retired_right = 0
    with (
        storage.LineWriter(uris["train"]) as train,
        storage.LineWriter(uris["validation"]) as validation,
        storage.LineWriter(uris["unlabeled"]) as unlabeled,
    ):
        for record in storage.iter_json_lines(state["LedgerUri"]):
            label = ledger.label_of(record)
            if label is None or (job_scope and ledger.is_provisional(record["label"])):
                # Job scope: an auto-label is provisional, judged again by every new model.
                unlabeled.write(ledger.job_line(record))
            elif label.human:  # auto-labels never train: the model would learn its own mistakes
                target = validation if ledger.split_of(record) == ledger.VALIDATION else train
                target.write(ledger.channel_line(record, attribute))
                verdict = ledger.verdict_of(record)
                if verdict is not None:
                    retired += 1
                    retired_right += verdict["correct"]
    name = lambda kind: layout.job_name(settings["JobName"], config["RunId"], it, kind)  # noqa: E731
    hyperparameters = {
        "label-attribute": attribute,
        "num-classes": len(config["ClassNames"]),
        "seed": seed + it,
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": config["SourceDirUri"],
    }
    # Pre-labeling: the first iteration is judged with the model the user gave, not trained.
    initial = settings.get("InitialModelArtifacts") or ""
    given = initial if (initial and it == 1) else ""
    return {
        "Train": not given,
        "GivenModelArtifacts": given,
        "TrainingJobName": name("train"),
        "ModelName": name("model"),
        "TrainCount": train.count,
        "ValidationCount": validation.count,
        "UnlabeledCount": unlabeled.count,
        # Verdicts of retired validation items, which the cumulative scope carries over.
        "RetiredValidation": {"Count": retired, "Correct": retired_right},
        "TrainChannelUri": storage.join(base, "channels", "train"),
        "ValidationChannelUri": storage.join(base, "channels", "validation"),
        "ModelOutputUri": storage.join(base, "model"),
        # SageMaker's script-mode convention: every hyperparameter value is a JSON-encoded string.
        "HyperParameters": {k: json.dumps(v) for k, v in hyperparameters.items()},
        "ValidationTransform": {
            "JobName": name("infer-val"),
            "InputUri": storage.join(base, "channels", "validation"),
            "OutputUri": storage.join(base, "inference", "validation"),
        },
        "UnlabeledTransform": {
            "JobName": name("infer-unl"),
            "InputUri": storage.join(base, "transform-input", "unlabeled"),
            "OutputUri": storage.join(base, "inference", "unlabeled"),
        },
    }


# ---------------------------------------------------------------- CalibrateThreshold


def calibrate_threshold(event: dict[str, Any]) -> dict[str, Any]:
    """Pick the confidence threshold from the model's predictions on the validation set."""
    config, iteration = event["config"], event["iteration"]
    settings = config["Settings"]
    attribute = settings["LabelAttributeName"]
    transform = iteration["ValidationTransform"]
    ids, probs, truth = [], [], []
    for item_id, prob, line in _transform_results(transform["OutputUri"], len(config["ClassNames"])):
        ids.append(item_id)
        probs.append(prob)
        truth.append(line[attribute])
    _expect_all(transform["OutputUri"], iteration["ValidationCount"], len(ids))
    probs_arr = np.asarray(probs, dtype=float).reshape(len(ids), len(config["ClassNames"]))
    method = settings["CalibrationMethod"]
    job = JobSettings.parse(settings)
    carried = iteration.get("RetiredValidation") or {"Count": 0, "Correct": 0}
    if job.calibration_scope != "cumulative":
        carried = {"Count": 0, "Correct": 0}
    state = event["state"]
    target = job.working_target(state["Remaining"] / max(1, state["Total"]))
    result = calibrate(
        probs_arr.max(axis=1),
        probs_arr.argmax(axis=1) == np.asarray(truth, dtype=int),
        target_accuracy=target,
        confidence_level=settings["ConfidenceLevel"],
        min_support=settings["MinValidationSupport"],
        carried_correct=carried["Correct"],
        carried_total=carried["Count"],
    )
    threshold = {"lower-bound": result.threshold, "fixed-margin": settings["MarginThreshold"], "none": None}[method]
    out = {
        "Method": method,
        "Threshold": threshold,
        # The bound, support and accuracy vouch for a threshold only when the bound chose it.
        "LowerBound": result.lower_bound if method == "lower-bound" else None,
        "Support": result.support if method == "lower-bound" else None,
        "AccuracyAtThreshold": result.accuracy if method == "lower-bound" else None,
        "ValidationCount": result.validation_count,
        "ValidationAccuracy": result.validation_accuracy,
        "MinSupport": result.min_support,
        "WorkingTarget": target,
        "CarriedSupport": result.carried_support if method == "lower-bound" else 0,
        "PoolLowerBound": result.pool_bound if method == "lower-bound" else None,
    }
    storage.write_json(storage.join(layout.iteration_dir(settings["OutputUri"], state["Iteration"]), "calibration.json"), out)
    return out


def _transform_results(prefix: str, n_classes: int) -> Iterator[tuple[int, list[float], dict]]:
    """(id, probabilities, input line) for each line of a batch transform's joined output."""
    files = [u for u in storage.list_objects(prefix) if u.endswith(".out")]
    for uri in files:
        for number, text in iter_json_lines(storage.iter_lines(uri)):
            where = f"{uri} line {number}"
            try:
                line = json.loads(text)
                probs = line["SageMakerOutput"]["probabilities"]
                item_id = line[ID_KEY]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise AlgorithmOutputError(
                    f"{where}: expected the input line joined with SageMakerOutput.probabilities"
                ) from None
            if not isinstance(probs, list) or len(probs) != n_classes:
                raise AlgorithmOutputError(f"{where}: expected {n_classes} class probabilities")
            arr = np.asarray(probs, dtype=float)
            if not np.all(np.isfinite(arr)) or np.any(arr < 0) or abs(arr.sum() - 1.0) > 1e-3:
                raise AlgorithmOutputError(f"{where}: probabilities must be finite, non-negative and sum to 1")
            yield item_id, probs, line


def _expect_all(prefix: str, expected: int, got: int) -> None:
    if expected != got:
        raise AlgorithmOutputError(f"batch transform output under {prefix} has {got} predictions for {expected} items")


# ---------------------------------------------------------------- GateAndRoute


def _predictions(prefix: str, n_classes: int, expected: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probabilities) from a batch transform's output, checked complete.

    Filled into preallocated arrays: a million items' predictions take 8 bytes a number, not
    the hundreds a Python list of floats would.
    """
    ids = np.empty(expected, dtype=np.int64)
    probs = np.empty((expected, n_classes), dtype=np.float64)
    got = 0
    for item_id, prob, _ in _transform_results(prefix, n_classes):
        if got == expected:
            raise AlgorithmOutputError(f"batch transform output under {prefix} has more predictions than its {expected} items")
        ids[got] = item_id
        probs[got] = prob
        got += 1
    _expect_all(prefix, expected, got)
    return ids, probs


class _AutoLabels:
    """The auto-labels of one gate, looked up by item id without a million Label objects."""

    def __init__(self, ids: np.ndarray, classes: np.ndarray, confidences: np.ndarray, tail: np.ndarray, make: Any):
        self._index = {int(i): k for k, i in enumerate(ids)}
        self._classes, self._confidences, self._tail, self._make = classes, confidences, tail, make

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._index

    def __getitem__(self, item_id: int) -> Label:
        k = self._index[item_id]
        return self._make(int(self._classes[k]), float(self._confidences[k]), bool(self._tail[k]))

    def __len__(self) -> int:
        return len(self._index)


def _confident(probs: np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    threshold = calibration["Threshold"]
    if threshold is None:
        return np.zeros(len(probs), dtype=bool)
    if calibration["Method"] == "fixed-margin":
        top2 = np.sort(probs, axis=1)[:, -2:]
        return (top2[:, 1] - top2[:, 0]) > threshold
    return probs.max(axis=1) >= threshold


def _worst_case_tail(
    settings: JobSettings, state: dict[str, Any], cal: dict[str, Any], confident: np.ndarray
) -> tuple[np.ndarray, float | None]:
    """Cumulative scope: the items left below the threshold, when the bound's slack pays for all of them.

    The bound vouches for the job's auto-labels (earlier ones and this gate's) with room above
    the target; if that room covers every item still open even with each one counted as an
    error, they are auto-labeled too and the job ends. Only then: no later gate exists whose
    bound would have to carry them. Returns their mask over the pool and the bound that then
    vouches for all of the job's auto-labels.
    """
    tail = np.zeros(len(confident), dtype=bool)
    pool_bound = cal.get("PoolLowerBound")
    if not (settings.worst_case_tail and settings.calibration_scope == "cumulative" and cal["Method"] == "lower-bound"):
        return tail, pool_bound
    limit = settings.human_label_limit()
    if limit is not None and state["HumanLabeled"] >= limit:
        return tail, pool_bound  # a spent budget leaves what is open unlabeled, never below the threshold
    pool = state["AutoLabeled"] + int(confident.sum())
    left = int((~confident).sum())
    if left and worst_case_tail(pool_bound, pool, cal["WorkingTarget"]) >= left:
        tail = ~confident
        pool_bound = pool_bound * pool / (pool + left)
    return tail, pool_bound


def _retire_confident_validation(
    settings: JobSettings, it: int, val_ids: np.ndarray, val_p: np.ndarray, val_confident: np.ndarray
) -> tuple[dict[int, str], dict[int, dict]]:
    """Iteration and cumulative scopes: the validation items this model would auto-label.

    Such an item no longer resembles the pool that is left, so it stops judging and starts
    training. Cumulative scope: it keeps the verdict this model earned on it, which stands for
    the items auto-labeled with it in every later bound.
    """
    retired: dict[int, str] = {}
    verdicts: dict[int, dict] = {}
    for k in np.nonzero(val_confident)[0]:
        retired[int(val_ids[k])] = ledger.RETIRED
        if settings.calibration_scope == "cumulative":
            verdicts[int(val_ids[k])] = {"iteration": it, "predicted": int(val_p[k].argmax()), "confidence": round(float(val_p[k].max()), 6)}
    return retired, verdicts


def _limit_reached(settings: JobSettings, it: int, progress: int, labeled_share: float) -> str | None:
    """The stop rule, other than a spent human budget, that sends no more items to humans."""
    if progress == 0:
        return "no-progress"
    if it >= settings.max_iterations:
        return "max-iterations"
    if settings.max_percentage_labeled is not None and labeled_share >= settings.max_percentage_labeled:
        return "max-percentage-labeled"
    return None


def gate_and_route(event: dict[str, Any]) -> dict[str, Any]:
    """Auto-label the confident items, route the most uncertain of the rest to humans."""
    config, state, iteration, cal = event["config"], event["state"], event["iteration"], event["calibration"]
    settings = JobSettings.parse(config["Settings"])
    it = state["Iteration"]
    n_classes = len(config["ClassNames"])
    job_scope = settings.calibration_scope == "job"
    adaptive = settings.validation_policy == "adaptive" and iteration["ValidationCount"] > 0
    ids, p = _predictions(iteration["UnlabeledTransform"]["OutputUri"], n_classes, iteration["UnlabeledCount"])
    conf, pred = (p.max(axis=1), p.argmax(axis=1)) if len(ids) else (np.zeros(0), np.zeros(0, dtype=int))
    confident = _confident(p, cal)
    if adaptive:
        val_ids, val_p = _predictions(iteration["ValidationTransform"]["OutputUri"], n_classes, iteration["ValidationCount"])
        val_confident = _confident(val_p, cal)
    tail, pool_bound = _worst_case_tail(settings, state, cal, confident)
    confident |= tail

    # The transform judged every item still open (job scope: provisional auto-labels too), so
    # what is left after this gate is what the model is unsure of.
    remaining = len(ids) - int(confident.sum())
    auto_after = int(confident.sum()) + (0 if job_scope else state["AutoLabeled"])
    progress = state.get("HumanLabeledThisIteration", 0) + max(0, auto_after - state["AutoLabeled"])
    labeled_share = 100.0 * (state["Total"] - remaining) / max(1, state["Total"])
    rest = np.nonzero(~confident)[0]
    # An iteration that retrained on retired validation items asked no humans: it has nothing to
    # show for them, and its gate routes the batch its predecessor held back.
    retrained_on_retired = bool(state.get("RetrainFirst"))
    limit = _limit_reached(settings, it, progress if not retrained_on_retired else 1, labeled_share)
    retired: dict[int, str] = {}
    verdicts: dict[int, dict] = {}
    if adaptive and not job_scope:
        retired, verdicts = _retire_confident_validation(settings, it, val_ids, val_p, val_confident)
    retrain_first = not limit and remaining > 0 and settings.retrains_before_routing(len(retired), iteration["TrainCount"])
    want = 0 if (limit or retrain_first) else _human_batch_limit(settings, state, len(rest))

    # Adaptive validation: random draws top the validation set up to its size, never past it.
    n_validation = 0
    if settings.validation_policy == "adaptive":
        active = iteration["ValidationCount"] - len(retired)
        retired_total = (iteration.get("RetiredValidation") or {}).get("Count", 0) + len(retired)
        n_validation = min(settings.validation_target(state["Total"], active, retired_total), want // 2 or want)
    validation_pick = np.zeros(0, dtype=np.int64)
    if job_scope and n_validation:
        # Job scope: validation stands for every item no human has labeled, auto-labeled or not,
        # so its top-ups are drawn from all of them (a provisional auto-label gives way).
        draw = np.random.default_rng([settings.seed, it, 2]).choice(len(ids), size=min(n_validation, len(ids)), replace=False)
        validation_pick = np.sort(draw)
        confident[validation_pick] = False  # humans will label these; no auto-label meanwhile
        rest = np.setdiff1d(rest, validation_pick)
        want, n_validation = want - len(validation_pick), 0
    n_random = max(round(settings.random_fraction * want), n_validation)
    scores = STRATEGIES[settings.selection_strategy](p[rest]) if len(rest) else np.zeros(0)
    uncertain, random_pick = select_for_humans(
        scores,
        want,
        n_random=n_random,
        predicted=pred[rest] if settings.class_balance else None,
        features=p[rest] if settings.diversity else None,  # class probabilities: the features batch transform returns
        seed=settings.seed + it,
    )
    if job_scope and adaptive:
        # Routing just took the uncertain items out of the pool; the validation items that stand
        # for such items leave the validation set the same way (and train from now on), so it
        # stays a uniform sample of the items no human has labeled.
        below = np.nonzero(~val_confident)[0]
        routed = shadow_route(
            scores, pred[rest], uncertain, len(random_pick),
            STRATEGIES[settings.selection_strategy](val_p[below]), val_p[below].argmax(axis=1),
            diversity=settings.diversity, seed=settings.seed + it,
        )
        retired = {int(i): ledger.RETIRED for i in val_ids[below[routed]]}

    now = creation_date()
    auto_job = layout.job_name(settings.job_name, config["RunId"], it, "auto")
    # (threshold, bound) that vouch for an auto-label: the calibrated ones, or for the tail none and the pool's.
    vouched = {False: (cal["Threshold"], cal["LowerBound"]), True: (None, pool_bound)}
    auto = _AutoLabels(
        ids[confident], pred[confident], conf[confident], tail[confident],
        lambda c, s, in_tail: Label(c, s, False, auto_job, now, it, *vouched[in_tail], cal["Support"]),
    )
    new_uri = layout.ledger_uri(settings.output_uri, it, "auto")
    counts = _rewrite_ledger(state["LedgerUri"], new_uri, auto, retired, regate=job_scope, verdicts=verdicts)
    remaining = counts["remaining"]

    # Positions into `ids`: the routed items train; of the random draws, a random n_validation validate.
    shuffled = rest[np.random.default_rng([settings.seed, it, 1]).permutation(random_pick)]
    roles = [(rest[uncertain], ledger.TRAIN), (validation_pick, ledger.VALIDATION),
             (shuffled[:n_validation], ledger.VALIDATION), (shuffled[n_validation:], ledger.TRAIN)]
    chosen = {int(ids[k]): role for positions, role in roles for k in positions}
    guesses = {int(ids[k]): {"class": int(pred[k]), "confidence": round(float(conf[k]), 4)} for positions, _ in roles for k in positions}
    batch = _write_human_batch(config, it + 1, new_uri, chosen, guesses)

    stop = None
    if remaining == 0:
        stop = "all-labeled"
    elif batch["Count"] == 0 and not retrain_first:
        stop = limit or "human-budget-spent"
    metrics = {
        "Iteration": it,
        "HumanLabeled": state["HumanLabeled"],
        "HumanLabeledThisIteration": state.get("HumanLabeledThisIteration", 0),
        "HumanCost": settings.human_cost(state["HumanLabeled"]),
        "AutoLabeled": counts["auto"],  # this job's auto-labels, as of this gate
        "AutoLabeledThisIteration": counts["new_auto"],
        "AutoLabelsWithdrawn": counts["withdrawn"],
        "AutoLabelsRelabeled": counts["relabeled"],
        "Remaining": remaining,
        "Threshold": cal["Threshold"],
        "CalibrationMethod": cal["Method"],
        "LowerBound": cal["LowerBound"],
        "Support": cal["Support"],
        "ValidationAccuracy": cal["ValidationAccuracy"],
        "ValidationCount": cal["ValidationCount"],
        "ValidationRetired": len(retired),
        "WorkingTarget": cal.get("WorkingTarget"),
        "CarriedSupport": cal.get("CarriedSupport", 0),
        "WorstCaseTail": int(tail.sum()),
        "PoolLowerBound": pool_bound,  # vouches for all of the job's auto-labels after this gate
        "TrainCount": iteration["TrainCount"],
        "NextHumanBatch": batch["Count"],
        "RetrainedOnRetired": retrained_on_retired,
        "RetrainFirst": retrain_first,  # the next iteration trains on this gate's retired items before routing
        "StopReason": stop,
    }
    storage.write_json(layout.metrics_uri(settings.output_uri, it), metrics)
    return {
        **state,
        "Iteration": it + 1,
        "LedgerUri": new_uri,
        "AutoLabeled": metrics["AutoLabeled"],
        "Remaining": remaining,
        "HumanLabeledThisIteration": 0,
        "HumanBatch": batch,
        "RetrainFirst": retrain_first,
        "ModelArtifacts": (event.get("training") or {}).get("ModelArtifacts"),
        "StopReason": stop,
        "LastMetrics": metrics,
    }


# ---------------------------------------------------------------- ExportOutput


def export_output(event: dict[str, Any]) -> dict[str, Any]:
    """Write the Ground Truth output manifest (every input item once) and the run's summary."""
    config, state = event["config"], event["state"]
    settings = config["Settings"]
    out = settings["OutputUri"]
    error = event.get("error")
    if error:  # called from the failure path: the labels so far, and why the loop could not go on
        reason = f"failed: {error.get('Error')}"
    else:
        reason = state.get("StopReason") or ("all-labeled" if state["Remaining"] == 0 else "human-budget-spent")
    counts = {"human": 0, "auto": 0, "unlabeled": 0}
    manifest_uri = layout.output_manifest_uri(out)
    with storage.LineWriter(manifest_uri) as writer:
        for record in storage.iter_json_lines(state["LedgerUri"]):
            label = ledger.label_of(record)
            counts["unlabeled" if label is None else "human" if label.human else "auto"] += 1
            writer.write(
                output_line(
                    record["source"],
                    label,
                    attribute=settings["LabelAttributeName"],
                    task_type=settings["TaskType"],
                    class_names=config["ClassNames"],
                    unlabeled_reason=f"not labeled: the loop stopped ({reason})",
                    job_name=settings["JobName"],
                )
            )
    summary = {
        "OutputManifestUri": manifest_uri,
        "RejectedManifestUri": layout.rejected_uri(out),
        "Total": state["Total"],
        "Rejected": state.get("Rejected", 0),
        "HumanLabeled": counts["human"],
        "HumanLabeledByThisJob": state["HumanLabeled"],
        "AutoLabeled": counts["auto"],
        "Unlabeled": counts["unlabeled"],
        "Iterations": state["Iteration"] - 1,
        "HumanCost": JobSettings.parse(settings).human_cost(state["HumanLabeled"]),
        "StopReason": reason,
        "Error": error,
        "FinalModelArtifacts": state.get("ModelArtifacts"),
    }
    storage.write_json(layout.summary_uri(out), summary)
    locks.release(layout.lock_uri(out), event.get("ExecutionName"))
    if error:
        # The Fail state's cause: the failed step's error name and cause, and where the labels are.
        summary["Cause"] = f"{error.get('Error')}: {error.get('Cause')} (labels so far: {manifest_uri})"
    return summary
