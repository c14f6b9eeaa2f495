"""The task-type interface: what every task type provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

import numpy as np

from labelloop.manifest import ID_KEY, Label, ManifestError, creation_date

# The AWS accounts that own Ground Truth's built-in PRE-/ACS- Lambdas, per region (the
# CreateLabelingJob API reference, HumanTaskConfig).
BUILT_IN_LAMBDA_ACCOUNTS = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "ca-central-1": "918755190332",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}


@dataclass(frozen=True)
class Framework:
    """The prebuilt SageMaker container a task type's algorithm runs in."""

    name: str  # sagemaker.image_uris framework name; locally, the image label
    version: str
    py_version: str
    gpu: bool  # has GPU images; without, the CPU image is used on any instance type


class Simulated(NamedTuple):
    """One simulated annotator's answer, and the clicks it spent on it when it counts them."""

    value: Any
    clicks: int | None = None


class TaskType:
    """One kind of label. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]  # labelloop's name, e.g. "image-classification" (the --task-type value)
    ground_truth_type: ClassVar[str]  # the metadata `type`, e.g. "groundtruth/image-classification"
    lambda_suffix: ClassVar[str]  # built-in Lambdas PRE-<suffix> / ACS-<suffix>
    title: ClassVar[str]  # the labeling job's task title
    ui_template: ClassVar[str]  # Ground Truth's built-in worker UI, as a Liquid template
    algorithm_folder: ClassVar[str]  # algorithms/<folder>/ (train.py, inference.py)
    framework: ClassVar[Framework]
    deploy_prefix: ClassVar[str]  # template parameters <prefix>TrainingImage, ...InferenceImage, ...SourceDirUri
    items_are_images: ClassVar[bool]  # input checks decode each source-ref as an image
    widget: ClassVar[str]  # the local worker page's widget (static/widgets/<widget>.js)
    report_example: ClassVar[str]  # how the report draws an item: "image" or "text"
    quality_name: ClassVar[str]  # what the per-item quality is, e.g. "accuracy"
    default_target: ClassVar[float]  # the auto-labels' default quality target
    # Boxes and masks: the bound on the mean IoU a job gets unless it names one (calibration.BOUNDS).
    default_iou_bound: ClassVar[str] = "hoeffding-bentkus"
    bounded_mean: ClassVar[bool] = False  # quality is any number in [0, 1] (an IoU), not pass/fail
    # The line's `<attribute>` names a file that holds the label (a mask PNG) rather than holding it;
    # Ground Truth then wants the attribute name to end in "-ref", and every other one not to.
    label_in_file: ClassVar[bool] = False
    # Each iteration's training job gets the previous iteration's model (a `model` channel) and
    # starts from its weights: for networks whose training budget, not their data, holds them back.
    continues_training: ClassVar[bool] = False

    def built_in_lambda_arns(self, region: str) -> tuple[str, str]:
        """(PreHumanTaskLambdaArn, AnnotationConsolidationLambdaArn) for a region."""
        account = BUILT_IN_LAMBDA_ACCOUNTS.get(region)
        if account is None:
            raise ValueError(f"Ground Truth built-in task Lambdas are not listed for region {region!r}")
        base = f"arn:aws:lambda:{region}:{account}:function"
        return f"{base}:PRE-{self.lambda_suffix}", f"{base}:ACS-{self.lambda_suffix}"

    def description(self, class_names: list[str]) -> str:
        """The labeling job's task description."""
        raise NotImplementedError

    # ------------------------------------------------------------ labels in manifests

    def read_value(self, value: Any, class_names: list[str]) -> Any:
        """The label value a manifest line carries, checked; ValueError says what is wrong."""
        raise NotImplementedError

    def existing_label(self, line: dict[str, Any], attribute: str, class_names: list[str], number: int,
                       job: str) -> Label | None:
        """The label an input line already carries (kept as a human or earlier label), or None."""
        if attribute not in line:
            return None
        try:
            value = self.line_label(line, attribute, class_names)
        except ValueError as exc:
            raise ManifestError(f"line {number}: existing label {attribute}: {exc}") from None
        meta = line.get(f"{attribute}-metadata") or {}
        if not isinstance(meta, dict):
            raise ManifestError(f"line {number}: {attribute}-metadata must be a JSON object, got {type(meta).__name__}")
        confidence = meta.get("confidence", 1.0)
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 <= confidence <= 1.0:
            raise ManifestError(f"line {number}: {attribute}-metadata confidence must be a number in [0, 1], "
                                f"got {str(confidence)[:40]!r}")
        named = self.label_metadata(value, class_names).get("class-name")
        if "class-name" in meta and named is not None and meta["class-name"] != named:
            # Labeled under other categories (or another order): keeping the number would rename it.
            raise ManifestError(f"line {number}: existing label {attribute}={value!r} is {named!r} in this job's "
                                f"categories, but its metadata says class-name {str(meta['class-name'])[:80]!r}")
        return Label(
            class_id=value,
            confidence=float(confidence),
            human=meta.get("human-annotated", "yes") == "yes",
            job_name=str(meta.get("job-name", job)),
            created=str(meta.get("creation-date", creation_date())),
            iteration=0,
        )

    def label_metadata(self, value: Any, class_names: list[str]) -> dict[str, Any]:
        """The task-specific part of `<attribute>-metadata` for a label value."""
        raise NotImplementedError

    def output_line(self, source: dict[str, Any], label: Label | None, *, attribute: str, class_names: list[str],
                    unlabeled_reason: str = "", job_name: str = "", folder: str = "", name: str = "") -> dict[str, Any]:
        """The Ground Truth augmented-manifest line for one item.

        Unlabeled items keep their input line and get a metadata block with `failure-reason`,
        as Ground Truth writes for objects it could not label. `folder` and `name`: where a label
        kept in a file of its own goes (`line_value`).
        """
        line = {k: v for k, v in source.items() if k != ID_KEY}
        if label is None:
            line[f"{attribute}-metadata"] = {
                "type": self.ground_truth_type,
                "job-name": job_name,
                "failure-reason": unlabeled_reason or "not labeled",
            }
            return line
        metadata: dict[str, Any] = {
            **self.label_metadata(label.class_id, class_names),
            "confidence": round(float(label.confidence), 4),
            "type": self.ground_truth_type,
            "job-name": label.job_name,
            "human-annotated": "yes" if label.human else "no",
            "creation-date": label.created,
        }
        if not label.human and (label.threshold is not None or label.lower_bound is not None):
            metadata["labelloop-calibration"] = {
                "threshold": label.threshold,
                f"{self.quality_name}-lower-bound": label.lower_bound,
                "support": label.support,
            }
            if label.threshold is None:  # below the threshold, paid for by the bound's slack
                metadata["labelloop-calibration"]["basis"] = "worst-case tail"
            if label.class_bound:  # the per-class promise: the threshold of the class this label gives vouched
                metadata["labelloop-calibration"]["class-name"] = class_names[label.class_id]
        line[attribute] = self.line_value(label.class_id, class_names, folder=folder, name=name)
        line[f"{attribute}-metadata"] = metadata
        return line

    def write_value(self, value: Any, class_names: list[str]) -> Any:
        """The label value as a manifest's attribute holds it (what `read_value` reads back)."""
        return value

    def line_label(self, line: dict[str, Any], attribute: str, class_names: list[str]) -> Any:
        """The label value a labeled manifest line carries, checked; ValueError says what is wrong.

        Every reader of a labeled line (input labels, a labeling job's output, an output manifest
        being scored) asks here, so a task type whose label is a file the line names (`label_in_file`)
        reads that file, with the line's metadata, instead of the attribute's value.
        """
        return self.read_value(line[attribute], class_names)

    def line_value(self, value: Any, class_names: list[str], *, folder: str, name: str) -> Any:
        """What a manifest line's `<attribute>` holds for a label value (what `line_label` reads back).

        By default the value itself (`write_value`). A task type whose label is a file writes it
        under `folder` (a local path or s3:// prefix beside the manifest being written) as `name`
        plus its own extension, and answers the file's URI.
        """
        return self.write_value(value, class_names)

    def human_metadata(self, value: Any, confidence: float, class_names: list[str], job_name: str) -> dict[str, Any]:
        """The `<attribute>-metadata` Ground Truth writes beside a consolidated human label."""
        return {
            **self.label_metadata(value, class_names),
            "confidence": confidence,
            "type": self.ground_truth_type,
            "job-name": f"labeling-job/{job_name}",
            "human-annotated": "yes",
            "creation-date": creation_date(),
        }

    def failure_metadata(self, reason: str, job_name: str) -> dict[str, Any]:
        """The `<attribute>-metadata` Ground Truth writes for an object it could not label."""
        return {"failure-reason": reason, "job-name": f"labeling-job/{job_name}", "type": self.ground_truth_type}

    # ------------------------------------------------------------ people and their answers

    def consolidate(self, answers: list[Any], workers: int, rng: np.random.Generator) -> tuple[Any, float]:
        """(label value, confidence) from one item's `workers` answers."""
        raise NotImplementedError

    def simulated_answer(self, true: Any, class_names: list[str], accuracy: float, rng: np.random.Generator) -> Any:
        """What a simulated annotator of the given accuracy answers for an item whose truth is `true`."""
        raise NotImplementedError

    # The kinds of simulated annotator this task type has, by name, its default first; () when it
    # has one kind only (`simulated_answer`).
    simulated_annotators: ClassVar[tuple[str, ...]] = ()

    def simulate(self, true: Any, class_names: list[str], accuracy: float, rng: np.random.Generator, *,
                 item: Callable[[], bytes], annotator: str | None = None) -> Simulated:
        """One simulated annotator's answer for an item whose truth is `true` (`simulated_answer`
        by default). `item()`: the item's file's bytes, for an annotator that works on what it
        sees; `annotator`: one of `simulated_annotators`, None for the default."""
        return Simulated(self.simulated_answer(true, class_names, accuracy, rng))

    def truth_value(self, truth: Any, class_names: list[str]) -> Any:
        """A truth file's entry as a label value; None when it is not a valid label."""
        raise NotImplementedError

    def value_size(self, value: Any) -> tuple[int, int] | None:
        """(width, height) a checked label value is drawn at when it fixes one (a mask), else None.

        The worker page refuses an answer whose size is not its image's: `read_value` cannot
        know the image, the page's job does.
        """
        return None

    def widget_options(self, class_names: list[str]) -> dict[str, Any]:
        """What the worker page's widget needs beyond the categories (a mask's class colours)."""
        return {}

    # A task type whose widget proposes an object from a person's clicks sets this and `propose_object`.
    proposes_objects: ClassVar[bool] = False

    def propose_object(self, image: bytes, request: dict[str, Any]) -> dict[str, Any]:
        """The worker page's reply (`POST /api/propose`) to a person's clicks on an item's image
        (`image`: its file's bytes): what the widget draws. It sees the image and the clicks only,
        never a model's guess, so it serves validation items too. ValueError: a bad request."""
        raise NotImplementedError

    # ------------------------------------------------------------ quality and confidence

    def output_buffer(self, expected: int, n_classes: int) -> np.ndarray:
        """Where a batch's parsed outputs are collected (`buffer[k] = parse_output(...)`)."""
        return np.empty(expected, dtype=object)

    def parse_output(self, output: Any, n_classes: int) -> Any:
        """One item's algorithm output (a transform line's SageMakerOutput), checked; ValueError says what is wrong."""
        raise NotImplementedError

    def predicted(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label values, per-item confidences in [0, 1]) from a batch's parsed outputs."""
        raise NotImplementedError

    def reply_line_bytes(self, n_classes: int) -> int | None:
        """The longest line the algorithm answers for one item; None: a line of class probabilities
        (`labelloop.aws_limits.reply_line_bytes`). Batch transform requests are sized by it."""
        return None

    def routing_probs(self, outputs: np.ndarray, confidence: np.ndarray) -> np.ndarray:
        """What the routing strategies rank (one row of probabilities an item).

        By default a two-outcome distribution that grows with the confidence, (1 + c) / 2 against
        (1 - c) / 2: least confidence, margin and entropy then all rank items by their confidence,
        and the fixed margin (top two apart by more than m) reads as a confidence above m.
        """
        top = (1.0 + np.asarray(confidence, dtype=float)) / 2.0
        return np.column_stack([top, 1.0 - top])

    def quality(self, value: Any, reference: Any) -> float:
        """The quality in [0, 1] of one label against a reference label."""
        raise NotImplementedError

    def class_qualities(self, value: Any, reference: Any) -> dict[int, float]:
        """A bounded-mean task's quality per class index of one label against a reference (the
        classes either uses); scoring reports them per class."""
        raise NotImplementedError
