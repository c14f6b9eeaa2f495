"""Each task type's Ground Truth job pieces, checked against botocore's SageMaker service model:
the built-in PRE-/ACS- Lambda ARNs it names in every region are the ones the CreateLabelingJob
documentation lists, and a labeling job request built with them and its UI is valid."""

import re

import botocore.session
import pytest
from botocore.validate import ParamValidator

from labelloop import tasks
from labelloop.tasks.base import BUILT_IN_LAMBDA_ACCOUNTS

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
PRE_DOC = SAGEMAKER.shape_for("HumanTaskConfig").members["PreHumanTaskLambdaArn"].documentation
ACS_DOC = SAGEMAKER.shape_for("AnnotationConsolidationConfig").members["AnnotationConsolidationLambdaArn"].documentation


@pytest.mark.parametrize("task", tasks.names())
@pytest.mark.parametrize("region", sorted(BUILT_IN_LAMBDA_ACCOUNTS))
def test_the_built_in_lambdas_are_the_documented_ones(task, region):
    pre, acs = tasks.get(task).built_in_lambda_arns(region)
    assert pre in re.findall(r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:PRE-[A-Za-z]+", PRE_DOC)
    assert acs in re.findall(r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:ACS-[A-Za-z]+", ACS_DOC)


@pytest.mark.parametrize("task", tasks.names())
def test_a_labeling_job_request_with_the_task_types_pieces_is_valid(task):
    t = tasks.get(task)
    pre, acs = t.built_in_lambda_arns("us-east-1")
    body = {
        "LabelingJobName": "labelloop-x-001-label",
        "LabelAttributeName": "label-ref" if t.label_in_file else "label",  # Ground Truth's -ref rule
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://b/in.manifest"}}},
        "OutputConfig": {"S3OutputPath": "s3://b/out/"},
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "LabelCategoryConfigS3Uri": "s3://b/labels.json",
        "HumanTaskConfig": {
            "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
            "UiConfig": {"UiTemplateS3Uri": "s3://b/template.liquid.html"},
            "PreHumanTaskLambdaArn": pre,
            "TaskTitle": t.title,
            "TaskDescription": t.description(["a", "b"]),
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 300,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": acs},
        },
    }
    report = ParamValidator().validate(body, SAGEMAKER.operation_model("CreateLabelingJob").input_shape)
    assert not report.has_errors(), report.generate_report()
    element = re.search(r"<(crowd-[a-z-]+)\s", t.ui_template).group(1)
    assert element in {"crowd-image-classifier", "crowd-classifier", "crowd-bounding-box", "crowd-semantic-segmentation"}
    assert "task.input.taskObject" in t.ui_template and "task.input.labels" in t.ui_template
