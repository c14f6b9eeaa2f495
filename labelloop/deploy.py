"""Deploying to AWS: the template parameters that only a developer's machine can work out.

`prepare_deploy` resolves each task type's training and inference images for a region from the
SageMaker Python SDK's bundled image table (no network), packages each algorithm's source dir
(`labelloop.algorithm_source.package_source`) and uploads it to the data bucket under a
content-addressed key, and returns the `sam deploy --parameter-overrides` for `template.yaml`.

`labelloop prepare-deploy` (see `labelloop.aws_cli`) is the command-line face of it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from typing import Any

from labelloop import tasks
from labelloop.tasks.base import BUILT_IN_LAMBDA_ACCOUNTS

# The prebuilt framework containers each task type's algorithm runs in. Training and inference
# use the same framework version, so a model trained in one loads in the other. Versions are
# ones the pinned SDK (requirements-deploy.txt) lists for both scopes:
# - PyTorch 2.6.0 / py312 is the newest version with an inference image (training goes to 2.8.0);
# - scikit-learn 1.2-1 is the newest with an inference image (training also has 1.4-2).


@dataclass(frozen=True)
class Framework:
    parameter_prefix: str  # template parameters: <prefix>TrainingImage, <prefix>InferenceImage, <prefix>SourceDirUri
    name: str  # sagemaker.image_uris framework name
    version: str
    py_version: str
    gpu: bool  # has GPU images; without, the CPU image is used on any instance type


# Task type -> its container and template parameters, as the task type declares them.
FRAMEWORKS: dict[str, Framework] = {
    t.name: Framework(t.deploy_prefix, t.framework.name, t.framework.version, t.framework.py_version, gpu=t.framework.gpu)
    for t in tasks.all_types()
}
SOURCE_PREFIX = "labelloop/source"
CPU_INSTANCE = "ml.m5.xlarge"


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


def resolve_images(
    region: str,
    training_instance_type: str = CPU_INSTANCE,
    transform_instance_type: str = CPU_INSTANCE,
    frameworks: dict[str, Framework] = FRAMEWORKS,
) -> dict[str, str]:
    """Template parameter → image URI, for every task type's training and inference image."""
    image_uris = _image_uris()
    out: dict[str, str] = {}
    for fw in frameworks.values():
        for scope, instance_type, suffix in (
            ("training", training_instance_type, "TrainingImage"),
            ("inference", transform_instance_type, "InferenceImage"),
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
    training_instance_type: str = CPU_INSTANCE,
    transform_instance_type: str = CPU_INSTANCE,
    workteam_arn: str | None = None,
    job_name_prefix: str | None = None,
    session: Any = None,
) -> Preparation:
    """Images for the region, algorithm sources uploaded, and the template parameters.

    Where the sources go: `bucket` (an existing bucket, which the stack then uses as its data
    bucket), else the data bucket of `stack`. A stack that does not exist yet has no bucket
    (the first deploy creates it): then only the images are resolved, with a note to deploy and
    run this again.
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
    if bucket:
        parameters["DataBucketName"] = bucket
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

    parameters.update(resolve_images(region, training_instance_type, transform_instance_type))
    parameters["TrainingInstanceType"] = training_instance_type
    parameters["TransformInstanceType"] = transform_instance_type
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
