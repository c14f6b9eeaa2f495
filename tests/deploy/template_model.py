"""template.yaml as the tests see it: loaded with its CloudFormation tags, intrinsics resolved.

`Resolver` plays CloudFormation for one imaginary deployment (account 123456789012, moto's, in
us-east-1, stack `labelloop-test`): parameters, conditions, Ref / GetAtt / Sub / If / Join /
Select / Split, with physical names made up per resource type. Function names are the local
engine's (`labelloop-<Step>`), so a definition substituted from the template runs on it.

`allows()` is a small IAM evaluator (Allow and Deny statements, `*`/`?` wildcards, no conditions) for checking
that a role's statements grant a call, and that they do not grant it elsewhere.
"""

from __future__ import annotations

import json
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
DEFINITION = REPO / "statemachine" / "active_learning.asl.json"
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "labelloop-test"
WORKTEAM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/labelloop-test"
NO_VALUE = object()


@lru_cache(maxsize=1)
def load_template() -> dict[str, Any]:
    from cfn_tools import load_yaml

    return json.loads(json.dumps(load_yaml(TEMPLATE.read_text())))  # plain dicts / lists


def placeholders() -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", DEFINITION.read_text()))


def sam_binary() -> str | None:
    """The sam CLI: $LABELLOOP_SAM, else `sam` on PATH, else the CI venv's (~/.cache/labelloop/sam-venv)."""
    import os

    configured = os.environ.get("LABELLOOP_SAM")
    if configured:
        return configured if Path(configured).exists() else None
    found = shutil.which("sam")
    if found:
        return found
    default = Path.home() / ".cache" / "labelloop" / "sam-venv" / "bin" / "sam"
    return str(default) if default.exists() else None


@lru_cache(maxsize=1)
def us_east_1_images() -> dict[str, str]:
    from labelloop.deploy import resolve_images

    return resolve_images(REGION)


def default_parameters(**overrides: str) -> dict[str, str]:
    values = {
        "WorkteamArn": WORKTEAM,
        **us_east_1_images(),
        "ImageClassificationSourceDirUri": "s3://BUCKET/labelloop/source/image-classification/0123456789abcdef/sourcedir.tar.gz",
        "TextClassificationSourceDirUri": "s3://BUCKET/labelloop/source/text-classification/0123456789abcdef/sourcedir.tar.gz",
        "ObjectDetectionSourceDirUri": "s3://BUCKET/labelloop/source/object-detection/0123456789abcdef/sourcedir.tar.gz",
        "SemanticSegmentationSourceDirUri":
            "s3://BUCKET/labelloop/source/semantic-segmentation/0123456789abcdef/sourcedir.tar.gz",
        # distinct per framework, so a request that takes another framework's type is caught
        "TextClassificationTrainingInstanceType": "ml.c5.2xlarge",
        "TextClassificationTransformInstanceType": "ml.c5.xlarge",
    }
    values.update(overrides)
    return values


class Resolver:
    def __init__(self, parameters: dict[str, str] | None = None, template: dict[str, Any] | None = None):
        self.t = template or load_template()
        self.params: dict[str, str] = {}
        for name, spec in self.t.get("Parameters", {}).items():
            if "Default" in spec:
                self.params[name] = str(spec["Default"])
        self.params.update(parameters if parameters is not None else default_parameters())
        missing = sorted(set(self.t["Parameters"]) - set(self.params))
        if missing:
            raise ValueError(f"no value for template parameters {missing}")
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/5a1e0f60-7b3c-11ef-9d2a-0a1b2c3d4e5f",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        bucket = self.data_bucket()
        for key in ("ImageClassificationSourceDirUri", "TextClassificationSourceDirUri", "ObjectDetectionSourceDirUri",
                    "SemanticSegmentationSourceDirUri"):
            self.params[key] = self.params[key].replace("s3://BUCKET/", f"s3://{bucket}/")

    # ------------------------------------------------------------ names

    def resources(self) -> dict[str, Any]:
        return self.t["Resources"]

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.t["Conditions"][name]))

    def exists(self, logical_id: str) -> bool:
        cond = self.resources()[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    def data_bucket(self) -> str:
        return self.params.get("DataBucketName") or f"{STACK}-databucket-1a2b3c4d5e6f"

    def physical_name(self, logical_id: str) -> str:
        res = self.resources()[logical_id]
        kind, props = res["Type"], res.get("Properties", {})
        if kind == "AWS::Serverless::Function":
            return f"labelloop-{logical_id.removesuffix('Function')}"
        if kind == "AWS::S3::Bucket":
            return f"{STACK}-{logical_id.lower()}-1a2b3c4d5e6f"
        for key in ("Name", "LogGroupName", "DashboardName", "RoleName"):
            if key in props:
                return self.resolve(props[key])
        return f"{STACK}-{logical_id}-ABCDEF123456"

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        kind = self.resources()[name]["Type"]
        physical = self.physical_name(name)
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{physical}"
        if kind == "AWS::Serverless::LayerVersion":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{physical}:1"
        return physical

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.resources()[name]["Type"]
        physical = self.physical_name(name)
        arns = {
            "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{physical}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{physical}",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{physical}:*",
            "AWS::Serverless::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{physical}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if attribute == "Name":
            return physical
        raise KeyError(f"GetAtt {name}.{attribute} is not modelled")

    # ------------------------------------------------------------ intrinsics

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def one(m: re.Match) -> str:
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in variables:
                return str(variables[key])
            if "." in key:
                return self.get_att(*key.split(".", 1))
            return str(self.ref(key))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, attribute)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {})
                return self._sub(arg[0], {k: self.resolve(v) for k, v in arg[1].items()})
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in self.resolve(arg[1]))
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise KeyError(f"intrinsic {key} is not modelled")
        out = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    # ------------------------------------------------------------ pieces

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.resources()[logical_id].get("Properties", {}))

    def substitutions(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.properties("StateMachine")["DefinitionSubstitutions"].items()}

    def outputs(self) -> dict[str, str]:
        return {k: str(self.resolve(v["Value"])) for k, v in self.t["Outputs"].items()}

    def role_statements(self, logical_id: str) -> list[dict[str, Any]]:
        props = self.properties(logical_id)
        statements: list[dict[str, Any]] = []
        for policy in props.get("Policies", []):
            statements += policy["PolicyDocument"]["Statement"]
        return statements

    def function_environment(self) -> dict[str, str]:
        return self.resolve(self.t["Globals"]["Function"]["Environment"]["Variables"])


