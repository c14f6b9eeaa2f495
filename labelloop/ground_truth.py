"""Ground Truth's built-in task types: the AWS-owned Lambda functions and the worker task UI.

The pre-annotation (PRE-) and consolidation (ACS-) functions are owned by AWS, one account per
region, as listed in the CreateLabelingJob API reference (HumanTaskConfig).
"""

from __future__ import annotations

BUILT_IN_LAMBDA_ACCOUNTS = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "ca-central-1": "918755190332",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}

_FUNCTION_SUFFIX = {"image-classification": "ImageMultiClass", "text-classification": "TextMultiClass"}


def built_in_lambda_arns(region: str, task_type: str) -> tuple[str, str]:
    """(PreHumanTaskLambdaArn, AnnotationConsolidationLambdaArn) for a region and task type."""
    account = BUILT_IN_LAMBDA_ACCOUNTS.get(region)
    if account is None:
        raise ValueError(f"Ground Truth built-in task Lambdas are not listed for region {region!r}")
    suffix = _FUNCTION_SUFFIX[task_type]
    base = f"arn:aws:lambda:{region}:{account}:function"
    return f"{base}:PRE-{suffix}", f"{base}:ACS-{suffix}"


_IMAGE_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-image-classifier
    name="crowd-image-classifier"
    src="{{ task.input.taskObject | grant_read_access }}"
    header="{{ task.input.header }}"
    categories="{{ task.input.labels | to_json | escape }}">
    <full-instructions header="Classification instructions">
      <p>Choose the one category that best describes the image.</p>
    </full-instructions>
    <short-instructions>
      <p>Choose the one category that best describes the image.</p>
    </short-instructions>
  </crowd-image-classifier>
</crowd-form>
"""

_TEXT_TEMPLATE = """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
<crowd-form>
  <crowd-classifier
    name="crowd-classifier"
    categories="{{ task.input.labels | to_json | escape }}"
    header="{{ task.input.header }}">
    <classification-target>{{ task.input.taskObject }}</classification-target>
    <full-instructions header="Classification instructions">
      <p>Choose the one category that best describes the text.</p>
    </full-instructions>
    <short-instructions>
      <p>Choose the one category that best describes the text.</p>
    </short-instructions>
  </crowd-classifier>
</crowd-form>
"""


def task_ui_template(task_type: str) -> str:
    return _IMAGE_TEMPLATE if task_type == "image-classification" else _TEXT_TEMPLATE


def task_title(task_type: str) -> str:
    return "Classify the image" if task_type == "image-classification" else "Classify the text"
