"""The labeling job's settings: parsed once, checked before any human is paid.

Pure logic. The state machine's execution input is the user's settings; `JobSettings.parse`
turns it into a checked object or raises `ConfigurationError` naming every field that is wrong.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from labelloop import aws_limits, calibration, per_class, tasks
from labelloop.policies import CALIBRATION_SCOPES as _SCOPES
from labelloop.policies import VALIDATION_POLICIES as _POLICIES
from labelloop.policies import CalibrationScope, Routing, ValidationPolicy
from labelloop.selection import STRATEGIES

VALIDATION_POLICIES = {name: policy.description for name, policy in _POLICIES.items()}
CALIBRATION_METHODS = {
    "lower-bound": "lowest threshold whose Clopper-Pearson accuracy bound meets the target",
    "fixed-margin": "top-1 minus top-2 probability above MarginThreshold (the public sample)",
    "none": "never auto-label (all-human labeling)",
}
# Rules the benchmark compares with, selectable in the execution input but kept out of the CLI's
# choices; neither states a confidence. The oracle reads the hidden truth, so it runs only with one.
BENCHMARK_METHODS = {
    "tbal": "TBAL's class-wise rule (Vishwakarma et al., NeurIPS 2023; labelloop.threshold_rules)",
    "oracle": "lowest threshold meeting the target on the hidden truth (OracleTruthUri); benchmarks only",
}

CALIBRATION_SCOPES = {name: scope.description for name, scope in _SCOPES.items()}

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")


class ConfigurationError(ValueError):
    """The job's settings are invalid; raised before any work starts."""


