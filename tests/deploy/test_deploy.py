"""labelloop.deploy and `labelloop prepare-deploy`: images from the SDK's table, sources to S3
(moto), and overrides that template.yaml accepts."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re

import boto3
import pytest
from moto import mock_aws
from template_model import REGION, REPO, StackSession, load_template

from labelloop import aws_cli
from labelloop.algorithm_source import package_source
from labelloop.deploy import (
    ACCELERATED,
    FRAMEWORKS,
    GROUND_TRUTH_CORS_RULE,
    DeployError,
    instance_types,
    parameter_overrides,
    prepare_deploy,
    resolve_images,
    upload_source,
)
from labelloop.tasks.base import BUILT_IN_LAMBDA_ACCOUNTS

PARAMETERS = load_template()["Parameters"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labelloop")
    aws_cli.add_aws_commands(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def _check_against_template(parameters: dict[str, str]) -> None:
    for key, value in parameters.items():
        assert key in PARAMETERS, f"{key} is not a template parameter"
        pattern = PARAMETERS[key].get("AllowedPattern")
        if pattern:
            assert re.fullmatch(pattern, value), f"{key}={value} does not match the template's AllowedPattern"


def test_images_for_us_east_1_are_the_pinned_framework_versions():
    assert resolve_images(REGION) == {
        "ImageClassificationTrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312",
        "ImageClassificationInferenceImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312",
        "TextClassificationTrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "TextClassificationInferenceImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "ObjectDetectionTrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312",
        "ObjectDetectionInferenceImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312",
        "SemanticSegmentationTrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312",
        "SemanticSegmentationInferenceImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312",
    }


@pytest.mark.parametrize("region", sorted(BUILT_IN_LAMBDA_ACCOUNTS))
def test_every_ground_truth_region_has_every_task_types_images(region):
    images = resolve_images(region)
    assert len(images) == 2 * len(FRAMEWORKS)
    assert all(f".dkr.ecr.{region}.amazonaws.com/" in uri for uri in images.values())
    _check_against_template(images)


def test_gpu_instances_get_gpu_pytorch_images_and_the_cpu_scikit_learn_image():
    images = resolve_images(
        REGION,
        {"ImageClassificationTrainingInstanceType": "ml.g5.xlarge", "ImageClassificationTransformInstanceType": "ml.g4dn.xlarge"},
    )
    assert images["ImageClassificationTrainingImage"].endswith("pytorch-training:2.6.0-gpu-py312")
    assert images["ImageClassificationInferenceImage"].endswith("pytorch-inference:2.6.0-gpu-py312")
    assert images["TextClassificationTrainingImage"].endswith("sagemaker-scikit-learn:1.2-1-cpu-py3")


def test_instance_types_are_per_framework_cpu_by_default_and_checked_against_their_api():
    types = instance_types()
    assert set(types) == {f"{fw.parameter_prefix}{k}InstanceType" for fw in FRAMEWORKS.values() for k in ("Training", "Transform")}
    assert set(types) <= set(PARAMETERS)
    assert all(not ACCELERATED.match(t) for t in types.values()), "CPU by default: no algorithm has measured GPU code"
    assert all(PARAMETERS[k]["Default"] == v for k, v in types.items()), "the template's defaults are the same"
    # ml.t3.medium trains but cannot transform: refused for the transform, before anything is deployed
    assert instance_types({"TextClassificationTrainingInstanceType": "ml.t3.medium"})
    with pytest.raises(DeployError, match="TextClassificationTransformInstanceType: .*'ml.t3.medium' is not an instance type CreateTransformJob accepts"):
        instance_types({"TextClassificationTransformInstanceType": "ml.t3.medium"})
    with pytest.raises(DeployError, match="CPU only"):  # the scikit-learn image has no GPU build
        instance_types({"TextClassificationTrainingInstanceType": "ml.g5.xlarge"})
    with pytest.raises(DeployError, match="unknown instance-type parameters"):
        instance_types({"TrainingInstanceType": "ml.m5.xlarge"})


def test_samconfig_instance_types_are_valid_for_their_api():
    for env in ("default", "dev", "prod"):
        _, pairs = aws_cli.samconfig_environment(env, str(REPO / "samconfig.toml"))
        types = {k: v for k, v in pairs.items() if k.endswith("InstanceType")}
        assert instance_types(types), env


def test_upload_source_is_content_addressed(aws, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="labels")
    uri = upload_source("text-classification", "labels", s3=s3)
    expected = package_source("text-classification", tmp_path).read_bytes()
    assert (
        uri
        == f"s3://labels/labelloop/source/text-classification/{hashlib.sha256(expected).hexdigest()[:16]}/sourcedir.tar.gz"
    )
    assert s3.get_object(Bucket="labels", Key=uri[len("s3://labels/") :])["Body"].read() == expected
    assert gzip.decompress(expected)  # a gzip archive, as script mode expects
    assert upload_source("text-classification", "labels", s3=s3) == uri  # deterministic: same sources, same key


def _bucket(name: str, cors: bool = True) -> None:
    boto3.client("s3").create_bucket(Bucket=name)
    if cors:
        boto3.client("s3").put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [GROUND_TRUTH_CORS_RULE]})


def test_an_existing_bucket_without_ground_truths_cors_rule_is_refused_or_given_it(aws):
    _bucket("my-labels", cors=False)
    s3 = boto3.client("s3")
    s3.put_bucket_cors(Bucket="my-labels", CORSConfiguration={"CORSRules": [{"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://example.com"]}]})
    with pytest.raises(DeployError, match="no CORS rule .* --set-cors, or: aws s3api put-bucket-cors --bucket my-labels"):
        prepare_deploy(REGION, bucket="my-labels")
    assert s3.list_objects_v2(Bucket="my-labels").get("KeyCount", 0) == 0, "nothing uploaded before the check"
    prepare_deploy(REGION, bucket="my-labels", set_cors=True)
    rules = s3.get_bucket_cors(Bucket="my-labels")["CORSRules"]
    assert rules[0]["AllowedMethods"] == ["PUT"], "the bucket's own rules are kept"
    assert any(r["AllowedMethods"] == ["GET"] and r["AllowedOrigins"] == ["*"] for r in rules)
    prepare_deploy(REGION, bucket="my-labels")  # now it passes as it is


def test_an_sse_kms_bucket_gives_its_key_to_the_roles(aws):
    _bucket("kms-labels")
    key = boto3.client("kms").create_key(Description="labels")["KeyMetadata"]
    boto3.client("s3").put_bucket_encryption(
        Bucket="kms-labels",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["KeyId"]}}]
        },
    )
    p = prepare_deploy(REGION, bucket="kms-labels").parameters
    assert p["DataBucketKmsKeyArn"] == key["Arn"]
    _check_against_template(p)
    _bucket("sse-s3-labels")
    assert "DataBucketKmsKeyArn" not in prepare_deploy(REGION, bucket="sse-s3-labels").parameters


def test_prepare_deploy_with_an_existing_bucket(aws):
    _bucket("my-labels")
    prep = prepare_deploy(
        REGION, bucket="my-labels", workteam_arn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t"
    )
    p = prep.parameters
    assert p["DataBucketName"] == "my-labels" and not prep.notes
    for task, fw in FRAMEWORKS.items():
        uri = p[f"{fw.parameter_prefix}SourceDirUri"]
        assert uri.startswith(f"s3://my-labels/labelloop/source/{task}/")
        assert boto3.client("s3").head_object(Bucket="my-labels", Key=uri[len("s3://my-labels/") :])
    _check_against_template(p)
    required = {k for k, spec in PARAMETERS.items() if "Default" not in spec}
    assert required <= set(p), f"missing required parameters: {required - set(p)}"


def test_prepare_deploy_with_a_stack_uploads_to_its_bucket(aws):
    boto3.client("s3").create_bucket(Bucket="stack-bucket")
    session = StackSession(REGION, {"DataBucketName": "stack-bucket", "StateMachineArn": "arn:..."})
    prep = prepare_deploy(REGION, stack="labelloop", session=session)
    assert "DataBucketName" not in prep.parameters  # the stack keeps its own
    assert prep.parameters["TextClassificationSourceDirUri"].startswith("s3://stack-bucket/labelloop/source/")
    session.stubber.assert_no_pending_responses()


def test_prepare_deploy_refuses_a_stack_that_is_not_labelloop(aws):
    with pytest.raises(DeployError, match="no DataBucketName output"):
        prepare_deploy(REGION, stack="labelloop", session=StackSession(REGION, {"Other": "x"}))


def test_prepare_deploy_before_the_stack_exists_resolves_images_only(aws):
    prep = prepare_deploy(REGION, stack="not-yet", session=StackSession(REGION, None, stack="not-yet"))
    assert "TextClassificationSourceDirUri" not in prep.parameters
    assert "ImageClassificationTrainingImage" in prep.parameters
    assert any("does not exist yet" in note for note in prep.notes)


def test_prepare_deploy_refuses_regions_without_ground_truth_lambdas():
    with pytest.raises(DeployError, match="no Ground Truth built-in task Lambdas"):
        prepare_deploy("mars-north-1")


def test_overrides_are_key_value_pairs():
    assert parameter_overrides({"A": "x", "B": "s3://b/k"}) == "A=x B=s3://b/k"
    assert parameter_overrides({"A": "two words"}) == "A='two words'"


def test_prepare_deploy_command_prints_only_the_overrides(aws, capsys, tmp_path):
    _bucket("my-labels")
    out = tmp_path / "overrides.txt"
    args = _parser().parse_args(["prepare-deploy", "--region", REGION, "--bucket", "my-labels", "--out", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == out.read_text().strip()
    pairs = dict(pair.split("=", 1) for pair in printed.split())
    assert pairs["DataBucketName"] == "my-labels"
    _check_against_template(pairs)


def test_prepare_deploy_command_starts_from_a_samconfig_environment(aws, capsys):
    _bucket("example-corp-labeling-data")
    args = _parser().parse_args(["prepare-deploy", "--config-env", "prod", "--samconfig", str(REPO / "samconfig.toml")])
    assert args.func(args) == 0
    pairs = dict(pair.split("=", 1) for pair in capsys.readouterr().out.split())
    # prod: eu-west-1, CPU training (no algorithm uses a GPU), its own bucket, its workteam kept
    assert pairs["ImageClassificationTrainingImage"].endswith(
        ".dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.6.0-cpu-py312"
    )
    assert pairs["ImageClassificationTrainingInstanceType"] == "ml.c5.2xlarge"
    assert pairs["ImageClassificationInferenceImage"].endswith("pytorch-inference:2.6.0-cpu-py312")
    assert pairs["TextClassificationSourceDirUri"].startswith("s3://example-corp-labeling-data/labelloop/source/")
    assert pairs["WorkteamArn"].endswith(":workteam/private-crowd/labelers")
    _check_against_template(pairs)


def test_prepare_deploy_command_reports_errors(aws, capsys):
    args = _parser().parse_args(["prepare-deploy", "--region", "mars-north-1"])
    assert args.func(args) == 2
    assert "no Ground Truth built-in task Lambdas" in capsys.readouterr().err


GUIDED_SAMCONFIG = """version = 0.1
[default.global.parameters]
stack_name = "labelloop"
[default.deploy.parameters]
stack_name = "labelloop"
region = "us-east-1"
capabilities = "CAPABILITY_IAM"
resolve_s3 = true
parameter_overrides = "WorkteamArn=\\"arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t\\" JobNamePrefix=\\"labelloop\\" DataBucketName=\\"\\" ImageClassificationSourceDirUri=\\"\\" TextClassificationSourceDirUri=\\"\\" TextClassificationTrainingInstanceType=\\"ml.m5.xlarge\\""
"""


def test_prepare_deploy_after_a_guided_deploy_keeps_the_answers_and_fills_the_sources(aws, capsys, tmp_path, monkeypatch):
    """The docs' second deploy: `sam deploy --parameter-overrides "$(labelloop prepare-deploy --config-env default)"`."""
    (tmp_path / "samconfig.toml").write_text(GUIDED_SAMCONFIG)  # as `sam deploy --guided` saves it
    boto3.client("s3").create_bucket(Bucket="stack-bucket")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(aws_cli, "_session", lambda region=None: StackSession(region, {"DataBucketName": "stack-bucket"}))
    args = _parser().parse_args(["prepare-deploy", "--config-env", "default"])
    assert args.func(args) == 0
    pairs = dict(pair.split("=", 1) for pair in capsys.readouterr().out.split())
    assert pairs["WorkteamArn"] == "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t"
    assert pairs["DataBucketName"] == "''"  # kept as saved: empty, the stack's own bucket
    for key in ("ImageClassificationSourceDirUri", "TextClassificationSourceDirUri"):
        assert pairs[key].startswith("s3://stack-bucket/labelloop/source/")
    _check_against_template({k: v for k, v in pairs.items() if v != "''"})
