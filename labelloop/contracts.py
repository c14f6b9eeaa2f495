"""Typed contracts between the state machine and the steps.

The ASL passes JSON between states; these models name every key it reads or writes, with
aliases equal to the JSON keys (so saved runs and running executions keep working). The
execution document (`Execution`) is what the ASL's `$` holds between states; the test
`tests/unit/test_contracts.py` resolves every `$.…` path of the ASL against it, so a renamed key
fails a test, not an execution. Steps build their results through these models.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from labelloop.config import JobSettings


class Contract(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    # Keys written only when they have a value (as the steps always wrote them).
    optional_keys: ClassVar[tuple[str, ...]] = ()

    def dump(self) -> dict[str, Any]:
        data = self.model_dump(by_alias=True)
        for key in self.optional_keys:
            if data[key] is None:
                del data[key]
        return data


def _settings_model() -> type[Contract]:
    """The settings document (`config.Settings`, `config/settings.json`), from JobSettings itself."""
    by_attr = {f.name: f for f in fields(JobSettings)}
    spec = {attr: (Any, Field(default=None, alias=key)) for key, attr in JobSettings.FIELDS.items() if attr in by_attr}
    return create_model("Settings", __base__=Contract, **spec)


Settings = _settings_model()


class Config(Contract):
    """Bootstrap's `config`: what every later state reads and nobody changes."""

    settings: Settings = Field(alias="Settings")
    run_id: str = Field(alias="RunId")
    class_names: list[str] = Field(alias="ClassNames")
    label_category_config_uri: str = Field(alias="LabelCategoryConfigUri")
    ui_template_uri: str = Field(alias="UiTemplateUri")
    training_image: str = Field(alias="TrainingImage")
    inference_image: str = Field(alias="InferenceImage")
    source_dir_uri: str = Field(alias="SourceDirUri")
    training_instance_type: str = Field(alias="TrainingInstanceType")
    transform_instance_type: str = Field(alias="TransformInstanceType")
    pre_human_task_lambda_arn: str = Field(alias="PreHumanTaskLambdaArn")
    annotation_consolidation_lambda_arn: str = Field(alias="AnnotationConsolidationLambdaArn")
    task_title: str = Field(alias="TaskTitle")
    task_description: str = Field(alias="TaskDescription")
    max_concurrent_task_count: int = Field(alias="MaxConcurrentTaskCount")


class HumanBatch(Contract):
    """The batch waiting for people; Count 0 and nothing else when there is none."""

    count: int = Field(alias="Count")
    manifest_uri: Optional[str] = Field(default=None, alias="ManifestUri")
    output_uri: Optional[str] = Field(default=None, alias="OutputUri")
    labeling_job_name: Optional[str] = Field(default=None, alias="LabelingJobName")
    optional_keys = ("ManifestUri", "OutputUri", "LabelingJobName")


class LoopState(Contract):
    """The loop's `state`: counts, the newest ledger, the batch for people, why it stopped."""

    iteration: int = Field(alias="Iteration")
    ledger_uri: str = Field(alias="LedgerUri")
    total: int = Field(alias="Total")
    rejected: int = Field(alias="Rejected")
    pre_labeled: int = Field(alias="PreLabeled")
    human_labeled: int = Field(alias="HumanLabeled")
    auto_labeled: int = Field(alias="AutoLabeled")
    remaining: int = Field(alias="Remaining")
    human_batch: HumanBatch = Field(alias="HumanBatch")
    retrain_first: bool = Field(alias="RetrainFirst")
    model_artifacts: Optional[str] = Field(alias="ModelArtifacts")
    stop_reason: Optional[str] = Field(alias="StopReason")
    resumed: bool = Field(default=False, alias="Resumed")
    # Set by MergeHumanLabels, reset by GateAndRoute; absent before the first merge.
    human_labeled_this_iteration: Optional[int] = Field(default=None, alias="HumanLabeledThisIteration")
    last_metrics: Optional[dict[str, Any]] = Field(default=None, alias="LastMetrics")
    # Items people were asked to label but no answer came back for (Ground Truth's failed objects):
    # the job's total, and the last merge's, reset by GateAndRoute. Absent before the first merge.
    human_failed: Optional[int] = Field(default=None, alias="HumanFailed")
    human_failed_this_iteration: Optional[int] = Field(default=None, alias="HumanFailedThisIteration")
    # Of HumanLabeled, the items people were shown the model's guess for (boxes to adjust, not to
    # draw): priced at PricePerAdjustedLabel. Absent before the first merge.
    human_adjusted: Optional[int] = Field(default=None, alias="HumanAdjusted")
    # Clicks people spent on HumanLabeled, where their answers say (the local click annotators and
    # worker page), and on the last merge's; absent while no answer has said.
    human_clicks: Optional[int] = Field(default=None, alias="HumanClicks")
    human_clicks_this_iteration: Optional[int] = Field(default=None, alias="HumanClicksThisIteration")
    optional_keys = ("HumanLabeledThisIteration", "LastMetrics", "HumanFailed", "HumanFailedThisIteration",
                     "HumanAdjusted", "HumanClicks", "HumanClicksThisIteration")

    def dump(self) -> dict[str, Any]:
        return {**super().dump(), "HumanBatch": self.human_batch.dump()}


class Transform(Contract):
    job_name: str = Field(alias="JobName")
    input_uri: str = Field(alias="InputUri")
    output_uri: str = Field(alias="OutputUri")


class RetiredValidation(Contract):
    count: int = Field(alias="Count")
    correct: int | float = Field(alias="Correct")  # summed quality: a count of right verdicts for pass/fail labels


