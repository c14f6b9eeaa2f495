"""Bootstrap: check the settings, read the input manifest into the first ledger, write the job's config."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from typing import Any

from labelloop import aws_limits, input_checks, layout, ledger, locks, storage, tasks
from labelloop.config import (
    ConfigurationError,
    JobSettings,
    label_category_config,
    parse_label_category_config,
)
from labelloop.contracts import Config, LoopState
from labelloop.errors import InputManifestError
from labelloop.manifest import RESERVED_PREFIX, ManifestBytes, ManifestError, decode_line, item_key, parse_line
from labelloop.steps.resume import resume_state

# Ground Truth fails a job when more than 10 % of its input objects are invalid.
MAX_REJECTED_SHARE = 0.10


def bootstrap(event: dict[str, Any]) -> dict[str, Any]:
    """Check the settings, read the input manifest into the first ledger, write the job's config.

    An output location that already holds a run of the same manifest is resumed: its newest
    ledger (every label paid for) is carried on, answers of a labeling job that finished after
    the last merge are merged, and a routed batch nobody answered is sent again.
    """
    # input_checks: MinimumItems is read (and, if JobSettings lacks it, taken out) before parsing.
    raw_settings, minimum_items = input_checks.split_settings(event.get("Input"))
    settings = JobSettings.parse(raw_settings)
    task = tasks.get(settings.task_type)
    deployment = event.get("Deployment") or {}
    execution_name = event.get("ExecutionName") or "local"
    class_names = _class_names(settings)
    algorithm = (deployment.get("Algorithms") or {}).get(settings.task_type)
    if not algorithm or not all(algorithm.get(k) for k in ("TrainingImage", "InferenceImage", "SourceDirUri")):
        raise ConfigurationError(
            f"this deployment has no algorithm for task type {settings.task_type!r} "
            "(deploy with the parameters `labelloop prepare-deploy` prints)"
        )
    _check_within_deployment(settings, deployment, algorithm)
    _check_attribute_name(settings.label_attribute)
    _check_input_outside_output(settings)
    if settings.initial_model_artifacts:
        input_checks.check_initial_model(settings.initial_model_artifacts)
    region = deployment.get("Region", "us-east-1")
    pre_lambda, acs_lambda = task.built_in_lambda_arns(region)

    out = settings.output_uri
    previous = storage.read_json(layout.settings_uri(out)) if storage.exists(layout.settings_uri(out)) else None
    if previous is not None:
        _check_same_job(previous, settings, class_names)
    locks.acquire(layout.lock_uri(out), execution_name, event.get("ExecutionArn"))
    storage.remove_temp_files(out)  # half-written files of a killed earlier run (the lock keeps live writers out)
    storage.write_json(layout.settings_uri(out), settings.to_json())
    storage.write_json(layout.label_config_uri(out), label_category_config(class_names))
    storage.write_text(layout.ui_template_uri(out), task.ui_template)

    config = Config.model_validate({
        "Settings": settings.to_json(),
        "RunId": settings.run_id(execution_name),
        "ClassNames": class_names,
        "LabelCategoryConfigUri": layout.label_config_uri(out),
        "UiTemplateUri": layout.ui_template_uri(out),
        "TrainingImage": algorithm["TrainingImage"],
        "InferenceImage": algorithm["InferenceImage"],
        "SourceDirUri": algorithm["SourceDirUri"],
        "TrainingInstanceType": algorithm.get("TrainingInstanceType", "ml.m5.xlarge"),  # per framework (template.yaml)
        "TransformInstanceType": algorithm.get("TransformInstanceType", "ml.m5.xlarge"),
        "PreHumanTaskLambdaArn": pre_lambda,
        "AnnotationConsolidationLambdaArn": acs_lambda,
        "TaskTitle": task.title,
        "TaskDescription": task.description(class_names),
        "MaxConcurrentTaskCount": min(1000, settings.human_batch_size),
    }).dump()
    if previous is not None:
        state = resume_state(config, settings)
        if state is not None:
            return {"config": config, "state": state}

    ledger_uri = layout.ledger_uri(out, 0, "input")
    checks = input_checks.InputChecks(settings, deployment, minimum_items)  # input_checks: per line and per job
    counts = _write_input_ledger(settings, task, class_names, ledger_uri, checks)
    storage.write_json(layout.manifest_fingerprint_uri(out), counts.pop("fingerprint"))
    state = LoopState.model_validate({
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
    }).dump()
    return {"config": config, "state": state}


def _check_within_deployment(settings: JobSettings, deployment: dict[str, Any], algorithm: dict[str, Any]) -> None:
    """On AWS the roles only reach the stack's bucket and job-name prefix: say so before any job starts."""
    problems = aws_limits.deployment_problems(algorithm, settings.task_type)  # instance types, per their API
    if problems:
        raise ConfigurationError("; ".join(problems))
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


