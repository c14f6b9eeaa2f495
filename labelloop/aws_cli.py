"""labelloop commands for a deployed stack: `prepare-deploy`, `start`, `status`.

`add_aws_commands(subparsers)` adds them to the `labelloop` parser. Plain boto3: the stack is
found by its CloudFormation Outputs (template.yaml), executions by their ARN.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any, Iterable, TextIO

from labelloop import metrics_table, tasks
from labelloop.cli_help import LABEL_ATTRIBUTE_HELP, TASK_TYPE_HELP
from labelloop.config import ConfigurationError, JobSettings
from labelloop.deploy import CPU_INSTANCE, DeployError, parameter_overrides, prepare_deploy, stack_outputs

# ---------------------------------------------------------------- helpers


def _session(region: str | None):
    import boto3

    return boto3.session.Session(region_name=region) if region else boto3.session.Session()


def _region_of(session) -> str:
    if not session.region_name:
        raise DeployError("no AWS region: pass --region or set AWS_REGION / AWS_DEFAULT_REGION")
    return session.region_name


def execution_console_url(execution_arn: str) -> str:
    region = execution_arn.split(":")[3]
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


def _bucket_of(uri: str) -> str | None:
    return uri[5:].split("/", 1)[0] if uri.startswith("s3://") else None


# ---------------------------------------------------------------- prepare-deploy


SAMCONFIG = "samconfig.toml"


def samconfig_environment(env: str, path: str = SAMCONFIG) -> tuple[dict[str, Any], dict[str, str]]:
    """(deploy settings, parameter overrides) of one samconfig.toml environment."""
    import re
    import tomllib

    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except FileNotFoundError:
        raise DeployError(f"{path} not found: run from the repository root or pass --samconfig") from None
    if env not in config:
        raise DeployError(f"{path} has no environment {env!r} (has: {', '.join(sorted(config))})")
    settings = {
        **config[env].get("global", {}).get("parameters", {}),
        **config[env].get("deploy", {}).get("parameters", {}),
    }
    overrides = settings.get("parameter_overrides") or ""
    if isinstance(overrides, list):
        overrides = " ".join(overrides)
    pairs = re.findall(r"""(\w+)=(?:"([^"]*)"|'([^']*)'|(\S*))""", overrides)
    return settings, {key: a or b or c for key, a, b, c in pairs}


def cmd_prepare_deploy(args: argparse.Namespace) -> int:
    try:
        settings, base = samconfig_environment(args.config_env, args.samconfig) if args.config_env else ({}, {})
        bucket = args.bucket or (None if args.stack else base.get("DataBucketName"))
        stack = args.stack or (None if bucket else settings.get("stack_name"))
        session = _session(args.region or settings.get("region"))
        prep = prepare_deploy(
            _region_of(session),
            bucket=bucket,
            stack=stack,
            instance_type_overrides={
                **{k: v for k, v in base.items() if k.endswith("InstanceType")},
                **dict(args.instance_type or []),
            },
            workteam_arn=args.workteam_arn,
            job_name_prefix=args.job_name_prefix,
            session=session,
            set_cors=args.set_cors,
        )
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in prep.notes:
        print(f"note: {note}", file=sys.stderr)
    overrides = parameter_overrides({**base, **prep.parameters})
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(overrides + "\n")
        print(f"parameter overrides written to {args.out}", file=sys.stderr)
    print(overrides)
    return 0


