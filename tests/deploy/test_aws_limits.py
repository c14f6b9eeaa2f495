"""The service limits a deployed run must stay inside (labelloop.aws_limits), against the ASL,
botocore's SageMaker model and the history of a run on moto. Each of these failed a real run
only after humans had been paid."""

from __future__ import annotations

import json
import math

import botocore.session
import pytest
import regex
from loop_on_moto import run_loop
from template_model import DEFINITION, Resolver

from labelloop import aws_limits, layout, steps
from labelloop.config import ConfigurationError, JobSettings
from labelloop.local.sagemaker_jobs import NAME_KEYS

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
ASL = json.loads(DEFINITION.read_text())
STATES = ASL["States"]
BASE = {
    "ManifestUri": "s3://b/in.manifest", "OutputUri": "s3://b/out", "TaskType": "image-classification",
    "LabelAttributeName": "label", "LabelCategories": ["a", "b"],
}


# ---------------------------------------------------------------- SageMaker names (item 4)

NAME_FIELDS = {  # every SageMaker name a run derives from JobName, by the kind aws_limits.JOB_KINDS gives it
    "label": ("CreateLabelingJob", "LabelingJobName"),
    "train": ("CreateTrainingJob", "TrainingJobName"),
    "model": ("CreateModel", "ModelName"),
    "infer-val": ("CreateTransformJob", "TransformJobName"),
    "infer-unl": ("CreateTransformJob", "TransformJobName"),
}


