"""The Lambda handlers against S3 (moto): the same code that runs in Lambda, on s3:// URIs."""

import json

import boto3
import pytest
from moto import mock_aws

from labelloop.local.engine import LambdaContext, load_handlers

BUCKET = "labelloop-test"
CLASSES = ["ham", "spam"]
DEPLOYMENT = {
    "Region": "us-east-1",
    "Algorithms": {
        "text-classification": {
            "TrainingImage": "sklearn-image",
            "InferenceImage": "sklearn-image",
            "SourceDirUri": f"s3://{BUCKET}/code/sourcedir.tar.gz",
        }
    },
}


@pytest.fixture()
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(scope="module")
def handlers():
    return {name.removeprefix("labelloop-"): fn for name, fn in load_handlers().items()}


def call(handlers, name, event):
    return handlers[name](json.loads(json.dumps(event)), LambdaContext(name, f"arn:{name}", "req-1"))


def put_lines(s3, key, lines):
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(l) + "\n" for l in lines).encode())


def get_lines(s3, key):
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(l) for l in body.splitlines() if l.strip()]


def settings(**extra):
    return {
        "ManifestUri": f"s3://{BUCKET}/in/manifest.jsonl",
        "OutputUri": f"s3://{BUCKET}/runs/r1",
        "JobName": "spam-test",
        "TaskType": "text-classification",
        "LabelAttributeName": "category",
        "LabelCategories": CLASSES,
        "HumanBatchSize": 10,
        "ValidationFraction": 0.5,
        **extra,
    }


def joined_predictions(lines, confident_class):
    return [{**l, "SageMakerOutput": {"probabilities": [0.99, 0.01] if confident_class(l) == 0 else [0.01, 0.99]}} for l in lines]


def test_one_iteration_through_every_handler_on_s3(s3, handlers):
    items = [{"source": f"message number {i}"} for i in range(40)]
    items[3] = {"source": "already labeled", "category": 1, "category-metadata": {"class-name": "spam", "human-annotated": "yes"}}
    put_lines(s3, "in/manifest.jsonl", items)

    boot = call(handlers, "Bootstrap", {"Input": settings(), "ExecutionName": "e1", "Deployment": DEPLOYMENT})
    config, state = boot["config"], boot["state"]
    assert (state["Total"], state["PreLabeled"], state["Remaining"]) == (40, 1, 39)
    labels = json.loads(s3.get_object(Bucket=BUCKET, Key="runs/r1/config/label-categories.json")["Body"].read())
    assert labels == {"document-version": "2018-11-28", "labels": [{"label": "ham"}, {"label": "spam"}]}
    assert config["PreHumanTaskLambdaArn"].endswith(":function:PRE-TextMultiClass")

    state = call(handlers, "SampleForHumans", {"config": config, "state": state})
    batch = get_lines(s3, state["HumanBatch"]["ManifestUri"].split(f"{BUCKET}/")[1])
    assert len(batch) == state["HumanBatch"]["Count"] == 10
    assert all("labelloop-id" in l and l["source"] != "already labeled" for l in batch)

    # Ground Truth answers every object but one (a failed object, listed without the label).
    out_key = f"runs/r1/labeling/{state['HumanBatch']['LabelingJobName']}/manifests/output/output.manifest"
    answered = [{**l, "category": 0, "category-metadata": {"class-name": "ham", "confidence": 0.9, "human-annotated": "yes"}} for l in batch[:-1]]
    put_lines(s3, out_key, answered + [{**batch[-1], "category-metadata": {"failure-reason": "x"}}])
    state = call(handlers, "MergeHumanLabels", {"config": config, "state": state, "labeling": {"OutputManifestUri": f"s3://{BUCKET}/{out_key}"}})
    assert state["HumanLabeled"] == 9 and state["Remaining"] == 30

    iteration = call(handlers, "SplitValidation", {"config": config, "state": state})
    assert iteration["TrainCount"] + iteration["ValidationCount"] == 10  # 9 human + 1 pre-labeled
    assert iteration["UnlabeledCount"] == 30
    assert json.loads(iteration["HyperParameters"]["num-classes"]) == 2

    # What batch transform would write: the input lines joined with the model's probabilities.
    val = get_lines(s3, "runs/r1/iterations/001/channels/validation/validation.manifest")
    put_lines(s3, "runs/r1/iterations/001/inference/validation/validation.manifest.out", joined_predictions(val, lambda l: l["category"]))
    cal = call(handlers, "CalibrateThreshold", {"config": config, "state": state, "iteration": iteration})
    assert cal["ValidationCount"] == iteration["ValidationCount"]
    assert cal["Threshold"] is None  # far too few validation items to vouch for any threshold

    unl = get_lines(s3, "runs/r1/iterations/001/transform-input/unlabeled/unlabeled.manifest")
    put_lines(s3, "runs/r1/iterations/001/inference/unlabeled/unlabeled.manifest.out", joined_predictions(unl, lambda l: 0))
    state = call(handlers, "GateAndRoute", {"config": config, "state": state, "iteration": iteration, "calibration": cal, "training": {"ModelArtifacts": "s3://x/model.tar.gz"}})
    assert state["AutoLabeled"] == 0 and state["HumanBatch"]["Count"] == 10 and state["Iteration"] == 2

    summary = call(handlers, "ExportOutput", {"config": config, "state": state})
    out = get_lines(s3, "runs/r1/output/output.manifest")
    assert [l["source"] for l in out] == [i["source"] for i in items]  # every item once, in input order
    assert summary["HumanLabeled"] == 10 and summary["Unlabeled"] == 30
    assert out[3]["category"] == 1 and out[3]["category-metadata"]["class-name"] == "spam"  # kept, not relabeled
    assert all("labelloop-id" not in l for l in out)


def test_bad_lines_go_to_the_rejected_manifest(s3, handlers):
    items = [{"source": f"text {i}"} for i in range(30)] + [{"source": "text 0"}, {"source-ref": 5}]
    put_lines(s3, "in/manifest.jsonl", items)
    boot = call(handlers, "Bootstrap", {"Input": settings(), "ExecutionName": "e1", "Deployment": DEPLOYMENT})
    assert boot["state"]["Total"] == 30 and boot["state"]["Rejected"] == 2
    rejected = get_lines(s3, "runs/r1/input/rejected.manifest")
    assert [r["line"] for r in rejected] == [31, 32]
    assert "duplicate of line 1" in rejected[0]["reason"]


def test_too_many_bad_lines_fail_the_job(s3, handlers):
    put_lines(s3, "in/manifest.jsonl", [{"source": "ok"}] + [{"nothing": i} for i in range(5)])
    with pytest.raises(Exception, match=r"5 of 6 lines .* are invalid \(more than 10 %\)"):
        call(handlers, "Bootstrap", {"Input": settings(), "ExecutionName": "e1", "Deployment": DEPLOYMENT})


def test_missing_manifest_and_bad_settings_fail_fast(s3, handlers):
    with pytest.raises(Exception, match=f"input manifest s3://{BUCKET}/in/manifest.jsonl does not exist"):
        call(handlers, "Bootstrap", {"Input": settings(), "ExecutionName": "e1", "Deployment": DEPLOYMENT})
    with pytest.raises(Exception, match="TargetAccuracy must be a number in"):
        call(handlers, "Bootstrap", {"Input": settings(TargetAccuracy=1.5), "ExecutionName": "e1", "Deployment": DEPLOYMENT})
