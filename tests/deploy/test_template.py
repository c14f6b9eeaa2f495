"""template.yaml, read as CloudFormation would: the state machine's wiring, the roles' least
privilege (derived from the ASL and from the code the functions run), the bucket, monitoring."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import pytest
from template_model import (
    ACCOUNT,
    DEFINITION,
    REGION,
    REPO,
    STACK,
    Resolver,
    allows,
    load_template,
    matching_statements,
    passed_roles,
    placeholders,
    sagemaker_calls,
)

from labelloop import layout
from labelloop.local.engine import FUNCTIONS

# Actions AWS offers no resource-level permissions for: Resource "*" is the only way to grant them.
RESOURCE_STAR_ALLOWED = {
    "ecr:GetAuthorizationToken": "ECR login for pulling the framework images",
    "cloudwatch:PutMetricData": "SageMaker job metrics (limited by a cloudwatch:namespace condition)",
    "xray:PutTraceSegments": "Step Functions X-Ray tracing",
    "xray:PutTelemetryRecords": "Step Functions X-Ray tracing",
    "xray:GetSamplingRules": "Step Functions X-Ray tracing",
    "xray:GetSamplingTargets": "Step Functions X-Ray tracing",
    "logs:CreateLogDelivery": "Step Functions logging (vended logs)",
    "logs:GetLogDelivery": "Step Functions logging (vended logs)",
    "logs:UpdateLogDelivery": "Step Functions logging (vended logs)",
    "logs:DeleteLogDelivery": "Step Functions logging (vended logs)",
    "logs:ListLogDeliveries": "Step Functions logging (vended logs)",
    "logs:PutResourcePolicy": "Step Functions logging (vended logs)",
    "logs:DescribeResourcePolicies": "Step Functions logging (vended logs)",
    "logs:DescribeLogGroups": "Step Functions logging (vended logs)",
}
ROLES = ("StateMachineRole", "SageMakerExecutionRole", "FunctionsRole")
SAMPLE_JOB = "labelloop-digits-0123abcd-001"  # {JobName}-{RunId}-{NNN}, JobName under the default prefix


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


@pytest.fixture(scope="module")
def asl() -> dict:
    return json.loads(DEFINITION.read_text())


def _as_list(value):
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- wiring


def test_every_definition_placeholder_has_exactly_one_substitution(resolver):
    subs = load_template()["Resources"]["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert set(subs) == placeholders(), "DefinitionSubstitutions must match the ${...} placeholders of the ASL"
    assert (
        load_template()["Resources"]["StateMachine"]["Properties"]["DefinitionUri"]
        == "statemachine/active_learning.asl.json"
    )


def test_function_placeholders_point_at_their_own_step(resolver):
    subs = resolver.substitutions()
    for step in FUNCTIONS:
        assert subs[f"{step}FunctionArn"] == resolver.get_att(f"{step}Function", "Arn")


def test_seven_functions_share_one_package_and_sane_limits(resolver):
    t = load_template()
    functions = {k: v for k, v in t["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == {f"{step}Function" for step in FUNCTIONS}
    for logical_id, res in functions.items():
        module, _, handler = res["Properties"]["Handler"].partition(".")
        assert module == FUNCTIONS[logical_id.removesuffix("Function")] and handler == "lambda_handler"
        assert (REPO / "functions" / f"{module}.py").is_file()
        assert "CodeUri" not in res["Properties"], "one code package: CodeUri comes from Globals"
        assert res["Metadata"] == {"BuildMethod": "makefile", "ContextPath": ".", "WorkingDirectory": "."}
    g = t["Globals"]["Function"]
    assert g["Runtime"] == "python3.12"  # numpy/scipy pins need glibc 2.27+ (not python3.11's Amazon Linux 2)
    assert g["MemorySize"] >= 3008 and g["Timeout"] == 900
    env = resolver.function_environment()
    assert env["POWERTOOLS_SERVICE_NAME"] == env["POWERTOOLS_METRICS_NAMESPACE"] == "labelloop"
    requirements = (REPO / "functions" / "requirements.txt").read_text().split()
    assert requirements and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][^=]*", r) for r in requirements), (
        "pin every requirement"
    )


def test_state_machine_logs_everything_and_traces(resolver):
    props = resolver.properties("StateMachine")
    assert props["Tracing"] == {"Enabled": True}
    logging = props["Logging"]
    assert logging["Level"] in ("ALL", "ERROR") and logging["IncludeExecutionData"] is True
    assert logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"] == resolver.get_att(
        "StateMachineLogGroup", "Arn"
    )
    assert props["Role"] == resolver.get_att("StateMachineRole", "Arn")


def test_failed_executions_raise_an_alarm(resolver):
    alarm = resolver.properties("FailedExecutionsAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": resolver.ref("StateMachine")}]
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "AlarmActions" not in alarm  # no topic given
    with_topic = Resolver({**Resolver().params, "AlarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:ops"})
    assert with_topic.properties("FailedExecutionsAlarm")["AlarmActions"] == [f"arn:aws:sns:{REGION}:{ACCOUNT}:ops"]


def test_outputs_give_start_what_it_needs(resolver):
    out = resolver.outputs()
    assert out["StateMachineArn"] == f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-active-learning"
    assert out["DataBucketName"] == resolver.data_bucket()
    assert out["DashboardName"] and out["DashboardUrl"].endswith(out["DashboardName"])
    assert json.loads(out["JobDefaults"]) == {
        "TargetAccuracy": 0.95,
        "ConfidenceLevel": 0.95,
        "HumanBatchSize": 100,
        "MaxHumanLabeledObjectCount": 0,
        "PricePerLabel": 0.08,
        "WorkersPerObject": 1,
    }


# ---------------------------------------------------------------- the data bucket


def test_created_bucket_is_private_encrypted_versioned_and_tls_only(resolver):
    assert resolver.exists("DataBucket") and resolver.exists("DataBucketPolicy")
    bucket = resolver.properties("DataBucket")
    sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    deny = resolver.properties("DataBucketPolicy")["PolicyDocument"]["Statement"]
    tls = [s for s in deny if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}]
    arn = resolver.get_att("DataBucket", "Arn")
    assert tls and set(tls[0]["Resource"]) == {arn, f"{arn}/*"} and tls[0]["Principal"] == "*"


def test_an_existing_bucket_is_used_as_is(resolver):
    r = Resolver({**resolver.params, "DataBucketName": "my-labels"})
    assert not r.exists("DataBucket") and not r.exists("DataBucketPolicy")
    assert r.outputs()["DataBucketName"] == "my-labels"
    assert r.function_environment()["LABELLOOP_DATA_BUCKET"] == "my-labels"
    for role in ("FunctionsRole", "SageMakerExecutionRole"):
        assert allows(r.role_statements(role), "s3:GetObject", "arn:aws:s3:::my-labels/input/x.manifest")


# ---------------------------------------------------------------- least privilege


def test_no_wildcard_actions_and_resource_star_only_where_aws_requires_it(resolver):
    for role in ROLES:
        for s in resolver.role_statements(role):
            assert not ({"NotAction", "NotResource"} & set(s)), (role, s)
            for action in _as_list(s["Action"]):
                assert "*" not in action and "?" not in action, f"{role}: wildcard action {action}"
            if "*" in _as_list(s["Resource"]):
                assert _as_list(s["Resource"]) == ["*"]
                for action in _as_list(s["Action"]):
                    assert action in RESOURCE_STAR_ALLOWED, f"{role}: {action} on Resource '*'"


def test_state_machine_role_grants_every_call_the_definition_makes(resolver, asl):
    """Derived from the ASL: each Task's integration → the IAM actions Step Functions needs."""
    statements = resolver.role_statements("StateMachineRole")
    subs = resolver.substitutions()
    sagemaker_role = resolver.get_att("SageMakerExecutionRole", "Arn")
    seen = set()
    for name, state in asl["States"].items():
        if state["Type"] != "Task":
            continue
        resource = state["Resource"]
        placeholder = re.fullmatch(r"\$\{(\w+)\}", resource)
        if placeholder:
            function_arn = subs[placeholder.group(1)]
            assert allows(statements, "lambda:InvokeFunction", function_arn), name
            seen.add("lambda")
            continue
        assert re.match(r"arn:aws:states:::(aws-sdk:)?sagemaker:", resource), f"{name}: unknown integration {resource}"
        for action, arn in sagemaker_calls(resource, state["Parameters"], f"{SAMPLE_JOB}-{name.lower()}"):
            assert allows(statements, action, arn), f"{name}: {action} on {arn}"
            # ... and only for this stack's job names
            other = arn.replace("/labelloop-", "/someone-else-") if "sagemaker" in arn else None
            if other:
                assert not allows(statements, action, other), f"{name}: {action} must be limited to the JobNamePrefix"
        for role in passed_roles(state["Parameters"]):
            assert role == "${SageMakerRoleArn}"
            granted = matching_statements(statements, "iam:PassRole", sagemaker_role)
            assert granted and all(
                s.get("Condition") == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
                for s in granted
            )
        seen.add(resource)
    assert "lambda" in seen and len(seen) >= 5, seen
    # lambda:InvokeFunction on the seven functions and nothing else
    invoke = [s for s in statements if "lambda:InvokeFunction" in _as_list(s["Action"])]
    assert sorted(r for s in invoke for r in _as_list(s["Resource"])) == sorted(
        resolver.get_att(f"{step}Function", "Arn") for step in FUNCTIONS
    )
    assert not allows(statements, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/AdminRole")
    assert not any(a.startswith("s3:") for s in statements for a in _as_list(s["Action"])), (
        "the state machine touches no S3"
    )


# boto3 client calls of the code in the Lambda package → IAM actions (s3 ARNs: bucket or object)
BOTO3_CALLS = {
    ("s3", "head_object"): ["s3:GetObject"],
    ("s3", "get_object"): ["s3:GetObject"],
    ("s3", "download_file"): ["s3:GetObject"],
    ("s3", "put_object"): ["s3:PutObject"],
    ("s3", "upload_file"): ["s3:PutObject", "s3:AbortMultipartUpload"],
    ("s3", "delete_object"): ["s3:DeleteObject"],
    ("s3", "list_objects_v2"): ["s3:ListBucket"],
    ("stepfunctions", "describe_execution"): ["states:DescribeExecution"],
}


def _client_calls(path: Path) -> set[tuple[str, str]]:
    """(service, method) for each call on `_s3()` or `boto3.client("...")` in a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver, method = node.func.value, node.func.attr
        service = None
        if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and receiver.func.id == "_s3":
            service = "s3"
        elif (
            isinstance(receiver, ast.Call)
            and isinstance(receiver.func, ast.Attribute)
            and receiver.func.attr == "client"
            and receiver.args
            and isinstance(receiver.args[0], ast.Constant)
        ):
            service = receiver.args[0].value
        if service is None:
            continue
        if method == "get_paginator":
            method = node.args[0].value
        found.add((service, method))
    return found


def _lambda_package_modules() -> list[Path]:
    makefile = (REPO / "Makefile").read_text()
    local_only = re.search(r"^LOCAL_ONLY := (.+)$", makefile, re.M).group(1).split()
    return sorted(REPO.glob("functions/*.py")) + [
        p for p in sorted(REPO.glob("labelloop/*.py")) if f"labelloop/{p.name}" not in local_only
    ]


def test_functions_role_grants_every_call_the_functions_make_on_the_data_bucket_only(resolver):
    calls = set().union(*(_client_calls(p) for p in _lambda_package_modules()))
    assert {("s3", "get_object"), ("s3", "put_object"), ("s3", "list_objects_v2")} <= calls, calls  # the scan works
    unknown = calls - set(BOTO3_CALLS)
    assert not unknown, f"map these boto3 calls to IAM actions in BOTO3_CALLS (and grant them): {unknown}"
    statements = resolver.role_statements("FunctionsRole")
    bucket = resolver.data_bucket()
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{resolver.physical_name('StateMachine')}:run-1"
    for call in calls:
        for action in BOTO3_CALLS[call]:
            if action.startswith("s3:"):
                arn = f"arn:aws:s3:::{bucket}" if action == "s3:ListBucket" else f"arn:aws:s3:::{bucket}/runs/j/x.json"
                if action == "s3:DeleteObject":  # the steps delete one object: a run's lock
                    arn = f"arn:aws:s3:::{bucket}/" + layout.lock_uri("s3://b/runs/j/20260101T000000Z").split("/", 3)[3]
                elsewhere = arn.replace(bucket, "another-bucket")
            else:
                arn, elsewhere = execution, execution.replace(resolver.physical_name("StateMachine"), "other-machine")
            assert allows(statements, action, arn), f"{call}: {action} on {arn}"
            assert not allows(statements, action, elsewhere), f"{call}: {action} must not reach {elsewhere}"
    log_group = resolver.get_att("FunctionsLogGroup", "Arn")
    assert allows(statements, "logs:PutLogEvents", log_group)
    assert resolver.resolve(load_template()["Globals"]["Function"]["LoggingConfig"]) == {
        "LogGroup": resolver.ref("FunctionsLogGroup")
    }


def test_the_steps_delete_only_locks_and_nobody_but_prepare_deploy_writes_the_algorithm_sources(resolver):
    bucket = resolver.data_bucket()
    functions = resolver.role_statements("FunctionsRole")
    assert allows(functions, "s3:DeleteObject", f"arn:aws:s3:::{bucket}/runs/j/t/config/lock.json")
    for key in ("runs/j/t/output/output.manifest", "input/data.manifest", "runs/j/t/iterations/001/ledger-human.jsonl"):
        assert not allows(functions, "s3:DeleteObject", f"arn:aws:s3:::{bucket}/{key}"), key
    source = f"arn:aws:s3:::{bucket}/labelloop/source/image-classification/0123456789abcdef/sourcedir.tar.gz"
    for role in ("FunctionsRole", "SageMakerExecutionRole"):
        statements = resolver.role_statements(role)
        assert allows(statements, "s3:GetObject", source) or role == "FunctionsRole"
        assert not allows(statements, "s3:PutObject", source), f"{role} may overwrite the algorithm sources"
        assert allows(statements, "s3:PutObject", f"arn:aws:s3:::{bucket}/runs/j/t/iterations/001/model/x")


def test_the_jobs_pull_images_only_from_the_framework_registries(resolver):
    statements = resolver.role_statements("SageMakerExecutionRole")
    for param in ("ImageClassificationTrainingImage", "ImageClassificationInferenceImage",
                  "TextClassificationTrainingImage", "TextClassificationInferenceImage"):
        uri = resolver.params[param]
        account, region = uri.split(".")[0], uri.split(".")[3]
        repository = uri.split("/", 1)[1].split(":")[0].split("@")[0]
        assert allows(statements, "ecr:BatchGetImage", f"arn:aws:ecr:{region}:{account}:repository/{repository}"), param
    assert not allows(statements, "ecr:BatchGetImage", f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/pytorch-training")
    assert not allows(statements, "ecr:GetDownloadUrlForLayer", f"arn:aws:ecr:{REGION}:999999999999:repository/x")


def test_a_kms_key_is_granted_to_the_roles_that_touch_the_bucket_through_s3_only(resolver):
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    for role in ROLES:
        assert not any(a.startswith("kms:") for s in resolver.role_statements(role) for a in _as_list(s["Action"]))
    with_key = Resolver({**resolver.params, "DataBucketKmsKeyArn": key})
    for role in ("FunctionsRole", "SageMakerExecutionRole"):
        statements = with_key.role_statements(role)
        for action in ("kms:Decrypt", "kms:GenerateDataKey"):
            granted = matching_statements(statements, action, key)
            assert granted, (role, action)
            assert all(s["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}} for s in granted)
        assert not allows(statements, "kms:Decrypt", key.replace("1234abcd", "99999999"))
        assert not allows(statements, "kms:Encrypt", key) and not allows(statements, "kms:CreateGrant", key)
    assert not any(a.startswith("kms:") for s in with_key.role_statements("StateMachineRole") for a in _as_list(s["Action"]))
    sse = with_key.properties("DataBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}


def test_log_groups_outlive_the_stack_and_expire(resolver):
    t = load_template()["Resources"]
    for logical in ("FunctionsLogGroup", "StateMachineLogGroup"):
        assert t[logical].get("DeletionPolicy") == "Retain" and t[logical].get("UpdateReplacePolicy") == "Retain", logical
        assert int(resolver.properties(logical)["RetentionInDays"]) == int(resolver.params["LogRetentionInDays"])
    name = resolver.properties("StateMachineLogGroup")["LogGroupName"]
    assert name.startswith(f"/aws/vendedlogs/states/{STACK}-active-learning-") and name != f"/aws/vendedlogs/states/{STACK}-active-learning"


def test_sagemaker_role_reads_and_writes_the_data_bucket_only(resolver):
    statements = resolver.role_statements("SageMakerExecutionRole")
    bucket = resolver.data_bucket()
    for action in ("s3:GetObject", "s3:PutObject"):
        assert allows(statements, action, f"arn:aws:s3:::{bucket}/runs/j/model.tar.gz")
        assert not allows(statements, action, "arn:aws:s3:::another-bucket/x")
    assert allows(statements, "s3:ListBucket", f"arn:aws:s3:::{bucket}")
    image_repo = f"arn:aws:ecr:{REGION}:763104351884:repository/pytorch-training"
    assert allows(statements, "ecr:BatchGetImage", image_repo)
    assert allows(
        statements,
        "logs:PutLogEvents",
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/TrainingJobs:log-stream:x",
    )
    trust = resolver.properties("SageMakerExecutionRole")["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "sagemaker.amazonaws.com"}]


# ---------------------------------------------------------------- samconfig.toml


def test_samconfig_environments():
    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    params = set(load_template()["Parameters"])
    for env in ("default", "dev", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert "CAPABILITY_IAM" in deploy["capabilities"].split(), env
        assert deploy["resolve_s3"] is True, env
        stack = deploy.get("stack_name") or config[env].get("global", {}).get("parameters", {}).get("stack_name")
        assert stack and len(stack) <= 64, env  # the state machine is named <stack>-active-learning (80 at most)
    for env in ("dev", "prod"):
        overrides = config[env]["deploy"]["parameters"]["parameter_overrides"]
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', overrides))
        assert pairs and set(pairs) <= params, set(pairs) - params
        for key, value in pairs.items():
            pattern = load_template()["Parameters"][key].get("AllowedPattern")
            if pattern:
                assert re.fullmatch(pattern, value), (env, key, value)
    assert config["default"]["build"]["parameters"].get("cached") is not True