def _check_attribute_name(attribute: str) -> None:
    """The label attribute becomes a key of every line: it may not be one the lines need for themselves."""
    if attribute in ("source", "source-ref") or attribute.startswith(RESERVED_PREFIX):
        raise ConfigurationError(
            f"LabelAttributeName {attribute!r} is reserved (source, source-ref and keys starting "
            f"{RESERVED_PREFIX!r} are not labels); choose another name"
        )


def _check_input_outside_output(settings: JobSettings) -> None:
    """The run replaces what it writes under its output location: an input kept there would be overwritten."""
    manifest = settings.manifest_uri
    for path in layout.artifact_paths(settings.output_uri):
        if _inside(manifest, path):
            raise ConfigurationError(
                f"input manifest {manifest} is inside {path}, which this run writes to and would overwrite; "
                "move it out of the output location"
            )


def _inside(uri: str, folder: str) -> bool:
    if storage.is_s3(uri) != storage.is_s3(folder):
        return False
    if not storage.is_s3(uri):
        uri, folder = os.path.realpath(uri), os.path.realpath(folder)
    return uri == folder or uri.startswith(folder.rstrip("/") + "/")


def _check_same_job(previous: dict, settings: JobSettings, class_names: list[str]) -> None:
    """A run may resume with new budgets, never with a different dataset or label set.

    A paid label is stored as a class index: new categories, or the same in another order, would
    give it another class name. The manifest must hold the same bytes (when the earlier run got
    as far as a ledger): an appended line would never be labeled, an edited one mislabeled.
    """
    now = settings.to_json()
    for key in ("ManifestUri", "TaskType", "LabelAttributeName"):
        if previous.get(key) != now[key]:
            raise ConfigurationError(
                f"{settings.output_uri} holds a run with {key}={previous.get(key)!r}, not {now[key]!r}: "
                "choose another output location"
            )
    out = settings.output_uri
    old_classes = previous.get("LabelCategories") or None
    if not old_classes and storage.exists(layout.label_config_uri(out)):
        old_classes = parse_label_category_config(storage.read_json(layout.label_config_uri(out)), "the run's categories")
    if old_classes and old_classes != class_names:
        change = "the same categories in another order" if sorted(old_classes) == sorted(class_names) else "other categories"
        raise ConfigurationError(
            f"{out} holds a run with label categories {old_classes}; this job gives {class_names} ({change}). "
            "Labels are kept as class numbers, so the paid labels would change class: use the run's categories, "
            "in its order, or choose another output location"
        )
    fingerprint_uri = layout.manifest_fingerprint_uri(out)
    if storage.exists(fingerprint_uri) and layout.ledgers(storage.list_objects(layout.iterations_root(out))):
        _check_same_manifest(settings.manifest_uri, storage.read_json(fingerprint_uri), out)