# ---------------------------------------------------------------- IAM


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, text, re.IGNORECASE if ignore_case else 0) is not None


def matching_statements(
    statements: list[dict[str, Any]], action: str, resource: str, effect: str = "Allow"
) -> list[dict[str, Any]]:
    return [
        s
        for s in statements
        if s.get("Effect") == effect
        and any(_glob(a, action, ignore_case=True) for a in _as_list(s.get("Action", [])))
        and any(_glob(r, resource) for r in _as_list(s.get("Resource", [])))
    ]


def allows(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """An Allow grants it and no Deny takes it back."""
    return bool(matching_statements(statements, action, resource)) and not matching_statements(
        statements, action, resource, "Deny"
    )


# ---------------------------------------------------------------- what a Task state needs

# sagemaker:<api> integrations: (name field, ARN resource type, Describe*, Stop*, managed rule)
SAGEMAKER_APIS = {
    "createTrainingJob": (
        "TrainingJobName",
        "training-job",
        "DescribeTrainingJob",
        "StopTrainingJob",
        "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    ),
    "createModel": ("ModelName", "model", None, None, None),
    "createTransformJob": (
        "TransformJobName",
        "transform-job",
        "DescribeTransformJob",
        "StopTransformJob",
        "StepFunctionsGetEventsForSageMakerTransformJobsRule",
    ),
    "createLabelingJob": (
        "LabelingJobName",
        "labeling-job",
        "DescribeLabelingJob",
        "StopLabelingJob",
        "StepFunctionsGetEventsForSageMakerLabelingJobsRule",
    ),
}


def sagemaker_calls(resource: str, body: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) the state machine's role needs for one sagemaker Task state.

    As the Step Functions developer guide lists them for the SageMaker integrations: the Create*
    call (plus AddTags when the request has Tags, iam:PassRole for the role it names), and for
    `.sync` the Describe* and Stop* calls and the managed EventBridge rule.
    """
    if ":::aws-sdk:sagemaker:" in resource:  # SDK integration: the API call itself, e.g. DescribeTrainingJob
        api = resource.split(":::aws-sdk:sagemaker:", 1)[1]
        kind = {"describeTrainingJob": "training-job", "describeTransformJob": "transform-job",
                "describeLabelingJob": "labeling-job"}[api]
        return [(f"sagemaker:{api[0].upper()}{api[1:]}", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}")]
    api = resource.split(":::sagemaker:", 1)[1]
    sync = api.endswith(".sync")
    api = api.removesuffix(".sync")
    if api not in SAGEMAKER_APIS:
        raise KeyError(f"sagemaker:{api} is not in SAGEMAKER_APIS: add its IAM actions")
    _, kind, describe, stop, rule = SAGEMAKER_APIS[api]
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"  # SageMaker ARNs are lower case
    calls = [(f"sagemaker:{api[0].upper()}{api[1:]}", arn)]
    if "Tags" in body:
        calls.append(("sagemaker:AddTags", arn))
    if sync:  # ListTags: in AWS's documented IAM policy for the .sync SageMaker integrations
        calls += [(f"sagemaker:{describe}", arn), (f"sagemaker:{stop}", arn), ("sagemaker:ListTags", arn)]
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"
        calls += [(f"events:{a}", rule_arn) for a in ("PutTargets", "PutRule", "DescribeRule")]
    return calls


def passed_roles(body: dict[str, Any]) -> list[str]:
    return [body[k] for k in ("RoleArn", "ExecutionRoleArn") if k in body]


# ---------------------------------------------------------------- a stack to look up


class StackSession:
    """A boto3 session for tests: CloudFormation answers `describe_stacks` for one stack from a
    botocore Stubber (the response checked against the service model); every other client is
    whatever boto3 gives (moto's, inside mock_aws). moto's CloudFormation needs extras this
    project does not install."""

    def __init__(self, region: str, outputs: dict[str, str] | None, stack: str = "labelloop", calls: int = 1):
        from datetime import datetime, timezone

        import boto3
        from botocore.stub import Stubber

        self.region_name = region
        self._session = boto3.session.Session(region_name=region)
        self.cloudformation = self._session.client("cloudformation", region_name=region)
        self.stubber = Stubber(self.cloudformation)
        for _ in range(calls):
            if outputs is None:
                self.stubber.add_client_error(
                    "describe_stacks",
                    "ValidationError",
                    f"Stack with id {stack} does not exist",
                    expected_params={"StackName": stack},
                )
            else:
                self.stubber.add_response(
                    "describe_stacks",
                    {
                        "Stacks": [
                            {
                                "StackName": stack,
                                "CreationTime": datetime.now(timezone.utc),
                                "StackStatus": "CREATE_COMPLETE",
                                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                            }
                        ]
                    },
                    {"StackName": stack},
                )
        self.stubber.activate()

    def client(self, service: str, region_name: str | None = None, **kwargs: Any):
        if service == "cloudformation":
            return self.cloudformation
        return self._session.client(service, region_name=region_name or self.region_name, **kwargs)
