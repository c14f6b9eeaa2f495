"""The requests the state machine sends to SageMaker, as deployed by template.yaml: checked
against botocore's SageMaker service model (shapes, patterns, lengths, ranges), against the
stack's roles, and against what the handlers and the dashboard agree on.

Two executions run start to end on moto (see loop_on_moto.py): one that trains, one that starts
from a given model (pre-labeling).
"""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
import regex  # the service model's patterns are Java regexes (\\p{L} ...)
from botocore.validate import ParamValidator
from loop_on_moto import ATTRIBUTE, CLASSES, run_loop
from template_model import REGION, SAGEMAKER_APIS, Resolver, allows, matching_statements, sagemaker_calls

from labelloop import metrics_table, tasks

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = run_loop(tmp_path_factory.mktemp("trained"), name="trained-run")
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    return run


@pytest.fixture(scope="module")
def given_model(tmp_path_factory):
    bucket = Resolver().data_bucket()
    model = f"s3://{bucket}/models/earlier-run/model.tar.gz"
    run = run_loop(
        tmp_path_factory.mktemp("given"), settings=[("InitialModelArtifacts", model)], name="given-model-run"
    )
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    run.given = model
    return run


@pytest.fixture(scope="module")
def runs(trained, given_model):
    return [trained, given_model]


def _operation(action: str) -> str:
    return action[0].upper() + action[1:]