def _check_same_manifest(uri: str, then: dict, out: str) -> None:
    now = ManifestBytes(prefix_bytes=then["Bytes"])
    for _ in now.split(storage.iter_chunks(uri)):
        pass
    if now.sha256 == then["Sha256"]:
        return
    if now.size > then["Bytes"] and now.prefix_sha256 == then["Sha256"]:
        difference = (f"{now.size - then['Bytes']:,} bytes were appended after its {then['Lines']:,} lines "
                      f"(now {now.lines:,} lines): the new items would never be labeled")
    else:
        difference = (f"its content was edited ({then['Bytes']:,} bytes, {then['Lines']:,} lines, "
                      f"sha256 {then['Sha256'][:12]}... then; {now.size:,} bytes, {now.lines:,} lines, "
                      f"sha256 {now.sha256[:12]}... now)")
    raise ConfigurationError(
        f"input manifest {uri} changed since the run in {out} read it: {difference}. Restore the manifest "
        "to resume, or label the new manifest into another output location (taking new items into a run "
        "is not supported)"
    )


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
    settings: JobSettings,
    task: "tasks.TaskType",
    class_names: list[str],
    ledger_uri: str,
    checks: "input_checks.InputChecks | None" = None,
) -> dict[str, int]:
    attribute = settings.label_attribute
    seen: dict[int, int] = {}  # 8-byte digest of each item key -> its line: flat memory for a million lines
    total = rejected = labeled = lines = 0
    manifest = ManifestBytes()
    failure: InputManifestError | None = None
    try:
        source_lines = manifest.split(storage.iter_chunks(settings.manifest_uri))
        # The job-level checks run before the ledger is committed: a refused manifest leaves no ledger
        # (a later run would resume from it, ignoring the fixed manifest), only its rejected lines.
        with storage.LineWriter(layout.rejected_uri(settings.output_uri)) as bad:
            try:
                with storage.LineWriter(ledger_uri) as out:
                    for number, raw in source_lines:
                        if not raw.strip():
                            continue
                        lines += 1
                        try:
                            line, label = _read_item(raw, number, task, settings, class_names, seen, checks)
                        except ManifestError as exc:
                            rejected += 1
                            shown = raw[:10_000].decode("utf-8", "replace").strip()  # bytes that are not UTF-8 too
                            bad.write({"line": number, "reason": str(exc), "text": shown})
                            continue
                        source = {k: v for k, v in line.items() if k not in (attribute, f"{attribute}-metadata")}
                        out.write(ledger.new_record(total, source, label))
                        labeled += label is not None
                        total += 1
                    _check_counts(settings, lines, rejected, total, checks)
            except InputManifestError as exc:
                failure = exc
    except FileNotFoundError:
        raise InputManifestError(f"input manifest {settings.manifest_uri} does not exist") from None
    if failure is not None:
        raise failure
    return {"total": total, "rejected": rejected, "labeled": labeled, "fingerprint": manifest.fingerprint()}


def _read_item(raw: bytes, number: int, task: "tasks.TaskType", settings: JobSettings, class_names: list[str],
               seen: dict[int, int], checks: "input_checks.InputChecks | None") -> tuple[dict[str, Any], Any]:
    """(input line, the label it already carries or None); ManifestError names the line and its problem."""
    line = parse_line(decode_line(raw, number).strip(), number)
    key = _duplicate_key(line)
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    if digest in seen:
        raise ManifestError(f"line {number}: duplicate of line {seen[digest]} ({key[:80]})")
    seen[digest] = number
    # A label the input line already carries is kept as it is, never re-labeled.
    label = task.existing_label(line, settings.label_attribute, class_names, number, settings.job_name)
    if checks is not None:  # input_checks: the referenced object exists, is readable, decodes
        checks.check_line(line, number)
    return line, label


def _check_counts(settings: JobSettings, lines: int, rejected: int, total: int,
                  checks: "input_checks.InputChecks | None") -> None:
    if lines == 0:
        raise InputManifestError(f"input manifest {settings.manifest_uri} is empty")
    if rejected > MAX_REJECTED_SHARE * lines:
        raise InputManifestError(
            f"{rejected} of {lines} lines of {settings.manifest_uri} are invalid (more than 10 %); "
            f"see {layout.rejected_uri(settings.output_uri)} for each line and its problem"
        )
    if checks is not None:  # input_checks: too few valid items fails the job before anyone is paid
        checks.check_job(total, layout.rejected_uri(settings.output_uri))


def _duplicate_key(line: dict[str, Any]) -> str:
    """An item's key with its spelling normalised: ./a.png, //a.png and a link to a.png are one image."""
    ref = line.get("source-ref")
    if not isinstance(ref, str) or "\x00" in ref:
        return item_key(line)
    if storage.is_s3(ref):
        bucket, _, key = ref[len("s3://"):].partition("/")
        return f"s3://{bucket}/{posixpath.normpath('/' + key).lstrip('/')}" if key else ref
    return os.path.realpath(ref) if os.path.isabs(ref) else ref