class IterationPlan(Contract):
    """SplitValidation's `iteration`: the channels, job names and transforms of one iteration."""

    train: bool = Field(alias="Train")
    given_model_artifacts: str = Field(alias="GivenModelArtifacts")
    training_job_name: str = Field(alias="TrainingJobName")
    model_name: str = Field(alias="ModelName")
    train_count: int = Field(alias="TrainCount")
    validation_count: int = Field(alias="ValidationCount")
    unlabeled_count: int = Field(alias="UnlabeledCount")
    retired_validation: RetiredValidation = Field(alias="RetiredValidation")
    training_channels: list[dict[str, Any]] = Field(alias="TrainingChannels")  # the training job's InputDataConfig
    model_output_uri: str = Field(alias="ModelOutputUri")
    hyper_parameters: dict[str, str] = Field(alias="HyperParameters")
    validation_transform: Transform = Field(alias="ValidationTransform")
    unlabeled_transform: Transform = Field(alias="UnlabeledTransform")


class CalibrationResult(Contract):
    """CalibrateThreshold's `calibration`."""

    optional_keys = ("ClassThresholds", "ClassLowerBounds", "ClassSupports")
    method: str = Field(alias="Method")
    threshold: Optional[float] = Field(alias="Threshold")
    lower_bound: Optional[float] = Field(alias="LowerBound")
    support: Optional[int] = Field(alias="Support")
    accuracy_at_threshold: Optional[float] = Field(alias="AccuracyAtThreshold")
    validation_count: int = Field(alias="ValidationCount")
    validation_accuracy: Optional[float] = Field(alias="ValidationAccuracy")
    min_support: int = Field(alias="MinSupport")
    working_target: float = Field(alias="WorkingTarget")
    carried_support: int = Field(alias="CarriedSupport")
    pool_lower_bound: Optional[float] = Field(alias="PoolLowerBound")
    # A threshold per predicted class (TBAL's class-wise rule, the per-class promise); `Threshold` is then the lowest.
    class_thresholds: Optional[list[Optional[float]]] = Field(default=None, alias="ClassThresholds")
    # The per-class promise: each class's bound and support (`LowerBound`: the lowest, `Support`: their sum).
    class_lower_bounds: Optional[list[Optional[float]]] = Field(default=None, alias="ClassLowerBounds")
    class_supports: Optional[list[int]] = Field(default=None, alias="ClassSupports")


class TrainingResult(Contract):
    """TrainModel's (or UseGivenModel's) `training`."""

    model_artifacts: str = Field(alias="ModelArtifacts")


class LabelingResult(Contract):
    """LabelWithHumans' `labeling`."""

    output_manifest_uri: str = Field(alias="OutputManifestUri")
    label_counters: Optional[dict[str, int]] = Field(default=None, alias="LabelCounters")


class ErrorInfo(Contract):
    """A Catch's `error`: the failed state's error name and cause."""

    error: str = Field(alias="Error")
    cause: Optional[str] = Field(default=None, alias="Cause")


class Summary(Contract):
    """ExportOutput's `summary` (and, on the failure path, `failure` with its Cause)."""

    output_manifest_uri: str = Field(alias="OutputManifestUri")
    rejected_manifest_uri: str = Field(alias="RejectedManifestUri")
    total: int = Field(alias="Total")
    rejected: int = Field(alias="Rejected")
    human_labeled: int = Field(alias="HumanLabeled")
    human_labeled_by_this_job: int = Field(alias="HumanLabeledByThisJob")
    auto_labeled: int = Field(alias="AutoLabeled")
    unlabeled: int = Field(alias="Unlabeled")
    iterations: int = Field(alias="Iterations")
    human_cost: float = Field(alias="HumanCost")
    stop_reason: str = Field(alias="StopReason")
    error: Optional[dict[str, Any]] = Field(alias="Error")
    final_model_artifacts: Optional[str] = Field(alias="FinalModelArtifacts")
    cause: Optional[str] = Field(default=None, alias="Cause")
    human_failed: int = Field(default=0, alias="HumanFailed")  # items sent to people that came back unlabeled
    human_adjusted: int = Field(default=0, alias="HumanAdjusted")  # of HumanLabeledByThisJob: shown the model's guess
    human_clicks: Optional[int] = Field(default=None, alias="HumanClicks")  # spent on them, where the answers say
    # The metrics row of a human batch merged after the last gate (the job ended on it), else None.
    final_human_batch: Optional[dict[str, Any]] = Field(default=None, alias="FinalHumanBatch")
    optional_keys = ("Cause", "FinalHumanBatch", "HumanClicks")


class DescribedJob(Contract):
    """Describe*Job's result, as the Describe states' ResultSelector keeps it."""

    status: str = Field(alias="Status")
    job: dict[str, Any] = Field(alias="Job")  # the whole Describe* response


class AwaitedJob(Contract):
    """A SageMaker step's refusal (`awaiting`): which step, and the job or model it named."""

    step: str = Field(alias="Step")
    kind: str = Field(alias="Kind")  # training-job, transform-job, labeling-job, model
    name: str = Field(alias="Name")
    poll_seconds: int = Field(alias="PollSeconds")
    described: Optional[DescribedJob] = Field(default=None, alias="Described")


class Execution(Contract):
    """The execution document (`$`) between states: Bootstrap's result plus what each state adds."""

    config: Config
    state: LoopState
    iteration: Optional[IterationPlan] = None
    training: Optional[TrainingResult] = None
    calibration: Optional[CalibrationResult] = None
    labeling: Optional[LabelingResult] = None
    error: Optional[ErrorInfo] = None
    failure: Optional[Summary] = None
    summary: Optional[Summary] = None
    awaiting: Optional[AwaitedJob] = None  # SageMakerRefused? and the states after it