def _model_problems(shape, value, path: str) -> list[str]:
    """What botocore's ParamValidator leaves out: patterns, maximum lengths and ranges."""
    problems = []
    if shape.type_name == "structure":
        for key, item in value.items():
            if key in shape.members:
                problems += _model_problems(shape.members[key], item, f"{path}.{key}")
    elif shape.type_name == "list":
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            problems.append(f"{path}: {len(value)} items, at most {shape.metadata['max']}")
        for i, item in enumerate(value):
            problems += _model_problems(shape.member, item, f"{path}[{i}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            problems += _model_problems(shape.key, key, f"{path}(key)")
            problems += _model_problems(shape.value, item, f"{path}[{key}]")
    elif shape.type_name == "string":
        pattern = shape.metadata.get("pattern")
        if pattern and not regex.fullmatch(pattern, value):
            problems.append(f"{path}: {value!r} does not match {pattern}")
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            problems.append(f"{path}: {len(value)} characters, at most {shape.metadata['max']}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} not one of {shape.enum}")
    elif shape.type_name in ("integer", "long", "float", "double"):
        if "max" in shape.metadata and value > shape.metadata["max"]:
            problems.append(f"{path}: {value} above {shape.metadata['max']}")
    return problems


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value
        if value.startswith('"'):  # script-mode hyperparameters are JSON-encoded strings
            try:
                inner = json.loads(value)
            except json.JSONDecodeError:
                return
            yield from _strings(inner)


def _asl_sagemaker_apis() -> set[str]:
    from template_model import DEFINITION

    states = json.loads(DEFINITION.read_text())["States"].values()
    return {
        s["Resource"].split(":::sagemaker:")[1].removesuffix(".sync")
        for s in states
        if s["Type"] == "Task" and ":::sagemaker:" in s["Resource"]
    }


# ---------------------------------------------------------------- the API


def test_both_executions_sent_every_kind_of_request(trained, given_model):
    assert {a for a, _ in trained.requests} == _asl_sagemaker_apis()
    assert len(trained.bodies("createLabelingJob")) >= 2, "a second human batch, routed by GateAndRoute"
    first = [b for b in given_model.bodies("createTrainingJob") if b["TrainingJobName"].endswith("-001-train")]
    assert not first, "the given model replaces training in iteration 1"  # later iterations may train
    assert [b["PrimaryContainer"]["ModelDataUrl"] for b in given_model.bodies("createModel")][:1] == [given_model.given]


def test_every_request_is_valid_for_the_sagemaker_api(runs):
    validator = ParamValidator()
    problems = []
    for run in runs:
        for action, body in run.requests:
            shape = SAGEMAKER.operation_model(_operation(action)).input_shape
            report = validator.validate(body, shape)
            if report.has_errors():
                problems.append(f"{action}: {report.generate_report()}")
            problems += [f"{action}: {p}" for p in _model_problems(shape, body, action)]
    assert not problems, "\n".join(problems)


def test_the_checks_would_catch_a_bad_request(trained):
    """The pattern / length checks above are live: a request with bad values fails them."""
    body = json.loads(json.dumps(trained.bodies("createTrainingJob")[0]))
    body["TrainingJobName"] = "x" * 64
    body["OutputDataConfig"]["S3OutputPath"] = "/tmp/local/path"
    body["ResourceConfig"]["InstanceType"] = "local"
    shape = SAGEMAKER.operation_model("CreateTrainingJob").input_shape
    problems = _model_problems(shape, body, "body") + [ParamValidator().validate(body, shape).generate_report()]
    text = "\n".join(problems)
    assert "TrainingJobName" in text and "S3OutputPath" in text and "InstanceType" in text


def test_a_training_job_that_continues_gets_the_previous_model_as_a_valid_channel(trained):
    """Task types that continue training add a `model` channel (the previous model.tar.gz); the
    classification run sends train and validation only."""
    from labelloop import layout
    from labelloop.steps.split import training_channels

    for body in trained.bodies("createTrainingJob"):
        assert [c["ChannelName"] for c in body["InputDataConfig"]] == ["train", "validation"]
    bucket = Resolver().data_bucket()
    previous = f"s3://{bucket}/out/models/job-001-train/output/model.tar.gz"
    channels = training_channels(layout.IterationPaths(f"s3://{bucket}/out", 2), previous)
    assert [(c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"]) for c in channels][2] == ("model", previous)
    body = {**trained.bodies("createTrainingJob")[0], "InputDataConfig": channels}
    shape = SAGEMAKER.operation_model("CreateTrainingJob").input_shape
    report = ParamValidator().validate(body, shape)
    assert not report.has_errors(), report.generate_report()
    assert not _model_problems(shape, body, "body")
    assert tasks.get("semantic-segmentation").continues_training and not tasks.get("image-classification").continues_training


# ---------------------------------------------------------------- the stack


def test_requests_stay_inside_the_stack(runs):
    for run in runs:
        r = run.resolver
        params = r.params
        bucket = r.data_bucket()
        role = r.get_att("SageMakerExecutionRole", "Arn")
        for action, body in run.requests:
            for key in ("RoleArn", "ExecutionRoleArn"):
                if key in body:
                    assert body[key] == role, (action, key)
            for text in _strings(body):
                if text.startswith("s3://"):
                    assert text.startswith(f"s3://{bucket}/"), f"{action}: {text} is outside the data bucket"
        for body in run.bodies("createTrainingJob"):
            assert body["AlgorithmSpecification"]["TrainingImage"] == params["TextClassificationTrainingImage"]
            assert body["ResourceConfig"]["InstanceType"] == params["TextClassificationTrainingInstanceType"]
            assert (
                json.loads(body["HyperParameters"]["sagemaker_submit_directory"])
                == params["TextClassificationSourceDirUri"]
            )
        for body in run.bodies("createModel"):
            container = body["PrimaryContainer"]
            assert container["Image"] == params["TextClassificationInferenceImage"]
            assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == params["TextClassificationSourceDirUri"]
            assert container["Environment"]["SAGEMAKER_REGION"] == REGION
        for body in run.bodies("createTransformJob"):
            assert body["TransformResources"]["InstanceType"] == params["TextClassificationTransformInstanceType"]
        for body in run.bodies("createLabelingJob"):
            assert body["HumanTaskConfig"]["WorkteamArn"] == params["WorkteamArn"]


def test_the_state_machine_role_allows_each_request_and_only_for_this_prefix(runs):
    for run in runs:
        r = run.resolver
        statements = r.role_statements("StateMachineRole")
        prefix = r.params["JobNamePrefix"]
        for action, body in run.requests:
            name = body[SAGEMAKER_APIS[action][0]]
            assert name.lower().startswith(prefix), f"{name} does not start with JobNamePrefix {prefix}"
            resource = f"arn:aws:states:::sagemaker:{action}" + ("" if action == "createModel" else ".sync")
            for iam_action, arn in sagemaker_calls(resource, body, name):
                assert allows(statements, iam_action, arn), f"{iam_action} on {arn}"
            for key in ("RoleArn", "ExecutionRoleArn"):
                if key in body:
                    granted = matching_statements(statements, "iam:PassRole", body[key])
                    assert granted and all("iam:PassedToService" in json.dumps(s.get("Condition")) for s in granted)


# ---------------------------------------------------------------- Ground Truth


def test_labeling_jobs_use_the_built_in_text_classification_task(runs):
    pre, acs = tasks.get("text-classification").built_in_lambda_arns(REGION)
    for run in runs:
        for body in run.bodies("createLabelingJob"):
            task = body["HumanTaskConfig"]
            assert task["PreHumanTaskLambdaArn"] == pre and pre.endswith(":function:PRE-TextMultiClass")
            assert task["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"] == acs
            assert acs.endswith(":function:ACS-TextMultiClass")
            assert 1 <= task["NumberOfHumanWorkersPerDataObject"] <= 9
            assert task["NumberOfHumanWorkersPerDataObject"] == run.execution_input["WorkersPerObject"]
            assert task["TaskTimeLimitInSeconds"] <= 8 * 3600  # Ground Truth's maximum
            assert task["TaskAvailabilityLifetimeInSeconds"] <= 30 * 86400  # private work teams: 30 days at most
            assert task["MaxConcurrentTaskCount"] <= 1000
            assert body["LabelAttributeName"] == ATTRIBUTE and not ATTRIBUTE.endswith("-metadata")
            config = json.loads(run.objects[body["LabelCategoryConfigS3Uri"]])
            assert config == {"document-version": "2018-11-28", "labels": [{"label": c} for c in CLASSES]}
            template = run.objects[task["UiConfig"]["UiTemplateS3Uri"]].decode()
            assert "<crowd-classifier" in template and "task.input.taskObject" in template
            assert run.objects[body["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]]


# ---------------------------------------------------------------- status and dashboard


def test_status_shows_one_line_per_iteration(trained):
    metrics = sorted(
        (
            json.loads(data)
            for uri, data in trained.objects.items()
            if re.search(r"/iterations/\d{3}/metrics\.json$", uri)
        ),
        key=lambda m: m["Iteration"],
    )
    assert metrics, "the run finished at least one iteration"
    lines = trained.status_text.splitlines()
    assert lines[0].startswith("execution trained-run: SUCCEEDED")
    header = lines.index(metrics_table.text_header())  # the columns `labelloop run` and the report show too
    rows = lines[header + 1 : header + 1 + len(metrics)]
    for row, m in zip(rows, metrics):
        cells = row.split()
        assert [int(x) for x in cells[:4]] == [m["Iteration"], m["HumanLabeled"], m["AutoLabeled"], m["Remaining"]]
        assert cells[4] == ("–" if m["Threshold"] is None else f"{m['Threshold']:.4f}")
        assert row.endswith(metrics_table.RETRAIN_FIRST if m.get("RetrainFirst") else f" {m['NextHumanBatch']}")
    assert not lines[header + 1 + len(metrics)].split()[0].isdigit()
    summary = json.loads(next(d for u, d in trained.objects.items() if u.endswith("/output/summary.json")))
    assert f"stopped: {summary['StopReason']}:" in trained.status_text
    assert summary["OutputManifestUri"] in trained.status_text and summary["OutputManifestUri"] in trained.objects


def test_dashboard_draws_exactly_the_metrics_the_handlers_emit(runs):
    emitted, dimension_sets = set(), set()
    for run in runs:
        for blob in run.emf:
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                assert directive["Namespace"] == "labelloop"
                dimension_sets |= {tuple(sorted(d)) for d in directive["Dimensions"]}
                emitted |= {m["Name"] for m in directive["Metrics"]}
            assert blob["service"] == "labelloop" and blob["JobName"] == run.execution_input["JobName"]
    assert dimension_sets == {("JobName", "service")}
    body = json.loads(runs[0].resolver.properties("Dashboard")["DashboardBody"])
    searches = [
        m["expression"]
        for w in body["widgets"]
        if w["type"] == "metric"
        for line in w["properties"]["metrics"]
        for m in line
        if isinstance(m, dict) and "expression" in m
    ]
    drawn = set()
    for expression in searches:
        match = re.match(r"""SEARCH\('\{labelloop,JobName,service\} MetricName="(\w+)"', '(\w+)', \d+\)$""", expression)
        if match:
            drawn.add(match.group(1))
    assert drawn == emitted, f"emitted but not drawn: {emitted - drawn}; drawn but never emitted: {drawn - emitted}"
    cost = [e for e in searches if "*" in e]
    assert cost == ["labels * 0.08 * 1"], cost  # HumanLabeled x PricePerLabel x WorkersPerObject


def test_status_of_a_failed_loop_names_the_error_and_the_partial_output(tmp_path_factory):
    run = run_loop(tmp_path_factory.mktemp("failed"), name="failed-run", fail_training=True)
    assert run.status == "FAILED" and run.error == "LabelingLoopFailed"
    text = run.status_text
    assert "execution failed-run: FAILED" in text
    assert "error: LabelingLoopFailed" in text and "cause: States.TaskFailed" in text
    summary = json.loads(next(d for u, d in run.objects.items() if u.endswith("/output/summary.json")))
    assert summary["StopReason"] == "failed: States.TaskFailed"
    assert f"output manifest: {summary['OutputManifestUri']}" in text and summary["OutputManifestUri"] in run.objects
