"""Deploying to AWS: the template parameters that only a developer's machine can work out.

`prepare_deploy` resolves each task type's training and inference images for a region from the
SageMaker Python SDK's bundled image table (no network), packages each algorithm's source dir
(`labelloop.algorithm_source.package_source`) and uploads it to the data bucket under a
content-addressed key, and returns the `sam deploy --parameter-overrides` for `template.yaml`.

`labelloop prepare-deploy` (see `labelloop.aws_cli`) is the command-line face of it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from typing import Any

from labelloop import tasks
from labelloop.aws_limits import instance_type_problem
from labelloop.tasks.base import BUILT_IN_LAMBDA_ACCOUNTS

# The prebuilt framework containers each task type's algorithm runs in. Training and inference
# use the same framework version, so a model trained in one loads in the other. Versions are
# ones the pinned SDK (requirements-deploy.txt) lists for both scopes:
# - PyTorch 2.6.0 / py312 is the newest version with an inference image (training goes to 2.8.0);
# - scikit-learn 1.2-1 is the newest with an inference image (training also has 1.4-2).
# Instance types are per framework and default to CPU: no algorithm has measured GPU code (the
# image trainer moves to CUDA when it finds it, unmeasured), and the scikit-learn image is CPU-only.
CPU_INSTANCE = "ml.m5.xlarge"


@dataclass(frozen=True)
class Framework:
    parameter_prefix: str  # template parameters: <prefix>TrainingImage, <prefix>InferenceImage, <prefix>SourceDirUri
    name: str  # sagemaker.image_uris framework name
    version: str
    py_version: str
    gpu: bool  # has GPU images; without, only CPU instance types are accepted
    training_instance: str = CPU_INSTANCE  # <prefix>TrainingInstanceType's default
    transform_instance: str = CPU_INSTANCE  # <prefix>TransformInstanceType's default

    def instance_types(self) -> dict[str, str]:
        """Template parameter -> this framework's default instance type."""
        return {
            f"{self.parameter_prefix}TrainingInstanceType": self.training_instance,
            f"{self.parameter_prefix}TransformInstanceType": self.transform_instance,
        }


# Task type -> its container and template parameters, as the task type declares them.
FRAMEWORKS: dict[str, Framework] = {
    t.name: Framework(t.deploy_prefix, t.framework.name, t.framework.version, t.framework.py_version, gpu=t.framework.gpu)
    for t in tasks.all_types()
}
SOURCE_PREFIX = "labelloop/source"
ACCELERATED = re.compile(r"^ml\.(g|p)\d")  # GPU instance families
NEURON = re.compile(r"^ml\.(inf|trn)\d")  # need Neuron images, which no framework here has


class DeployError(RuntimeError):
    """The deployment cannot be prepared (unknown region, stack or bucket)."""


class StackNotFoundError(DeployError):
    """No stack of that name in the region."""


@dataclass
class Preparation:
    parameters: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @property
    def overrides(self) -> str:
        return parameter_overrides(self.parameters)


def parameter_overrides(parameters: dict[str, str]) -> str:
    """`Key=Value Key=Value`, as `sam deploy --parameter-overrides` takes it (values shell-safe)."""
    return " ".join(f"{key}={shlex.quote(str(value))}" for key, value in parameters.items())


# ---------------------------------------------------------------- images


