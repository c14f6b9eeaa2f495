"""`labelloop run`'s pieces: its money options, the execution input its options make (checked
before anything starts, its problems named by the options), and the summary it prints when the
loop ends."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from labelloop import layout, tasks
from labelloop.config import ConfigurationError, JobSettings
from labelloop.promise import quality_text, target_flag, why_nothing_auto_labeled


# Execution-input fields `run` sets from one option each, as given: {field: the option's dest}.
AS_GIVEN = {
    "JobName": "job_name", "TaskType": "task_type", "LabelAttributeName": "label_attribute",
    "HumanBatchSize": "human_batch_size", "ConfidenceLevel": "confidence", "WorkersPerObject": "workers_per_object",
    "ValidationPolicy": "validation_policy", "CalibrationMethod": "calibration", "CalibrationScope": "calibration_scope",
    "PerClassPromise": "per_class", "SlackReserve": "slack_reserve",
    "MarginThreshold": "margin_threshold", "SelectionStrategy": "strategy", "RandomFraction": "random_fraction",
    "Diversity": "diversity", "MaxIterations": "max_iterations", "Seed": "seed",
}
OPTIONAL = {"TargetAccuracy": "target_accuracy", "MaxPercentageOfInputDatasetLabeled": "max_percentage_labeled",
            "ValidationFraction": "validation_fraction", "ValidationSize": "validation_size",
            "IouBound": "iou_bound"}  # absent: the default (the task type's, for the target and the bound)
MONEY = {"PricePerLabel": "price_per_label", "MaxHumanLabeledObjectCount": "human_budget",
         "MaxHumanCost": "max_human_cost", "PricePerAdjustedLabel": "price_per_adjusted_label"}
DERIVED = {"RetrainBeforeRoutingGrowth": "retrain_before_routing", "InitialModelArtifacts": "initial_model",
           "LabelCategories": "labels", "LabelCategoryConfigUri": "label_config"}  # set from these options, changed


def add_cost_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--human-budget", type=int, default=None,
                     help="most items humans may label in this job (MaxHumanLabeledObjectCount); default: no limit")
    run.add_argument("--max-human-cost", type=float, default=None,
                     help="money budget in dollars: no batch is sent that could take the cost past it (each label "
                          "counted at the dearer of the two prices until its batch is answered)")
    run.add_argument("--price-per-label", type=float, default=0.08,
                     help="price per label per worker (Ground Truth's list price for classification)")
    run.add_argument("--price-per-adjusted-label", type=float, default=None,
                     help="price per label per worker of an item shown with the model's guess to correct (boxes to "
                          "adjust rather than draw; validation items are always drawn blind); default: --price-per-label")


def cost_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The execution input's money fields from the options above (those given)."""
    return {field: getattr(args, dest) for field, dest in MONEY.items() if getattr(args, dest) is not None}


def _stage_manifest(uri: str, output: Path) -> str:
    """An s3:// manifest is copied into the output folder before the offline engine starts."""
    if not uri.startswith("s3://"):
        path = Path(uri).resolve()
        if not path.is_file():
            raise ConfigurationError(f"--manifest {uri}: no such file")
        return str(path)
    import boto3

    from labelloop.storage import split_s3

    bucket, key = split_s3(uri)
    local = Path(layout.staged_manifest_uri(str(output)))
    local.parent.mkdir(parents=True, exist_ok=True)
    boto3.client("s3").download_file(bucket, key, str(local))
    return str(local)


def execution_input(args: argparse.Namespace, output: Path) -> dict[str, Any]:
    """The state machine's input from `run`'s options, checked before anything starts; a problem
    names the option that set the field (the task's, for the target: --target-iou for boxes and masks)."""
    data: dict[str, Any] = {
        "ManifestUri": _stage_manifest(args.manifest, output),
        "OutputUri": str(output),
        **{field: getattr(args, dest) for field, dest in AS_GIVEN.items()},
        "RetrainBeforeRoutingGrowth": args.retrain_before_routing or None,
        "ClassBalance": not args.no_class_balance,
        "WorstCaseTail": not args.no_worst_case_tail,
        "TailBatch": not args.full_tail_batch,
        **cost_settings(args),
    }
    data.update({field: getattr(args, dest) for field, dest in OPTIONAL.items() if getattr(args, dest) is not None})
    if args.initial_model:
        data["InitialModelArtifacts"] = str(Path(args.initial_model).resolve())
    if args.labels:
        data["LabelCategories"] = [s.strip() for s in args.labels.split(",")]
    elif args.label_config:
        data["LabelCategoryConfigUri"] = str(Path(args.label_config).resolve())
    try:
        JobSettings.parse(data)
    except ConfigurationError as exc:
        raise ConfigurationError(_by_option(str(exc), args.task_type)) from None
    return data


