"""`labelloop start` and `labelloop status` against moto (Step Functions, S3), the stack's
Outputs from a stubbed CloudFormation; and the commands the README's "Deploy to AWS" section tells people to run."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import time

import boto3
import pytest
from moto import mock_aws
from template_model import REGION, REPO, StackSession

from labelloop import aws_cli
from labelloop.config import JobSettings

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]  # README and docs/deploy.md: deploying
BUCKET = "labels"
DEFAULTS = {
    "TargetAccuracy": 0.95,
    "ConfidenceLevel": 0.9,
    "HumanBatchSize": 50,
    "MaxHumanLabeledObjectCount": 0,
    "PricePerLabel": 0.08,
    "WorkersPerObject": 3,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labelloop")
    aws_cli.add_aws_commands(p.add_subparsers(dest="command", required=True))
    return p


@pytest.fixture
def stack(monkeypatch):
    """A deployed stack as `start` sees it: its Outputs, its state machine (moto), its bucket."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(
            name="labelloop-active-learning",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        outputs = {
            "StateMachineArn": machine,
            "DataBucketName": BUCKET,
            "JobNamePrefix": "labelloop",
            "JobDefaults": json.dumps(DEFAULTS),
        }
        sessions = []

        def session(region=None):
            sessions.append(StackSession(region or REGION, outputs))
            return sessions[-1]

        monkeypatch.setattr(aws_cli, "_session", session)
        yield sfn, machine


def _start(*argv: str) -> int:
    args = parser().parse_args(["start", "--stack", "labelloop", *argv])
    return args.func(args)


BASIC = (
    "--manifest",
    f"s3://{BUCKET}/input/reviews.manifest",
    "--task-type",
    "text-classification",
    "--label-attribute",
    "sentiment",
    "--labels",
    "neg,pos",
)


def test_start_builds_the_input_from_the_stack_defaults_and_the_options(stack, capsys):
    sfn, machine = stack
    assert _start(*BASIC, "--human-budget", "300", "--target-accuracy", "0.97") == 0
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    data = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    stamp = re.fullmatch(r"labelloop-(\d{8}T\d{6}Z)", execution["name"]).group(1)
    assert data == {
        "ManifestUri": f"s3://{BUCKET}/input/reviews.manifest",
        "OutputUri": f"s3://{BUCKET}/runs/labelloop/{stamp}",
        "JobName": "labelloop",
        "TaskType": "text-classification",
        "LabelAttributeName": "sentiment",
        "LabelCategories": ["neg", "pos"],
        "TargetAccuracy": 0.97,  # option beats the stack default
        "ConfidenceLevel": 0.9,
        "HumanBatchSize": 50,
        "MaxHumanLabeledObjectCount": 300,  # the stack's 0 means no limit: not sent
        "PricePerLabel": 0.08,
        "WorkersPerObject": 3,
    }
    JobSettings.parse(data)
    out = capsys.readouterr().out
    assert execution["executionArn"] in out
    assert aws_cli.execution_console_url(execution["executionArn"]) in out
    assert (
        out.count("https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/arn:")
        == 1
    )


def test_start_passes_any_other_setting_and_a_label_config(stack):
    sfn, machine = stack
    argv = [
        *BASIC[:-2],
        "--label-config",
        f"s3://{BUCKET}/config/labels.json",
        "--job-name",
        "labelloop-reviews",
        "--setting",
        "ValidationPolicy=ground-truth",
        "--setting",
        "MaxIterations=5",
        "--setting",
        "ClassBalance=false",
        "--output",
        f"s3://{BUCKET}/runs/r1",
        "--execution-name",
        "reviews-1",
    ]
    assert _start(*argv) == 0
    execution = machine.replace(":stateMachine:", ":execution:") + ":reviews-1"
    data = json.loads(sfn.describe_execution(executionArn=execution)["input"])
    assert data["LabelCategoryConfigUri"] == f"s3://{BUCKET}/config/labels.json" and "LabelCategories" not in data
    assert (data["ValidationPolicy"], data["MaxIterations"], data["ClassBalance"]) == ("ground-truth", 5, False)
    assert (data["JobName"], data["OutputUri"]) == ("labelloop-reviews", f"s3://{BUCKET}/runs/r1")


@pytest.mark.parametrize(
    "argv, message",
    [
        ((*BASIC[:1], "s3://elsewhere/reviews.manifest", *BASIC[2:]), "must be in this stack's data bucket"),
        ((*BASIC, "--job-name", "reviews"), "must start with this stack's JobNamePrefix"),
        ((*BASIC, "--target-accuracy", "1.5"), "TargetAccuracy must be a number in (0, 1)"),
        ((*BASIC, "--output", "s3://elsewhere/runs/x"), "OutputUri s3://elsewhere/runs/x must be in"),
        ((*BASIC[:-1], "pos"), "classification needs at least 2 labels"),
        ((*BASIC, "--setting", "PricePerAdjustedLabel=0.02"), "never show the model's guess"),
    ],
)
def test_start_refuses_before_anything_starts(stack, capsys, argv, message):
    sfn, machine = stack
    assert _start(*argv) == 2
    assert message in capsys.readouterr().err
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