def _longest_allowed_job_names() -> list[str]:
    """The longest JobNames parse accepts: letters only, and the hyphen runs the pattern allows."""
    n = aws_limits.MAX_JOB_NAME
    return ["j" * n, "j" + "-" * (n - 2) + "j", ("ab-" * n)[: n - 1] + "z"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    done = run_loop(tmp_path_factory.mktemp("limits"), name="limits-run")
    assert done.status == "SUCCEEDED", (done.error, done.cause)
    return done


def test_every_name_the_longest_job_name_makes_is_a_valid_sagemaker_name():
    assert set(NAME_FIELDS) == set(aws_limits.JOB_KINDS)
    for job in _longest_allowed_job_names():
        settings = JobSettings.parse({**BASE, "JobName": job, "MaxIterations": aws_limits.MAX_ITERATIONS})
        run_id = settings.run_id("an-execution-name-as-long-as-step-functions-allows-it-to-be-00000000000000000")
        for iteration in (1, settings.max_iterations, settings.max_iterations + 1):
            for kind, (operation, member) in NAME_FIELDS.items():
                name = layout.job_name(job, run_id, iteration, kind)
                shape = SAGEMAKER.operation_model(operation).input_shape.members[member]
                assert len(name) <= shape.metadata["max"], (name, len(name))
                assert regex.fullmatch(shape.metadata["pattern"], name), name


@pytest.mark.parametrize(
    "job",
    [
        "j" * (aws_limits.MAX_JOB_NAME + 1),
        "labelloop-----------------spam-x",  # 32 characters: passes
        "a-----------------------------------------b",  # the case: 42 characters, hyphen runs
    ],
)
def test_a_job_name_too_long_for_its_sagemaker_names_is_refused_at_parse_time(job):
    if len(job) <= aws_limits.MAX_JOB_NAME:
        assert JobSettings.parse({**BASE, "JobName": job})
        return
    with pytest.raises(ConfigurationError, match="at most 32"):
        JobSettings.parse({**BASE, "JobName": job})


def test_the_steps_name_jobs_only_with_the_kinds_checked(run):
    job, run_id = run.execution_input["JobName"], None
    for action, body in run.requests:
        name = body[NAME_KEYS[action]]
        prefix, _, rest = name.partition(job + "-")
        assert prefix == "" and rest
        rid, iteration, kind = rest.split("-", 2)
        run_id = run_id or rid
        assert rid == run_id and len(rid) == aws_limits.RUN_ID_LENGTH and iteration.isdigit()
        assert kind in aws_limits.JOB_KINDS, name
    # item 1: every transform input line is long enough that a full request's reply fits
    n_classes = len(run.execution_input["LabelCategories"])
    inputs = [u for u in run.objects if "/transform-input/" in u or "/channels/validation/" in u]
    assert inputs
    for uri in inputs:
        for text in run.objects[uri].decode().splitlines():
            assert len(text) + 1 >= aws_limits.min_line_bytes(n_classes), uri


# ---------------------------------------------------------------- Step Functions history (item 5)


def _events(name: str) -> int:
    """History events one pass through a state writes, without retries (as moto writes them too)."""
    state = STATES[name]
    if state["Type"] != "Task":
        return 2  # <Type>StateEntered, <Type>StateExited
    if state["Resource"].endswith(".sync"):
        return 6  # TaskStateEntered, TaskScheduled, TaskStarted, TaskSubmitted, TaskSucceeded, TaskStateExited
    return 5  # Lambda: ...Entered, LambdaFunctionScheduled/Started/Succeeded, ...Exited; request-response tasks alike


def _path(*names: str) -> int:
    for a, b in zip(names, names[1:]):
        state = STATES[a]
        nexts = {state.get("Next"), state.get("Default")} | {c["Next"] for c in state.get("Choices", [])}
        assert b in nexts, f"{a} does not lead to {b}"
    return sum(_events(n) for n in names)


HUMAN_ITERATION = ("LabelWithHumans", "MergeHumanLabels", "AllLabeled?", "SplitValidation", "TrainOrUseGivenModel?",
                   "TrainModel", "SaveModel", "InferValidation", "CalibrateThreshold", "InferUnlabeled", "GateAndRoute",
                   "RetrainBeforeRouting?", "HumansHaveWork?")
RETRAIN_ITERATION = ("SplitValidation", "TrainOrUseGivenModel?", "TrainModel", "SaveModel", "InferValidation",
                     "CalibrateThreshold", "InferUnlabeled", "GateAndRoute", "RetrainBeforeRouting?")
RETRIES_PER_ITERATION = 8  # throttled calls absorbed per iteration: each adds ...Failed, ...Scheduled, ...Started


def _recovery(step: str, describe: str, poll_seconds: int, longest_seconds: int) -> int:
    """A refused Create* whose job existed, looked up until it ends (SageMakerRefused? -> ... -> ResumeAfterExistingJob?)."""
    polls = math.ceil(longest_seconds / poll_seconds)
    once = 4 + _events(f"{step}Refused") + _events("SageMakerRefused?") + _events("DescribeExistingJob?")
    poll = _events(describe) + _events("ExistingJobFinished?") + _events("WaitForExistingJob") + _events("DescribeExistingJob?")
    return once + polls * poll + _events("ResumeAfterExistingJob?") + 2


def test_max_iterations_fits_step_functions_history_limit():
    start = 1 + _path("Bootstrap", "SampleForHumans", "RetrainBeforeRouting?", "HumansHaveWork?")  # + ExecutionStarted
    # + ExecutionSucceeded; a Fail state writes FailStateEntered only, then ExecutionFailed
    end = max(_path("ExportOutput", "Done") + 1, _path("SavePartialOutput", "LoopFailed"))
    per_iteration = max(_path(*HUMAN_ITERATION), _path(*RETRAIN_ITERATION)) + 3 * RETRIES_PER_ITERATION
    poll = {s: STATES[f"{s}Refused"]["Parameters"]["PollSeconds"] for s in ("LabelWithHumans", "TrainModel", "InferUnlabeled")}
    lifetime = STATES["LabelWithHumans"]["Parameters"]["HumanTaskConfig"]["TaskAvailabilityLifetimeInSeconds"]
    runtime = STATES["TrainModel"]["Parameters"]["StoppingCondition"]["MaxRuntimeInSeconds"]
    reserve = (  # one recovered job of each kind, each running as long as it may
        _recovery("LabelWithHumans", "DescribeLabelingJob", poll["LabelWithHumans"], lifetime)
        + _recovery("TrainModel", "DescribeTrainingJob", poll["TrainModel"], runtime)
        + _recovery("InferUnlabeled", "DescribeTransformJob", poll["InferUnlabeled"], 86400)
    )
    assert _path(*HUMAN_ITERATION) == 57  # the issue measured 58 a pass
    total = start + aws_limits.MAX_ITERATIONS * per_iteration + reserve + end
    print(f"start {start} + {aws_limits.MAX_ITERATIONS} x {per_iteration} + reserve {reserve} + end {end} = {total}")
    assert total <= aws_limits.HISTORY_EVENT_LIMIT
    assert aws_limits.MAX_ITERATIONS >= 100  # still enough for real jobs
    with pytest.raises(ConfigurationError, match="MaxIterations must be at most"):
        JobSettings.parse({**BASE, "JobName": "j", "MaxIterations": aws_limits.MAX_ITERATIONS + 1})
    JobSettings.parse({**BASE, "JobName": "j", "MaxIterations": aws_limits.MAX_ITERATIONS})


def test_the_event_model_is_what_an_execution_writes(run):
    entered = [e["stateEnteredEventDetails"]["name"] for e in run.history if "stateEnteredEventDetails" in e]
    assert entered.count("LabelWithHumans") >= 2
    assert len(run.history) == 1 + sum(_events(n) for n in entered) + 1  # ExecutionStarted ... ExecutionSucceeded


# ---------------------------------------------------------------- batch transform (item 1)


def test_transforms_and_the_model_use_the_limits_the_reply_size_arithmetic_assumes():
    for name in ("InferValidation", "InferUnlabeled"):
        params = STATES[name]["Parameters"]
        assert params["MaxPayloadInMB"] == aws_limits.MAX_PAYLOAD_MB
        assert params["BatchStrategy"] == "MultiRecord" and params["TransformInput"]["SplitType"] == "Line"
        assert params["ModelClientConfig"]["InvocationsTimeoutInSeconds"] == aws_limits.MODEL_SERVER_TIMEOUT
    env = STATES["SaveModel"]["Parameters"]["PrimaryContainer"]["Environment"]
    assert env["SAGEMAKER_MODEL_SERVER_TIMEOUT"] == str(aws_limits.MODEL_SERVER_TIMEOUT)
    assert int(env["TS_MAX_RESPONSE_SIZE"]) >= aws_limits.MODEL_SERVER_REPLY_LIMIT  # if TorchServe reads it: more room
    timeout = SAGEMAKER.operation_model("CreateTransformJob").input_shape.members["ModelClientConfig"]
    assert aws_limits.MODEL_SERVER_TIMEOUT <= timeout.members["InvocationsTimeoutInSeconds"].metadata["max"]


def test_short_lines_are_padded_and_long_ones_left_alone():
    short = {"labelloop-id": 1, "source": "hi"}
    padded = aws_limits.transform_line(short, 10)
    assert len(json.dumps(padded, separators=(",", ":"))) + 1 == aws_limits.min_line_bytes(10)
    assert {k: v for k, v in padded.items() if k != aws_limits.PAD_KEY} == short
    long = {"labelloop-id": 1, "source-ref": "s3://bucket/" + "k" * 200}
    assert aws_limits.transform_line(long, 10) is long


# ---------------------------------------------------------------- instance types (item 6)


def test_bootstrap_refuses_an_instance_type_its_api_does_not_take(tmp_path):
    settings = {**BASE, "ManifestUri": str(tmp_path / "in.manifest"), "OutputUri": str(tmp_path / "out"),
                "JobName": "j", "TaskType": "text-classification"}
    (tmp_path / "in.manifest").write_text('{"source": "x"}\n')
    algorithm = {"TrainingImage": "i", "InferenceImage": "i", "SourceDirUri": "s3://b/s.tar.gz",
                 "TrainingInstanceType": "ml.t3.medium", "TransformInstanceType": "ml.t3.medium"}
    event = {"Input": settings, "Deployment": {"Region": "us-east-1", "Algorithms": {"text-classification": algorithm}}}
    with pytest.raises(ConfigurationError, match="TransformInstanceType 'ml.t3.medium' is not an instance type CreateTransformJob") as exc:
        steps.bootstrap(event)
    assert "TrainingInstanceType" not in str(exc.value), "ml.t3.medium trains"
    assert not (tmp_path / "out").exists(), "refused before anything is written"
    subs = Resolver().substitutions()
    for key, value in subs.items():
        if key.endswith("InstanceType"):
            setting = "TrainingInstanceType" if "Training" in key else "TransformInstanceType"
            assert aws_limits.instance_type_problem(setting, value) is None, key


# ---------------------------------------------------------------- SageMaker refusals (item 7)


def test_only_transient_sagemaker_errors_are_retried_and_an_existing_job_is_looked_up():
    sagemaker_tasks = [n for n, s in STATES.items() if s["Type"] == "Task" and ":::sagemaker:" in s["Resource"]]
    assert len(sagemaker_tasks) == 5
    for name in sagemaker_tasks:
        state = STATES[name]
        retried = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert retried <= {"SageMaker.ThrottlingException", "ThrottlingException"}, name  # never a ValidationException
        refused = state["Catch"][0]
        assert "SageMaker.AmazonSageMakerException" in refused["ErrorEquals"] and refused["Next"] == f"{name}Refused"
        assert STATES[f"{name}Refused"]["Next"] == "SageMakerRefused?"
    choice = STATES["SageMakerRefused?"]
    assert choice["Default"] == "SavePartialOutput"
    assert choice["Choices"][0] == {"Variable": "$.error.Cause", "StringMatches": "*already exist*", "Next": "DescribeExistingJob?"}
    resume = {c["StringEquals"]: c["Next"] for c in STATES["ResumeAfterExistingJob?"]["Choices"]}
    for name in sagemaker_tasks:  # after the existing job: where the step itself would have gone
        after = resume.get(name, STATES["ResumeAfterExistingJob?"]["Default"])
        after = STATES[after]["Next"] if STATES[after]["Type"] == "Pass" else after
        assert after == STATES[name]["Next"], name


@pytest.mark.parametrize(
    ("lost", "looked_up", "then"),
    [
        ("-001-label", "DescribeLabelingJob", "UseExistingLabelingJob"),
        ("-001-model", None, "InferValidation"),
        ("-001-infer-unl", "DescribeTransformJob", "GateAndRoute"),
    ],
)
def test_a_job_whose_create_answer_was_lost_is_used_not_created_again(tmp_path, lost, looked_up, then):
    """The first answer is lost (a 500): the step is tried again, finds the name taken, and the
    loop goes on with the job it created (a labeling job is never paid twice)."""
    run = run_loop(tmp_path, name="lost-run", lose_response=lost)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    entered = [e["stateEnteredEventDetails"]["name"] for e in run.history if "stateEnteredEventDetails" in e]
    assert "WaitAfterThrottling" in entered and "ResumeAfterExistingJob?" in entered
    if looked_up:
        assert looked_up in entered
    assert entered[entered.index("ResumeAfterExistingJob?") + 1] == then
    names = [body[NAME_KEYS[action]] for action, body in run.requests]
    assert sum(n.endswith(lost) for n in names) == 1, "one create reached the fake; the second was refused as a duplicate"
    answered = [u for u in run.objects if u.endswith("/manifests/output/output.manifest")]
    assert len(answered) == len({u.split("/labeling/")[1].split("/")[0] for u in answered})


def test_an_existing_job_that_failed_fails_the_loop_with_the_labels_saved(tmp_path):
    run = run_loop(tmp_path, name="lost-failed", fail_training=True, lose_response="-001-train")
    assert run.status == "FAILED" and run.error == "LabelingLoopFailed"
    assert "training-job" in run.cause and "ended Failed" in run.cause, run.cause
    summary = json.loads(next(d for u, d in run.objects.items() if u.endswith("/output/summary.json")))
    assert summary["StopReason"] == "failed: States.TaskFailed" and summary["HumanLabeled"] > 0