def _by_option(problems: str, task_type: str) -> str:
    options = {field: "--" + dest.replace("_", "-") for field, dest in {**AS_GIVEN, **OPTIONAL, **MONEY, **DERIVED}.items()}
    options["TargetAccuracy"] = target_flag(task_type)
    return re.sub(r"\b(" + "|".join(options) + r")\b", lambda m: options[m.group(1)], problems)


def _human_line(summary: dict[str, Any], execution_input: dict[str, Any], answered: int) -> list[str]:
    human, total = summary["HumanLabeledByThisJob"], summary["Total"]
    lines = [f"  human labels used:     {human} ({100 * human / total:.1f} %), ${summary['HumanCost']:.2f}  "
             f"[workforce answered {answered}]"]
    adjusted = summary.get("HumanAdjusted") or 0
    price, adjusted_price = execution_input.get("PricePerLabel"), execution_input.get("PricePerAdjustedLabel")
    if adjusted_price is not None and adjusted_price != price:
        guess = "boxes" if tasks.get(execution_input["TaskType"]).bounded_mean else "guess"
        lines.append(f"    of which adjusted:   {adjusted} (shown the model's {guess}, ${adjusted_price:g} a label), "
                     f"{human - adjusted} drawn blind (${price:g})")
    clicks = summary.get("HumanClicks")
    if clicks is not None:  # the answers said what they cost in clicks (the click tool, simulated or on the page)
        lines.append(f"  clicks spent:          {clicks}" + (f" ({clicks / human:.1f} a human label)" if human else ""))
    return lines


def summary_lines(args: argparse.Namespace, summary: dict[str, Any], execution_input: dict[str, Any], truth: Any,
                  answered: int, seconds: float, rows: list[dict[str, Any]]) -> list[str]:
    """What `labelloop run` prints when the loop has ended; scores the output when the truth is known
    (and writes output/evaluation.json for the report)."""
    from labelloop.datasets import read_label_config
    from labelloop.evaluation import evaluate

    output = Path(execution_input["OutputUri"])
    manifest = Path(summary["OutputManifestUri"])
    pct = lambda n: f"{100 * n / summary['Total']:.1f} %"  # noqa: E731
    lines = [
        f"\nsummary ({seconds:.0f}s, {summary['Iterations']} iterations, stopped: {summary['StopReason']})",
        f"  items:                 {summary['Total']} ({summary['Rejected']} rejected lines)",
        *_human_line(summary, execution_input, answered),
        f"  auto-labeled:          {summary['AutoLabeled']} ({pct(summary['AutoLabeled'])})",
        f"  unlabeled:             {summary['Unlabeled']}",
    ]
    if summary.get("HumanFailed"):
        lines.append(f"  human answers failed:  {summary['HumanFailed']} (items sent to people that came back unlabeled)")
    if truth is not None:
        task = tasks.get(args.task_type)
        with open(manifest) as f:
            classes = read_label_config(layout.label_config_uri(str(output))) if task.bounded_mean else None
            ev = evaluate(f, args.label_attribute, truth, task, classes)
        ev.truth_file = str(Path(args.truth).resolve())
        Path(layout.evaluation_uri(str(output))).write_text(json.dumps(ev.to_json(), indent=2))
        target = args.target_accuracy or task.default_target
        below = "  BELOW TARGET" if ev.auto_accuracy is not None and ev.auto_accuracy < target else ""
        show = lambda x: quality_text(task.name, x)  # noqa: E731
        if task.bounded_mean:
            lines += [f"  auto-label mean IoU:   {show(ev.auto_accuracy)} against the true boxes (target ≥ {target:g}){below}",
                      f"  dataset mean IoU:      {show(ev.dataset_accuracy)} (an unlabeled image counts 0)"]
        else:
            lines += [f"  auto-label accuracy:   {show(ev.auto_accuracy)} against the true labels (target {show(target)}){below}",
                      f"  dataset accuracy:      {show(ev.dataset_accuracy)}"]
    lines += [
        f"  output manifest:       {manifest}",
        f"  final model:           {summary['FinalModelArtifacts']}",
        f"  report:                labelloop report {output}",
    ]
    if summary["AutoLabeled"] == 0:
        lines += [f"  {why}" for why in why_nothing_auto_labeled(execution_input, rows, summary["Total"])]
    return lines