def _instance_type(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.endswith("InstanceType") or not value:
        raise argparse.ArgumentTypeError(f"expected PARAMETER=TYPE (e.g. TextClassificationTrainingInstanceType=ml.m5.xlarge), got {text!r}")
    return key, value


# ---------------------------------------------------------------- start


def _job_defaults(outputs: dict[str, str]) -> dict[str, Any]:
    try:
        defaults = json.loads(outputs.get("JobDefaults") or "{}")
    except json.JSONDecodeError:
        raise DeployError(f"the stack's JobDefaults output is not JSON: {outputs.get('JobDefaults')!r}") from None
    if not defaults.get("MaxHumanLabeledObjectCount"):
        defaults.pop("MaxHumanLabeledObjectCount", None)  # 0: no limit
    return defaults


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or key not in JobSettings.FIELDS:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY one of the execution input fields, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string


def execution_input(args: argparse.Namespace, outputs: dict[str, str], now: datetime) -> dict[str, Any]:
    """The execution input `start` sends: the stack's job defaults, then the command's options."""
    bucket = outputs["DataBucketName"]
    prefix = outputs.get("JobNamePrefix", "")
    job_name = args.job_name or prefix or "labelloop"
    if prefix and not job_name.lower().startswith(prefix.lower()):
        raise ConfigurationError(
            f"--job-name {job_name!r} must start with this stack's JobNamePrefix {prefix!r} "
            f"(its roles may only create SageMaker jobs named so), e.g. --job-name {prefix}-{job_name}"
        )
    data: dict[str, Any] = dict(_job_defaults(outputs))
    data.update(
        {
            "ManifestUri": args.manifest,
            "OutputUri": args.output or f"s3://{bucket}/runs/{job_name}/{now:%Y%m%dT%H%M%SZ}",
            "JobName": job_name,
            "TaskType": args.task_type,
            "LabelAttributeName": args.label_attribute,
        }
    )
    options = {
        "HumanBatchSize": args.human_batch_size,
        "MaxHumanLabeledObjectCount": args.human_budget,
        "MaxHumanCost": args.max_human_cost,
        "TargetAccuracy": args.target_accuracy,
        "ConfidenceLevel": args.confidence,
        "WorkersPerObject": args.workers_per_object,
    }
    data.update({k: v for k, v in options.items() if v is not None})
    if args.labels:
        data["LabelCategories"] = [s.strip() for s in args.labels.split(",")]
    else:
        data["LabelCategoryConfigUri"] = args.label_config
    data.update(dict(args.setting or []))
    if data.get("PricePerAdjustedLabel") is not None:
        raise ConfigurationError(
            "PricePerAdjustedLabel does not apply on AWS: Ground Truth's built-in worker UIs never show the "
            "model's guess, so every routed item is labeled from scratch and paid PricePerLabel"
        )
    JobSettings.parse(data)  # fail here, not in Bootstrap
    for key in ("ManifestUri", "OutputUri", "LabelCategoryConfigUri", "InitialModelArtifacts"):
        uri = data.get(key)
        if uri and _bucket_of(uri) != bucket:
            raise ConfigurationError(
                f"{key} {uri} must be in this stack's data bucket s3://{bucket}/ (its roles read and write "
                f"only there): copy it with `aws s3 cp` first"
            )
    return data


def cmd_start(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        session = _session(args.region)
        _region_of(session)
        outputs = stack_outputs(args.stack, cloudformation=session.client("cloudformation"))
        if "StateMachineArn" not in outputs or "DataBucketName" not in outputs:
            raise DeployError(
                f"stack {args.stack!r} has no StateMachineArn / DataBucketName outputs: is it a labelloop stack?"
            )
        now = datetime.now(timezone.utc)
        data = execution_input(args, outputs, now)
    except (DeployError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = args.execution_name or f"{data['JobName']}-{now:%Y%m%dT%H%M%SZ}"
    if args.dry_run:
        print(json.dumps(data, indent=2), file=out)
        return 0
    arn = session.client("stepfunctions").start_execution(
        stateMachineArn=outputs["StateMachineArn"], name=name, input=json.dumps(data)
    )["executionArn"]
    print(
        f"started {name}\n"
        f"  execution: {arn}\n"
        f"  console:   {execution_console_url(arn)}\n"
        f"  output:    {data['OutputUri']}\n"
        f"  follow:    labelloop status {arn}",
        file=out,
    )
    return 0


# ---------------------------------------------------------------- status


def iteration_rows(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What an execution history says about the loop: the input, one row per iteration, the end.

    Reads the state documents the Task states leave (`stateExitedEventDetails.output`):
    Bootstrap's `state`, GateAndRoute's `state.LastMetrics`, ExportOutput's `summary` (or, on
    the failure path, SavePartialOutput's `failure`).
    """
    report: dict[str, Any] = {"input": None, "iterations": [], "summary": None, "current": None, "failure": None}
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        if entered:
            report["current"] = entered["name"]
        exited = event.get("stateExitedEventDetails")
        if exited and exited.get("name") in ("Bootstrap", "GateAndRoute", "ExportOutput", "SavePartialOutput"):
            if (exited.get("outputDetails") or {}).get("truncated"):
                continue
            try:
                doc = json.loads(exited.get("output") or "null")
            except json.JSONDecodeError:
                continue
            if not isinstance(doc, dict):
                continue
            if exited["name"] == "Bootstrap" and isinstance(doc.get("state"), dict):
                report["input"] = doc["state"]
            elif exited["name"] == "GateAndRoute" and isinstance((doc.get("state") or {}).get("LastMetrics"), dict):
                report["iterations"].append(doc["state"]["LastMetrics"])
            elif exited["name"] == "ExportOutput" and isinstance(doc.get("summary"), dict):
                report["summary"] = doc["summary"]
                if isinstance(doc["summary"].get("FinalHumanBatch"), dict):  # the loop ended on a human batch
                    report["iterations"].append(doc["summary"]["FinalHumanBatch"])
            elif exited["name"] == "SavePartialOutput" and isinstance(doc.get("failure"), dict):
                report["summary"] = doc["failure"]  # the partial output manifest of a failed loop
        failed = event.get("executionFailedEventDetails")
        if failed:
            report["failure"] = failed
    return report


def _execution_input(described: dict[str, Any]) -> dict[str, Any] | None:
    """The settings the execution was started with (its columns depend on the task type)."""
    try:
        data = json.loads(described.get("input") or "null")
    except (TypeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def render_status(described: dict[str, Any], report: dict[str, Any]) -> str:
    lines = [
        f"execution {described['name']}: {described['status']} (started {described['startDate']:%Y-%m-%d %H:%M:%S %Z})"
    ]
    if described.get("stopDate"):
        lines[0] = lines[0][:-1] + f", ended {described['stopDate']:%Y-%m-%d %H:%M:%S %Z})"
    if described["status"] == "RUNNING" and report["current"]:
        lines.append(f"now in: {report['current']}")
    if report["input"]:
        s = report["input"]
        lines.append(
            f"input: {s.get('Total')} items ({s.get('PreLabeled')} already labeled, {s.get('Rejected')} rejected)"
        )
    if report["iterations"]:
        columns = metrics_table.columns(_execution_input(described), terminal=True)
        lines.append(metrics_table.text_header(columns))
        lines.extend(metrics_table.text_row(m, columns) for m in report["iterations"])
    summary = report["summary"]
    if summary:
        lines.append(
            f"stopped: {summary.get('StopReason')}: {summary.get('HumanLabeled')} human, {summary.get('AutoLabeled')} auto, "
            f"{summary.get('Unlabeled')} unlabeled of {summary.get('Total')}"
        )
        lines.append(f"output manifest: {summary.get('OutputManifestUri')}")
    if described["status"] in ("FAILED", "TIMED_OUT", "ABORTED"):
        failure = report["failure"] or {}
        lines.append(f"error: {described.get('error') or failure.get('error')}")
        cause = described.get("cause") or failure.get("cause")
        if cause:
            lines.append(f"cause: {cause}")
    lines.append(f"console: {execution_console_url(described['executionArn'])}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    arn = args.execution_arn
    parts = arn.split(":")
    if len(parts) < 8 or parts[2] != "states" or parts[5] != "execution":
        print(f"error: {arn!r} is not a Step Functions execution ARN", file=sys.stderr)
        return 2
    sfn = _session(args.region or parts[3]).client("stepfunctions")
    described = sfn.describe_execution(executionArn=arn)
    events = (
        event
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn, includeExecutionData=True)
        for event in page["events"]
    )
    print(render_status(described, iteration_rows(events)), file=out)
    return 0


# ---------------------------------------------------------------- parser


def add_aws_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add `prepare-deploy`, `start` and `status` (labelloop.run_status: local runs too) to the labelloop parser's subcommands."""
    prep = subparsers.add_parser(
        "prepare-deploy",
        help="resolve the framework images and upload the algorithm sources; print `sam deploy` parameter overrides",
        description="Print the --parameter-overrides for `sam deploy`: the region's training and inference images "
        "and, given a bucket or an existing stack, the algorithm sources uploaded there.",
    )
    prep.add_argument("--region", help="AWS region (default: the --config-env's, else your AWS configuration's)")
    where = prep.add_mutually_exclusive_group()
    where.add_argument(
        "--stack", help="upload the sources to this stack's data bucket (a stack not deployed yet: images only)"
    )
    where.add_argument(
        "--bucket", help="existing bucket: upload the sources there, and have the stack use it as its data bucket"
    )
    prep.add_argument(
        "--config-env",
        help="a samconfig.toml environment: start from its parameter_overrides, "
        "stack, region, bucket and instance types",
    )
    prep.add_argument("--samconfig", default=SAMCONFIG, help="the samconfig file --config-env reads (default: samconfig.toml)")
    prep.add_argument(
        "--instance-type",
        action="append",
        type=_instance_type,
        metavar="PARAMETER=TYPE",
        help=f"a framework's instance type, e.g. ImageClassificationTrainingInstanceType=ml.c5.2xlarge "
        f"(each defaults to {CPU_INSTANCE}; checked against the API it goes to)",
    )
    prep.add_argument(
        "--set-cors", action="store_true", help="add Ground Truth's CORS rule to an existing --bucket that lacks it"
    )
    prep.add_argument("--workteam-arn", help="add WorkteamArn to the overrides")
    prep.add_argument("--job-name-prefix", help="add JobNamePrefix to the overrides")
    prep.add_argument("--out", help="also write the overrides to this file")
    prep.set_defaults(func=cmd_prepare_deploy)

    start = subparsers.add_parser(
        "start",
        help="start a labeling job on a deployed stack",
        description="Start an execution of the stack's state machine. Settings not given come from the "
        "stack's job defaults (its JobDefaults output), then from labelloop's.",
    )
    start.add_argument("--stack", required=True, help="the deployed stack's name")
    start.add_argument("--region", help="AWS region (default: your AWS configuration's)")
    start.add_argument("--manifest", required=True, help="input manifest, s3:// URI in the stack's data bucket")
    start.add_argument("--task-type", required=True, choices=tasks.names(), help=TASK_TYPE_HELP)
    start.add_argument("--label-attribute", required=True, help=LABEL_ATTRIBUTE_HELP)
    labels = start.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help="label categories, comma-separated, in class-index order")
    labels.add_argument("--label-config", help="Ground Truth label category config, s3:// URI in the data bucket")
    start.add_argument("--job-name", help="job name, starting with the stack's JobNamePrefix (default: the prefix)")
    start.add_argument("--output", help="output location (default: s3://<data bucket>/runs/<job-name>/<UTC time>)")
    start.add_argument("--human-batch-size", type=int, help="items sent to humans per iteration")
    start.add_argument("--human-budget", type=int, help="most items humans may label (MaxHumanLabeledObjectCount)")
    start.add_argument("--max-human-cost", type=float, help="money budget in dollars (price x workers x labels)")
    start.add_argument("--target-accuracy", type=float, help="what the auto-labels must meet: an accuracy, or for boxes and masks a mean IoU")
    start.add_argument("--confidence", type=float, help="confidence with which the threshold meets the target")
    start.add_argument("--workers-per-object", type=int, help="annotators per item")
    start.add_argument(
        "--setting",
        action="append",
        type=_setting,
        metavar="KEY=VALUE",
        help="any other execution input field, value as JSON (e.g. ValidationPolicy=ground-truth); repeatable",
    )
    start.add_argument("--execution-name", help="execution name (default: <job-name>-<UTC time>)")
    start.add_argument("--dry-run", action="store_true", help="print the execution input; start nothing")
    start.set_defaults(func=cmd_start)

    from labelloop.run_status import add_status_command

    add_status_command(subparsers)