@dataclass(frozen=True)
class JobSettings:
    manifest_uri: str
    output_uri: str
    job_name: str
    task_type: str
    label_attribute: str
    label_categories: list[str] = field(default_factory=list)
    label_category_config_uri: str = ""
    human_batch_size: int = 100
    max_human_labels: int | None = None  # None: no limit but the dataset size
    target_accuracy: float = 0.95
    confidence_level: float = 0.95
    workers_per_object: int = 1
    validation_policy: str = "adaptive"
    validation_fraction: float | None = None  # ground-truth / frozen-first policies; None: the policy's rule
    validation_size: int | None = None  # adaptive policy: validation labels to hold; None: validation_size_for()
    min_validation_support: int = 0
    calibration_method: str = "lower-bound"
    calibration_scope: str = "job"  # the scope docs/promise.md measures keeping the promise
    per_class: bool = False  # every class's auto-labels meet the target (labelloop.per_class)
    iou_bound: str = "hoeffding-bentkus"  # boxes and masks: the bound on their mean IoU (parse: the task type's)
    reserve: float = 0.0  # cumulative scope: share of the accuracy slack kept back while the pool is full
    retrain_growth: float | None = 0.5  # cumulative scope: see retrains_before_routing; None: never
    worst_case_tail: bool = True  # cumulative scope: spend the bound's slack on items counted as errors
    tail_batch: bool = True  # few uncertain items left: a smaller batch (steps.human_batch.batch_size)
    margin_threshold: float = 0.5  # fixed-margin method only
    oracle_truth_uri: str = ""  # oracle method only (benchmarks): the truth file it chooses thresholds by
    selection_strategy: str = "least-confidence"
    random_fraction: float = 0.1
    class_balance: bool = True
    diversity: bool = False
    max_iterations: int = 50
    max_percentage_labeled: int | None = None
    max_human_cost: float | None = None
    price_per_label: float = 0.08
    # An item routed with the model's guess (boxes to adjust) may cost less than one drawn blind;
    # None: the same as price_per_label.
    price_per_adjusted_label: float | None = None
    initial_model_artifacts: str = ""
    seed: int = 0

    # Execution-input field names, as a user writes them (Ground Truth's spelling where it has one).
    FIELDS = {
        "ManifestUri": "manifest_uri",
        "OutputUri": "output_uri",
        "JobName": "job_name",
        "TaskType": "task_type",
        "LabelAttributeName": "label_attribute",
        "LabelCategories": "label_categories",
        "LabelCategoryConfigUri": "label_category_config_uri",
        "HumanBatchSize": "human_batch_size",
        "MaxHumanLabeledObjectCount": "max_human_labels",
        "TargetAccuracy": "target_accuracy",
        "ConfidenceLevel": "confidence_level",
        "WorkersPerObject": "workers_per_object",
        "ValidationPolicy": "validation_policy",
        "ValidationFraction": "validation_fraction",
        "ValidationSize": "validation_size",
        "MinValidationSupport": "min_validation_support",
        "CalibrationMethod": "calibration_method",
        "CalibrationScope": "calibration_scope",
        "PerClassPromise": "per_class",
        "IouBound": "iou_bound",
        "SlackReserve": "reserve",
        "RetrainBeforeRoutingGrowth": "retrain_growth",
        "WorstCaseTail": "worst_case_tail",
        "TailBatch": "tail_batch",
        "MarginThreshold": "margin_threshold",
        "OracleTruthUri": "oracle_truth_uri",
        "SelectionStrategy": "selection_strategy",
        "RandomFraction": "random_fraction",
        "ClassBalance": "class_balance",
        "Diversity": "diversity",
        "MaxIterations": "max_iterations",
        "MaxPercentageOfInputDatasetLabeled": "max_percentage_labeled",
        "MaxHumanCost": "max_human_cost",
        "PricePerLabel": "price_per_label",
        "PricePerAdjustedLabel": "price_per_adjusted_label",
        "InitialModelArtifacts": "initial_model_artifacts",
        "Seed": "seed",
    }

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "JobSettings":
        if not isinstance(data, dict):
            raise ConfigurationError("execution input must be a JSON object")
        unknown = sorted(set(data) - set(cls.FIELDS))
        problems = [f"unknown setting {name!r}" for name in unknown]
        values = {cls.FIELDS[k]: v for k, v in data.items() if k in cls.FIELDS}
        for required in ("ManifestUri", "OutputUri", "JobName", "TaskType", "LabelAttributeName"):
            if not data.get(required):
                problems.append(f"{required} is required")
        if problems:
            raise ConfigurationError("; ".join(problems))
        if data.get("TaskType") in tasks.names():  # the task type's target (an accuracy or a mean IoU) and bound
            task, cumulative = tasks.get(data["TaskType"]), values.get("calibration_scope") == "cumulative"
            # Betting reads every quality, the cumulative scope carries sums: that scope keeps Hoeffding–Bentkus.
            defaults = {"target_accuracy": task.default_target,
                        "iou_bound": "hoeffding-bentkus" if cumulative else task.default_iou_bound}
            values.update({k: v for k, v in defaults.items() if values.get(k) is None})
        try:
            settings = cls(**values)
        except TypeError as exc:
            raise ConfigurationError(str(exc)) from None
        settings.check()
        return settings

    def check(self) -> None:
        p: list[str] = []
        if not JOB_NAME.match(str(self.job_name)):
            p.append(f"JobName {self.job_name!r} must be 1-32 letters, digits or hyphens, not starting with a hyphen")
        if self.task_type not in tasks.names():
            p.append(f"TaskType {self.task_type!r} is not one of {tasks.names()}")
        if not isinstance(self.label_attribute, str) or not self.label_attribute:
            p.append("LabelAttributeName must be a non-empty string")
        elif self.label_attribute.endswith("-metadata"):
            p.append(f"LabelAttributeName {self.label_attribute!r} may not end in '-metadata'")
        elif not re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}$", self.label_attribute):
            p.append(f"LabelAttributeName {self.label_attribute!r} must be letters, digits or hyphens")
        elif self.task_type in tasks.names() and (
                tasks.get(self.task_type).label_in_file != self.label_attribute.endswith("-ref")):
            # Ground Truth's rule (CreateLabelingJob): a label kept in a file (a mask) is named by an
            # attribute ending in "-ref"; any other label's attribute may not end so.
            must = "must" if tasks.get(self.task_type).label_in_file else "may not"
            p.append(f"LabelAttributeName {self.label_attribute!r} {must} end in '-ref' for task type {self.task_type}")
        if bool(self.label_categories) == bool(self.label_category_config_uri):
            p.append("give exactly one of LabelCategories or LabelCategoryConfigUri")
        if self.label_categories:
            p += check_label_categories(self.label_categories, "LabelCategories")
        for name, value in (
            ("HumanBatchSize", self.human_batch_size),
            ("WorkersPerObject", self.workers_per_object),
            ("MaxIterations", self.max_iterations),
        ):
            if not _is_int(value) or value < 1:
                p.append(f"{name} must be a positive integer, got {value!r}")
        p += aws_limits.settings_problems(self.job_name, self.max_iterations)  # SageMaker names, Step Functions history
        if self.max_human_labels is not None and (not _is_int(self.max_human_labels) or self.max_human_labels < 1):
            p.append(f"MaxHumanLabeledObjectCount must be a positive integer, got {self.max_human_labels!r}")
        if not _is_int(self.min_validation_support) or self.min_validation_support < 0:
            p.append(f"MinValidationSupport must be a non-negative integer, got {self.min_validation_support!r}")
        for name, value in (
            ("TargetAccuracy", self.target_accuracy),
            ("ConfidenceLevel", self.confidence_level),
            ("ValidationFraction", 0.5 if self.validation_fraction is None else self.validation_fraction),
            ("MarginThreshold", self.margin_threshold),
        ):
            if not _is_number(value) or not 0.0 < float(value) < 1.0:
                p.append(f"{name} must be a number in (0, 1), got {value!r}")
        if self.validation_policy not in VALIDATION_POLICIES:
            p.append(f"ValidationPolicy {self.validation_policy!r} is not one of {sorted(VALIDATION_POLICIES)}")
        if self.calibration_method not in CALIBRATION_METHODS and self.calibration_method not in BENCHMARK_METHODS:
            p.append(f"CalibrationMethod {self.calibration_method!r} is not one of {sorted(CALIBRATION_METHODS)}")
        p += self._oracle_problems() + per_class.settings_problems(self) + calibration.bound_problems(self)
        if not _is_number(self.reserve) or not 0.0 <= float(self.reserve) < 1.0:
            p.append(f"SlackReserve must be a number in [0, 1), got {self.reserve!r}")
        if self.retrain_growth is not None and (not _is_number(self.retrain_growth) or self.retrain_growth <= 0):
            p.append(f"RetrainBeforeRoutingGrowth must be a positive number or null, got {self.retrain_growth!r}")
        if self.calibration_scope not in CALIBRATION_SCOPES:
            p.append(f"CalibrationScope {self.calibration_scope!r} is not one of {sorted(CALIBRATION_SCOPES)}")
        if self.validation_size is not None and (not _is_int(self.validation_size) or self.validation_size < 1):
            p.append(f"ValidationSize must be a positive integer, got {self.validation_size!r}")
        if self.max_percentage_labeled is not None and (
            not _is_int(self.max_percentage_labeled) or not 1 <= self.max_percentage_labeled <= 100
        ):
            p.append(f"MaxPercentageOfInputDatasetLabeled must be an integer in 1..100, got {self.max_percentage_labeled!r}")
        if self.max_human_cost is not None and (not _is_number(self.max_human_cost) or self.max_human_cost <= 0):
            p.append(f"MaxHumanCost must be a positive number, got {self.max_human_cost!r}")
        if not _is_number(self.price_per_label) or self.price_per_label < 0:
            p.append(f"PricePerLabel must be a non-negative number, got {self.price_per_label!r}")
        adjusted = self.price_per_adjusted_label
        if adjusted is not None and (not _is_number(adjusted) or adjusted < 0):
            p.append(f"PricePerAdjustedLabel must be a non-negative number, got {adjusted!r}")
        for name, value in (("ClassBalance", self.class_balance), ("Diversity", self.diversity),
                            ("WorstCaseTail", self.worst_case_tail), ("TailBatch", self.tail_batch)):
            if not isinstance(value, bool):
                p.append(f"{name} must be true or false, got {value!r}")
        if not isinstance(self.initial_model_artifacts, str):
            p.append("InitialModelArtifacts must be a model.tar.gz URI")
        if not _is_number(self.random_fraction) or not 0.0 <= float(self.random_fraction) <= 1.0:
            p.append(f"RandomFraction must be a number in [0, 1], got {self.random_fraction!r}")
        if self.selection_strategy not in STRATEGIES:
            p.append(f"SelectionStrategy {self.selection_strategy!r} is not one of {sorted(STRATEGIES)}")
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:  # the range numpy and scikit-learn seeds take
            p.append(f"Seed must be an integer in 0..4294967295, got {self.seed!r}")
        if p:
            raise ConfigurationError("; ".join(p))

    def _oracle_problems(self) -> list[str]:
        """The oracle sees the truth: it must never run by accident, nor a truth file be given for nothing."""
        if not isinstance(self.oracle_truth_uri, str):
            return [f"OracleTruthUri must be a path to a truth file, got {self.oracle_truth_uri!r}"]
        if self.calibration_method == "oracle" and not self.oracle_truth_uri:
            return ["CalibrationMethod 'oracle' chooses thresholds by the hidden true labels and exists for "
                    "benchmarks only: it needs OracleTruthUri, the truth file of the items"]
        if self.oracle_truth_uri and self.calibration_method != "oracle":
            return [f"OracleTruthUri is read only by CalibrationMethod 'oracle', not {self.calibration_method!r}"]
        return []

    @property
    def validation(self) -> ValidationPolicy:
        return _POLICIES[self.validation_policy]

    @property
    def scope(self) -> CalibrationScope:
        return _SCOPES[self.calibration_scope]

    def routing(self, iteration: int) -> Routing:
        """The routing rule of one iteration's gate (seeded per iteration)."""
        return Routing(self.selection_strategy, self.class_balance, self.diversity, self.random_fraction,
                       self.seed + iteration)

    @property
    def adjusted_price(self) -> float:
        """Price per label per worker of an item people adjust from the model's guess."""
        return self.price_per_label if self.price_per_adjusted_label is None else self.price_per_adjusted_label

    def _highest_price(self) -> float:
        return max(self.price_per_label, self.adjusted_price) * self.workers_per_object

    def human_label_limit(self) -> int | None:
        """Most items humans may label: the count budget and the money budget, whichever binds (the
        money budget counting every label at the dearer of the two prices)."""
        return self.human_labels_left(0)

    def human_labels_left(self, labeled: int, adjusted: int = 0) -> int | None:
        """How many more items humans may label after `labeled` (`adjusted` of them adjustments);
        None: no limit but the dataset.

        The money left is counted in labels of the dearer price: a batch's mix of adjustments and
        blind labels is known only once it is chosen, and the budget must never be overrun. What
        cheaper adjustments save stays in the budget for the next batch.
        """
        limits = []
        if self.max_human_labels is not None:
            limits.append(max(0, self.max_human_labels - labeled))
        if self.max_human_cost is not None and self._highest_price() > 0:
            left = self.max_human_cost - self._spent(labeled, adjusted)
            limits.append(max(0, int(left / self._highest_price() + 1e-9)))
        return min(limits) if limits else None

    def _spent(self, labels: int, adjusted: int) -> float:
        return ((labels - adjusted) * self.price_per_label + adjusted * self.adjusted_price) * self.workers_per_object

    def human_cost(self, labels: int, adjusted: int = 0) -> float:
        """Dollars for `labels` human labels, `adjusted` of them adjustments of the model's guess."""
        return round(self._spent(labels, adjusted), 2)

    def validation_share(self, total: int) -> float:
        """ground-truth: 20 % below 5,000 items, 10 % above; frozen-first: 10 %; overridable."""
        if self.validation_fraction is not None:
            return float(self.validation_fraction)
        if self.validation_policy == "ground-truth":
            return 0.2 if total < 5000 else 0.1
        return 0.1

    def validation_size_for(self, total: int, n_classes: int = 0) -> int:
        """Adaptive policy's validation set: ValidationSize, else 400 items or 1.5 % of a large dataset
        (the per-class promise: enough for each of `n_classes`, `per_class.validation_size`).

        400 items bound accuracy to within about 1.5 points; a large dataset buys a tighter bound
        (1,050 items for 70,000) for a small share of its labels, capped at 2,000.
        """
        if self.validation_size is not None:
            return self.validation_size
        return per_class.validation_size(self, max(400, min(2000, math.ceil(0.015 * total))), n_classes)

    def validation_target(self, total: int, active: int, retired: int = 0, n_classes: int = 0) -> int:
        """Adaptive policy: how many validation labels to add so the set judging the model is full.

        Cumulative scope: retired items still judge through their verdicts, so they count.
        """
        held = active + (retired if self.scope.carries_verdicts else 0)
        return max(0, self.validation_size_for(total, n_classes) - held)

    def working_target(self, open_share: float) -> float:
        """Cumulative scope: the accuracy the bound must reach while `open_share` of the items are open.

        The slack between the target and perfection is the job's to spend, once: what early,
        weaker models spend is gone for the better models that follow. So a share of it
        (SlackReserve) is kept back in proportion to the items still open, and released as the
        pool empties; the last items are judged at the target itself.
        """
        if not self.scope.carries_verdicts:
            return self.target_accuracy
        return self.target_accuracy + (1.0 - self.target_accuracy) * self.reserve * min(1.0, max(0.0, open_share))

    def retrains_before_routing(self, retired: int, train_count: int) -> bool:
        """Cumulative scope: train a model on the validation items a gate just retired before routing anyone.

        Retired items train the next model anyway; when they grow its training set by
        RetrainBeforeRoutingGrowth (default half) or more, that model is much stronger than the one
        that retired them, so it is trained first, at no human cost: it auto-labels more of what is
        left (certified as usual, on the active validation items and the carried verdicts) and picks
        the humans' batch among what it, not its weaker predecessor, is unsure of.
        """
        if not self.scope.carries_verdicts or self.retrain_growth is None or retired == 0:
            return False
        if train_count == 0:
            return False  # pre-labeling: the given model, trained elsewhere, beats one on retired items alone
        return retired >= self.retrain_growth * train_count

    def run_id(self, execution_name: str) -> str:
        """Short, stable suffix that keeps SageMaker job names unique per execution."""
        return hashlib.sha1(f"{self.job_name}/{execution_name}".encode()).hexdigest()[:8]

    def to_json(self) -> dict[str, Any]:
        return {k: asdict(self)[v] for k, v in self.FIELDS.items()}