def _image_uris():
    """sagemaker.image_uris, imported quietly (the SDK logs and warns on import)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    for name in ("sagemaker", "sagemaker.config"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from sagemaker import image_uris
    except ImportError:  # pragma: no cover - depends on the environment
        raise DeployError("the SageMaker Python SDK is not installed: pip install -r requirements-deploy.txt") from None
    return image_uris


def instance_types(overrides: dict[str, str] | None = None, frameworks: dict[str, Framework] = FRAMEWORKS) -> dict[str, str]:
    """Every framework's instance-type parameters: the defaults, then `overrides`; each checked.

    Checked against botocore's instance types for the API it goes to (CreateTrainingJob or
    CreateTransformJob: ml.t3.medium trains but cannot transform), and against the framework
    (the scikit-learn image has no GPU build; no framework here has Neuron images).
    """
    out = {k: v for fw in frameworks.values() for k, v in fw.instance_types().items()}
    unknown = sorted(set(overrides or {}) - set(out))
    if unknown:
        raise DeployError(f"unknown instance-type parameters {unknown}; expected some of {sorted(out)}")
    out.update(overrides or {})
    problems = []
    for fw in frameworks.values():
        for parameter in fw.instance_types():
            value = out[parameter]
            setting = "TrainingInstanceType" if parameter.endswith("TrainingInstanceType") else "TransformInstanceType"
            problem = instance_type_problem(setting, value)
            if problem:
                problems.append(f"{parameter}: {problem}")
            elif NEURON.match(value) or (ACCELERATED.match(value) and not fw.gpu):
                problems.append(f"{parameter}: {value} is an accelerated instance type; the {fw.name} image here runs on CPU only")
    if problems:
        raise DeployError("; ".join(problems))
    return out


def resolve_images(
    region: str, types: dict[str, str] | None = None, frameworks: dict[str, Framework] = FRAMEWORKS
) -> dict[str, str]:
    """Template parameter → image URI, for every task type's training and inference image.

    The framework's own instance types (`instance_types`) decide between its CPU and GPU images.
    """
    image_uris = _image_uris()
    types = instance_types(types, frameworks)
    out: dict[str, str] = {}
    for fw in frameworks.values():
        for scope, instance_type, suffix in (
            ("training", types[f"{fw.parameter_prefix}TrainingInstanceType"], "TrainingImage"),
            ("inference", types[f"{fw.parameter_prefix}TransformInstanceType"], "InferenceImage"),
        ):
            try:
                out[fw.parameter_prefix + suffix] = image_uris.retrieve(
                    fw.name,
                    region,
                    version=fw.version,
                    py_version=fw.py_version,
                    instance_type=instance_type if fw.gpu else CPU_INSTANCE,
                    image_scope=scope,
                )
            except ValueError as exc:
                raise DeployError(
                    f"no {fw.name} {fw.version} {scope} image for {region} / {instance_type}: {exc}"
                ) from None
    return out


# ---------------------------------------------------------------- an existing bucket

# Ground Truth's worker UI fetches images from the bucket in the browser (presigned URLs), from
# the labeling portal's origin: the bucket needs a CORS rule that allows it (AWS's documented rule).
GROUND_TRUTH_CORS_RULE = {"AllowedMethods": ["GET"], "AllowedOrigins": ["*"], "ExposeHeaders": ["Access-Control-Allow-Origin"]}


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def allows_ground_truth(rules: list[dict[str, Any]], region: str) -> bool:
    """Whether a bucket's CORS rules let the labeling portal's pages GET its objects."""
    portal = f"https://0123456789abcdef.labeling.{region}.sagemaker.aws"
    return any(
        "GET" in rule.get("AllowedMethods", []) and any(fnmatch.fnmatchcase(portal, o) for o in rule.get("AllowedOrigins", []))
        for rule in rules
    )


def check_bucket(bucket: str, region: str, session: Any, *, set_cors: bool = False) -> dict[str, str]:
    """An existing data bucket, checked before anything is deployed; the parameters it implies.

    CORS: without a rule for Ground Truth's portal, image tasks show workers no image. With
    `set_cors` the rule is added (the bucket's other rules kept); else a missing rule is a
    DeployError that says how to add it. SSE-KMS with a customer managed key: its ARN becomes
    DataBucketKmsKeyArn, so the roles may use it.
    """
    from botocore.exceptions import ClientError

    s3 = session.client("s3", region_name=region)
    try:
        rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    except ClientError as exc:
        if _error_code(exc) != "NoSuchCORSConfiguration":
            raise DeployError(f"cannot read the CORS configuration of bucket {bucket!r}: {exc}") from None
        rules = []
    if not allows_ground_truth(rules, region):
        if not set_cors:
            config = json.dumps({"CORSRules": [*rules, GROUND_TRUTH_CORS_RULE]}, separators=(",", ":"))
            raise DeployError(
                f"bucket {bucket!r} has no CORS rule that lets Ground Truth's worker UI load its images "
                f"(image tasks would show workers nothing). Add it with --set-cors, or: "
                f"aws s3api put-bucket-cors --bucket {bucket} --cors-configuration '{config}'"
            )
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [*rules, GROUND_TRUTH_CORS_RULE]})
    parameters: dict[str, str] = {}
    try:
        encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as exc:
        if _error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
            raise DeployError(f"cannot read the default encryption of bucket {bucket!r}: {exc}") from None
        encryption = []
    for rule in encryption:
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        key = default.get("KMSMasterKeyID")
        if default.get("SSEAlgorithm", "").startswith("aws:kms") and key:
            metadata = session.client("kms", region_name=region).describe_key(KeyId=key)["KeyMetadata"]
            if metadata.get("KeyManager") != "AWS":  # aws/s3: its key policy already lets S3 use it for the account
                parameters["DataBucketKmsKeyArn"] = metadata["Arn"]
    return parameters


# ---------------------------------------------------------------- algorithm source


def upload_source(task_type: str, bucket: str, *, s3: Any = None, prefix: str = SOURCE_PREFIX) -> str:
    """Package the task type's source dir and upload it; returns its s3:// URI.

    The key holds the archive's SHA-256, so a changed algorithm gets a new URI (and a stack
    update) while running executions keep the source they started with.
    """
    from labelloop.algorithm_source import ARCHIVE_NAME, package_source

    if s3 is None:
        import boto3

        s3 = boto3.client("s3")
    with tempfile.TemporaryDirectory(prefix="labelloop-source-") as tmp:
        archive = package_source(task_type, tmp)
        data = archive.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    key = f"{prefix.strip('/')}/{task_type}/{digest}/{ARCHIVE_NAME}"
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/gzip")
    return f"s3://{bucket}/{key}"


# ---------------------------------------------------------------- stack


def stack_outputs(stack: str, *, cloudformation: Any = None) -> dict[str, str]:
    """The stack's Outputs as {OutputKey: OutputValue}; DeployError if there is no such stack."""
    from botocore.exceptions import ClientError

    if cloudformation is None:
        import boto3

        cloudformation = boto3.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            raise StackNotFoundError(f"stack {stack!r} does not exist in {cloudformation.meta.region_name}") from None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