def test_start_dry_run_prints_the_input_only(stack, capsys):
    sfn, machine = stack
    assert _start(*BASIC, "--dry-run") == 0
    assert json.loads(capsys.readouterr().out)["ManifestUri"] == f"s3://{BUCKET}/input/reviews.manifest"
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


def test_the_labelloop_command_has_the_aws_commands():
    """labelloop/cli.py calls add_aws_commands(...) on its subcommands."""
    from labelloop.cli import build_parser

    for argv in (["prepare-deploy", "--region", REGION], ["start", "--stack", "s", *BASIC], ["status", "arn"]):
        args = build_parser().parse_args(argv)
        # status also reads a local run's folder; for an ARN it calls aws_cli's
        assert args.func.__module__ == ("labelloop.run_status" if argv[0] == "status" else "labelloop.aws_cli"), argv


def test_unknown_settings_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["start", "--stack", "s", *BASIC, "--setting", "NoSuchField=1"])
    assert "execution input fields" in capsys.readouterr().err


def test_start_refuses_a_stack_that_does_not_exist(monkeypatch, capsys):
    monkeypatch.setattr(aws_cli, "_session", lambda region=None: StackSession(REGION, None, stack="labelloop"))
    assert _start(*BASIC) == 2
    assert "stack 'labelloop' does not exist" in capsys.readouterr().err


def test_without_aws_credentials_start_fails_in_one_line(monkeypatch, tmp_path, capsys):
    from labelloop import cli

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["start", "--stack", "labelloop", "--region", REGION, *BASIC]) == 2
    assert capsys.readouterr().err == "labelloop: start: AWS: Unable to locate credentials\n"


def test_status_of_a_failed_execution_shows_error_and_cause(monkeypatch, capsys):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions")
        definition = {
            "StartAt": "LoopFailed",
            "States": {
                "LoopFailed": {
                    "Type": "Fail",
                    "Error": "LabelingLoopFailed",
                    "Cause": "TrainModel: the training job failed",
                }
            },
        }
        machine = sfn.create_state_machine(
            name="m", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, name="broken", input="{}")["executionArn"]
        for _ in range(100):
            if sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
                break
            time.sleep(0.05)
        args = parser().parse_args(["status", arn])
        assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "execution broken: FAILED" in out
    assert "error: LabelingLoopFailed" in out and "cause: TrainModel: the training job failed" in out


def test_status_refuses_what_is_not_an_execution_arn(capsys):
    args = parser().parse_args(["status", "arn:aws:states:us-east-1:123456789012:stateMachine:m"])
    assert args.func(args) == 2


# ---------------------------------------------------------------- the commands the README and docs/ tell people to run


def _doc_commands(program: str) -> list[list[str]]:
    """Each `program ...` command line in the docs' shell blocks (continuations joined)."""
    text = "\n".join(doc.read_text() for doc in DOCS)
    commands = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
        for inner in re.findall(rf"\$\(({program} [^)]*)\)", block):  # "$(labelloop ...)" inside another command
            commands.append(shlex.split(inner)[1:])
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            for part in re.split(r"\s*(?:&&|\||>)\s*", line):
                part = re.sub(r"^[A-Z_]+=\$\((.*)\)$", r"\1", part.strip())  # VAR=$(labelloop ...)
                part = part.removeprefix("$(").removesuffix(")")
                if part.startswith(program + " "):
                    commands.append(shlex.split(part)[1:])
    return commands


def test_every_labelloop_command_in_the_docs_parses():
    from labelloop.cli import build_parser

    commands = _doc_commands("labelloop")
    mine = {"prepare-deploy", "start", "status"}
    assert {c[0] for c in commands} >= mine
    for argv in commands:
        args = (parser() if argv[0] in mine else build_parser()).parse_args(argv)
        assert callable(args.func)


def test_the_docs_sam_commands_are_the_tested_ones():
    """test_sam.py runs `sam validate --lint` and `sam build`; deploy and delete need AWS."""
    commands = {" ".join(c[:1]) for c in _doc_commands("sam")}
    assert commands == {"validate", "build", "deploy", "delete"}, commands


def test_the_docs_way_to_empty_the_versioned_bucket_empties_it(monkeypatch):
    snippet = re.search(r'python -c "(import boto3[^"]+)" "\$BUCKET"', "\n".join(doc.read_text() for doc in DOCS)).group(1)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(sys, "argv", ["-c", "labelloop-databucket-x"])
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="labelloop-databucket-x")
        s3.put_bucket_versioning(Bucket="labelloop-databucket-x", VersioningConfiguration={"Status": "Enabled"})
        for body in (b"1", b"2"):
            s3.put_object(Bucket="labelloop-databucket-x", Key="runs/a.json", Body=body)
        s3.delete_object(Bucket="labelloop-databucket-x", Key="runs/a.json")
        exec(snippet, {})  # noqa: S102 - the documented one-liner, as written
        assert s3.list_buckets()["Buckets"] == []