def check_label_categories(labels: Any, where: str) -> list[str]:
    if not isinstance(labels, list) or not labels:
        return [f"{where}: needs a non-empty list of labels"]
    p = []
    seen: set[str] = set()
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            p.append(f"{where}: label #{i + 1} must be a non-empty string, got {label!r}")
        elif label in seen:
            p.append(f"{where}: label {label!r} appears more than once")
        else:
            seen.add(label)
    if len(labels) < 2:
        p.append(f"{where}: classification needs at least 2 labels")
    return p


def parse_label_category_config(data: Any, where: str) -> list[str]:
    """Class names from Ground Truth's label category config document."""
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
        raise ConfigurationError(
            f"{where}: expected {{\"document-version\": \"2018-11-28\", \"labels\": [{{\"label\": ...}}, ...]}}"
        )
    names = []
    for i, entry in enumerate(data["labels"]):
        if not isinstance(entry, dict) or "label" not in entry:
            raise ConfigurationError(f"{where}: labels[{i}] must be an object with a 'label' key")
        names.append(entry["label"])
    problems = check_label_categories(names, where)
    if problems:
        raise ConfigurationError("; ".join(problems))
    return names


def label_category_config(names: list[str]) -> dict[str, Any]:
    return {"document-version": "2018-11-28", "labels": [{"label": n} for n in names]}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite number: NaN compares false with every bound (so it passed them all) and inf is not JSON."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)