# ---------------------------------------------------------------- all of it


def prepare_deploy(
    region: str,
    *,
    bucket: str | None = None,
    stack: str | None = None,
    instance_type_overrides: dict[str, str] | None = None,
    workteam_arn: str | None = None,
    job_name_prefix: str | None = None,
    session: Any = None,
    set_cors: bool = False,
) -> Preparation:
    """Images for the region, algorithm sources uploaded, and the template parameters.

    Where the sources go: `bucket` (an existing bucket, which the stack then uses as its data
    bucket), else the data bucket of `stack`. A stack that does not exist yet has no bucket
    (the first deploy creates it): then only the images are resolved, with a note to deploy and
    run this again. An existing bucket is checked first (`check_bucket`: CORS, KMS key).
    """
    if region not in BUILT_IN_LAMBDA_ACCOUNTS:
        raise DeployError(
            f"region {region!r} has no Ground Truth built-in task Lambdas listed in labelloop.tasks.base; "
            f"choose one of {', '.join(sorted(BUILT_IN_LAMBDA_ACCOUNTS))}"
        )
    if bucket and stack:
        raise DeployError("give a bucket or a stack, not both")
    if session is None:
        import boto3

        session = boto3.session.Session(region_name=region)

    parameters: dict[str, str] = {}
    notes: list[str] = []
    target = bucket
    types = instance_types(instance_type_overrides)  # before anything is uploaded
    if bucket:
        parameters["DataBucketName"] = bucket
        parameters.update(check_bucket(bucket, region, session, set_cors=set_cors))
    elif stack:
        try:
            outputs = stack_outputs(stack, cloudformation=session.client("cloudformation", region_name=region))
        except StackNotFoundError:
            outputs = None
            notes.append(
                f"stack {stack!r} does not exist yet, so neither does its data bucket: algorithm sources not uploaded. "
                f"Deploy, then run this command again and deploy with its output"
            )
        if outputs is not None:
            target = outputs.get("DataBucketName")
            if not target:
                raise DeployError(f"stack {stack!r} has no DataBucketName output: is it a labelloop stack?")

    parameters.update(resolve_images(region, types))
    parameters.update(types)
    if target:
        s3 = session.client("s3", region_name=region)
        for task_type, fw in FRAMEWORKS.items():
            parameters[fw.parameter_prefix + "SourceDirUri"] = upload_source(task_type, target, s3=s3)
    elif not stack:
        notes.append(
            "algorithm sources not uploaded (no bucket or stack given): after the first `sam deploy`, run "
            "`labelloop prepare-deploy --config-env default` (or --stack STACK) and deploy again with its output"
        )
    if workteam_arn:
        parameters["WorkteamArn"] = workteam_arn
    if job_name_prefix:
        parameters["JobNamePrefix"] = job_name_prefix
    return Preparation(parameters, notes)
